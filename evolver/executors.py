"""Executors train the candidates of one generation (§5.2): every candidate on the same stream of batches.

`InlineExecutor` trains them in lock-step in this process (the default), running the frozen components their paths
start with once per batch for all of them. `RayExecutor` trains them in parallel
Ray workers, on this machine (a local `ray.init()`) or on a cluster (an address): each frozen shared component is put
in Ray's object store once and fetched once per worker process, not once per candidate; only a candidate's own
(trainable) components travel with it, and come back trained.
"""

from __future__ import annotations

import logging
import operator
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from munet_serve.artifacts import ComponentKind, Dataset, Split
from munet_serve.imaging import InputSpec

from .components import Component, build_module
from .data import Augmentation, TaskData
from .errors import StopRequested
from .path import Path
from .train import TieRule, TrainResult, train_generation

logger = logging.getLogger(__name__)

__all__ = ["Executor", "Generation", "GenerationSettings", "InlineExecutor", "RayExecutor", "make_executor"]


@dataclass(frozen=True)
class GenerationSettings:
    """What the candidates of a generation share: the data pipeline (§3.3) and the training budget."""

    augmentation: Augmentation
    input: InputSpec
    batch_seed: int  # the seed of the batch stream every candidate sees
    batch_size: int
    steps_between_validations: int
    validations: int
    max_validation_examples: int
    eval_batch_size: int = 256
    improves: TieRule = operator.gt  # the tie rule of snapshots (the strategy's; default strictly greater)
    inherit_momentum: bool = False  # clones resume from the momentum trace stored with their component (mu2Net)
    bf16_prefix: bool = False  # the shared frozen prefix runs under bf16 autocast while training

    def train(
        self,
        candidates: Sequence[Path],
        initial_best: Sequence[float],
        score_factors: Sequence[float],
        data: TaskData,
        stop: threading.Event | None = None,
        progress: bool | None = None,
    ) -> list[TrainResult]:
        """Trains the candidates in lock-step on the generation's batch stream (every executor runs this)."""
        return train_generation(
            candidates,
            data.train_batches(self.batch_size, self.augmentation, self.input, self.batch_seed),
            data.eval_tensors(Split.VALIDATION, self.input, self.max_validation_examples),
            steps_between_validations=self.steps_between_validations,
            validations=self.validations,
            initial_best=initial_best,
            score_factors=score_factors,
            eval_batch_size=self.eval_batch_size,
            improves=self.improves,
            inherit_momentum=self.inherit_momentum,
            bf16_prefix=self.bf16_prefix,
            stop=stop,
            progress=progress,
        )


@dataclass(frozen=True)
class Generation:
    """One generation's training job: its candidates and what each must beat."""

    task: str
    number: int
    candidates: list[Path]
    initial_best: list[float]  # the parent's score for a same-task parent, else -inf
    score_factors: list[float]  # s ** (accounted params / P_root) per candidate
    settings: GenerationSettings


class Executor(ABC):
    """Trains a generation's candidates; afterwards each candidate's trainable modules hold its kept weights."""

    @abstractmethod
    def train(
        self,
        generation: Generation,
        data: TaskData,
        stop: threading.Event | None = None,
        on_result: Callable[[int, TrainResult], None] | None = None,
    ) -> list[TrainResult]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Releases the executor's resources."""


class InlineExecutor(Executor):
    """The whole generation in lock-step in this process, sharing the frozen prefix of the candidates' paths."""

    def __init__(self, progress: bool | None = None) -> None:
        self.progress = progress

    def train(self, generation, data, stop=None, on_result=None):  # noqa: ANN001, ANN201 - see Executor
        results = generation.settings.train(
            generation.candidates, generation.initial_best, generation.score_factors, data, stop, self.progress
        )
        if on_result is not None:
            for i, result in enumerate(results):
                on_result(i, result)
        return results


# --- Ray -----------------------------------------------------------------------------------------------------------

StateDict = dict[str, np.ndarray]


def _state(module: Component) -> StateDict:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _trained_state(module: Component) -> tuple[StateDict, StateDict | None]:
    """A module's weights and its momentum trace (mu2Net), as arrays."""
    traces = module.momentum
    return _state(module), None if traces is None else {k: v.numpy().copy() for k, v in traces.items()}


def _load_trained(module: Component, trained: tuple[StateDict, StateDict | None]) -> None:
    state, traces = trained
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    module.momentum = None if traces is None else {k: torch.from_numpy(np.array(v)) for k, v in traces.items()}


def _module(kind: str, config: dict[str, Any], trained: tuple[StateDict, StateDict | None]) -> Component:
    module = build_module(ComponentKind(kind), config)
    _load_trained(module, trained)
    return module


# Per worker process: frozen component modules and task datasets, fetched from the object store once.
_WORKER_FROZEN: dict[str, Component] = {}
_WORKER_DATA: dict[str, TaskData] = {}


def _train_in_worker(
    settings: GenerationSettings,
    candidate_fields: dict[str, Any],
    slots: list[tuple[Any, ...]],
    data_key: str,
    data_ref: list[Any],  # [ObjectRef]: wrapped so that Ray does not fetch it for every candidate
    threads: int,
) -> tuple[TrainResult, dict[str, tuple[StateDict, StateDict | None]]]:
    """Runs in a Ray worker: rebuilds the candidate (frozen parts from the per-worker cache) and trains it."""
    import ray

    torch.set_num_threads(threads)
    if data_key not in _WORKER_DATA:
        _WORKER_DATA[data_key] = TaskData(ray.get(data_ref[0]), key=data_key)
    from .path import Origin, Slot

    built = []
    for entry in slots:
        if entry[0] == "frozen":
            _, name, key, ref, origin, component_id = entry
            if key not in _WORKER_FROZEN:
                kind, config, trained = ray.get(ref)
                _WORKER_FROZEN[key] = _module(kind, config, trained).requires_grad_(False).eval()
            built.append(Slot(name, _WORKER_FROZEN[key], Origin(origin), component_id))
        else:
            _, name, kind, config, state, origin, component_id = entry
            built.append(Slot(name, _module(kind, config, state), Origin(origin), component_id))
    f = candidate_fields
    candidate = Path(task=f["task"], slots=built, hparams=f["hparams"], input=settings.input, parent=None,
                     label=f["label"])
    (result,) = settings.train([candidate], [f["initial_best"]], [f["score_factor"]], _WORKER_DATA[data_key])
    return result, {s.name: _trained_state(s.module) for s in candidate.trainable_slots()}


class RayExecutor(Executor):
    """Candidates of a generation trained in parallel Ray workers.

    Args:
        address: a Ray cluster address; None starts (or joins) a local Ray.
        threads: torch threads per candidate (each task also asks Ray for that many CPUs).
    """

    def __init__(self, address: str | None = None, threads: int = 1) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
        self._ray = ray
        self._remote = ray.remote(_train_in_worker).options(num_cpus=threads)
        self.threads = threads
        self._frozen: dict[str, Any] = {}  # frozen component key -> ObjectRef
        self._data: dict[str, Any] = {}  # dataset key -> ObjectRef
        self.frozen_puts = 0  # how many frozen components were put in the object store (each once)

    def _frozen_ref(self, key: str, module: Component) -> Any:
        if key not in self._frozen:
            self._frozen[key] = self._ray.put((module.kind.value, module.config, _trained_state(module)))
            self.frozen_puts += 1
        return self._frozen[key]

    def _slots(self, candidate: Path) -> list[tuple[Any, ...]]:
        entries: list[tuple[Any, ...]] = []
        for slot in candidate.slots:
            if slot.trainable:
                entries.append(("own", slot.name, slot.module.kind.value, slot.module.config,
                                _trained_state(slot.module), slot.origin.value, slot.component_id))
            else:
                key = slot.published_id or f"derived:{slot.module.config}"
                entries.append(("frozen", slot.name, key, self._frozen_ref(key, slot.module), slot.origin.value,
                                slot.component_id))
        return entries

    def _data_ref(self, data: TaskData) -> tuple[str, Any]:
        key = data.key
        if key not in self._data:
            d = data.dataset
            self._data[key] = self._ray.put(Dataset(images=d.images, labels=d.labels, splits=d.splits))
        return key, self._data[key]

    def train(self, generation, data, stop=None, on_result=None):  # noqa: ANN001, ANN201 - see Executor
        data_key, data_ref = self._data_ref(data)
        futures = []
        for i, c in enumerate(generation.candidates):
            fields = {"task": c.task, "hparams": c.hparams, "label": c.label,
                      "initial_best": generation.initial_best[i], "score_factor": generation.score_factors[i]}
            futures.append(
                self._remote.remote(generation.settings, fields, self._slots(c), data_key, [data_ref], self.threads)
            )
        index = {f: i for i, f in enumerate(futures)}
        results: list[TrainResult | None] = [None] * len(futures)
        pending = list(futures)
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1, timeout=0.5)
            if stop is not None and stop.is_set():
                for f in pending:
                    self._ray.cancel(f, force=True)
                raise StopRequested(f"stopped during generation {generation.number} of {generation.task}")
            for f in done:
                i = index[f]
                result, states = self._ray.get(f)
                candidate = generation.candidates[i]
                for slot in candidate.trainable_slots():
                    _load_trained(slot.module, states[slot.name])
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
        return [r for r in results if r is not None]

    def close(self) -> None:
        self._frozen.clear()
        self._data.clear()


def make_executor(kind: str, address: str | None = None, threads: int = 1) -> Executor:
    """'inline' or 'ray'."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "ray":
        return RayExecutor(address=address, threads=threads)
    raise ValueError(f"unknown executor {kind!r}; use inline or ray")
