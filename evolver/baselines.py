"""The fine-tuning baselines of §8.6, trained at compute equal to the evolution's.

Each baseline is a path cloned from the root with a fixed choice of what trains:

- ``finetune-all``: every component (embedding, class token, position embedding, all blocks, final norm) is a
  trainable clone, plus a fresh head;
- ``freeze-bottom:X``: embedding, class token, position embedding and blocks 0..X-1 are the root's own (frozen,
  shared) modules; blocks X..L-1 and the final norm are trainable clones, plus a fresh head (X = L: norm + head);
- ``adapters:X``: a fresh residual adapter of size X (identity at start) before every block, the final norm cloned
  and a fresh head train; the backbone is the root's, frozen.

They run as muNet's baselines do (§8.6): default hyperparameters and default ``ds`` (no auto-tune),
`children_per_generation` replicas trained with the evolution's training code (`executors.GenerationSettings`, so
baselines and muNet train identically), each on a batch stream of its own, V scaled so that the replicas together
take as many steps as the evolution spends on a task (`compute_matched`: each replica gets the steps of the longest
lineage the evolution can grow), snapshot at the best validation, and the best replica by validation kept; its test
accuracy is measured once, as `publish` measures a published path's. With one replica, the same steps go to one long
run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import threading
import time
import zlib
from dataclasses import dataclass

import torch

from munet_serve.artifacts import Split

from .components import Component, PositionEmbedding, fresh_adapter, fresh_head
from .config import Hyperparameters, SearchBudget, TrainBudget
from .data import Augmentation, TaskData
from .executors import Executor, Generation, GenerationSettings, InlineExecutor
from .mutate import resize_posembed, slot_names
from .path import Origin, Path, Slot
from .train import evaluate_batches

logger = logging.getLogger(__name__)

__all__ = [
    "BASELINE_KINDS",
    "BaselineResult",
    "BaselineSpec",
    "baseline_path",
    "compute_matched",
    "per_task_params",
    "train_baseline",
]

BASELINE_KINDS = ("finetune-all", "freeze-bottom", "adapters")
_FORMS = "finetune-all, freeze-bottom:X (X frozen bottom blocks, 0..L) or adapters:X (adapter size X >= 1)"


@dataclass(frozen=True)
class BaselineSpec:
    """A baseline of §8.6.

    Attributes:
        kind: "finetune-all", "freeze-bottom" or "adapters".
        x: freeze-bottom: how many bottom blocks are frozen (0..L); adapters: the adapter size; finetune-all: 0.
    """

    kind: str
    x: int = 0

    def __post_init__(self) -> None:
        if self.kind not in BASELINE_KINDS:
            raise ValueError(f"unknown baseline kind {self.kind!r}; expected {_FORMS}")
        if self.kind == "finetune-all" and self.x != 0:
            raise ValueError(f"finetune-all takes no argument, got x={self.x}")
        if self.kind == "freeze-bottom" and self.x < 0:
            raise ValueError(f"freeze-bottom needs X >= 0 frozen blocks, got {self.x}")
        if self.kind == "adapters" and self.x < 1:
            raise ValueError(f"adapters needs an adapter size X >= 1, got {self.x}")

    @classmethod
    def parse(cls, text: str) -> BaselineSpec:
        """"finetune-all", "freeze-bottom:2", "adapters:16"."""
        kind, sep, arg = text.strip().partition(":")
        if kind == "finetune-all":
            if sep:
                raise ValueError(f"baseline {text!r}: finetune-all takes no argument; expected {_FORMS}")
            return cls(kind)
        if kind not in BASELINE_KINDS:
            raise ValueError(f"unknown baseline {text!r}; expected {_FORMS}")
        try:
            x = int(arg)
        except ValueError:
            raise ValueError(f"baseline {text!r}: {kind} needs an integer argument; expected {_FORMS}") from None
        try:
            return cls(kind, x)
        except ValueError as e:
            raise ValueError(f"baseline {text!r}: {e}") from None

    @property
    def name(self) -> str:
        return self.kind if self.kind == "finetune-all" else f"{self.kind}:{self.x}"

    def __str__(self) -> str:
        return self.name


def _clone(module: Component, component_id: str | None) -> tuple[Component, Origin, str | None]:
    return copy.deepcopy(module).requires_grad_(True), Origin.CLONE, component_id


def _root_layers(root: Path) -> int:
    layers = sum(1 for s in root.slots if s.name.startswith("encoderblock_"))
    expected = slot_names(layers, ())[:-1]  # the root has no head
    if [s.name for s in root.slots] != expected:
        raise ValueError(f"not a root path: slots {[s.name for s in root.slots]}, expected {expected}")
    return layers


def _stable_seed(*parts: object) -> int:
    return zlib.crc32(":".join(str(p) for p in parts).encode())


def baseline_path(
    spec: BaselineSpec,
    root: Path,
    *,
    task: str,
    num_classes: int,
    image_size: int | None = None,
    hparams: Hyperparameters | None = None,
    seed: int = 0,
) -> Path:
    """A candidate path for the baseline, made from the root path (as `evolution.root_path` gives it).

    Frozen slots hold the root's own modules (SHARED, by the root's component ids); trainable ones are deep copies
    (CLONE, recording the root component they copy) or new (FRESH: the zero head, identity adapters seeded by
    `seed`). At another image size than the root's, the position embedding is the root's resized to the new grid
    (DERIVED and frozen, or a clone of it for finetune-all), as the evolver makes it.

    Args:
        hparams: the other hyperparameters (default: the method's defaults); the architecture (num_layers,
            adapter_layers, adapter_dim) and ds_image_size are always set from the spec, the root and image_size.
        image_size: input side (default: the root's).
    """
    layers = _root_layers(root)
    if spec.kind == "freeze-bottom" and spec.x > layers:
        raise ValueError(f"{spec.name}: the root has only {layers} blocks (X must be in 0..{layers})")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    size = image_size or root.input.image_size
    root_posembed = root.slot("posembed_input")
    if root_posembed is None or not isinstance(root_posembed.module, PositionEmbedding):
        raise ValueError("the root path has no position embedding")
    patch = int(root.slots[0].module.config["patch_size"])
    if size % patch:
        raise ValueError(f"image size {size} is not a multiple of the patch size {patch}")
    dim = int(root_posembed.module.config["embed_dim"])

    adapter_layers = tuple(range(layers)) if spec.kind == "adapters" else ()
    base = hparams if hparams is not None else Hyperparameters()
    h = base.replace(
        num_layers=layers,
        adapter_layers=adapter_layers,
        adapter_dim=spec.x if spec.kind == "adapters" else base.adapter_dim,
        ds_image_size=size,
    )

    def trains(name: str) -> bool:
        if name in ("encoder_norm", "head") or spec.kind == "finetune-all":
            return True
        if spec.kind == "freeze-bottom" and name.startswith("encoderblock_"):
            return int(name.rsplit("_", 1)[1]) >= spec.x
        return name.startswith("residual_adapter_")

    generator = torch.Generator().manual_seed(seed)
    slots: list[Slot] = []
    for name in slot_names(layers, adapter_layers):
        if name == "head":
            slots.append(Slot(name, fresh_head(dim, num_classes), Origin.FRESH))
            continue
        if name.startswith("residual_adapter_"):
            slots.append(Slot(name, fresh_adapter(dim, spec.x, generator=generator), Origin.FRESH))
            continue
        source = root.slot(name)
        assert source is not None  # _root_layers checked the names
        if name == "posembed_input" and size != root.input.image_size:
            derived = resize_posembed(root_posembed.module, (size // patch, size // patch))
            if trains(name):
                slots.append(Slot(name, *_clone(derived, None)))
            else:
                slots.append(Slot(name, derived, Origin.DERIVED, None))
        elif trains(name):
            slots.append(Slot(name, *_clone(source.module, source.published_id or source.component_id)))
        else:
            slots.append(Slot(name, source.module, source.origin, source.component_id))
    return Path(
        task=task,
        slots=slots,
        hparams=h,
        input=dataclasses.replace(root.input, image_size=size),
        parent=root.published_ref or root.parent,
        label=spec.name,
        ancestor=root,
        generation=1,
    )


def per_task_params(path: Path) -> int:
    """Parameters this path adds for its task: the sum over its trainable (fresh and cloned) slots."""
    return path.num_new_params()


def compute_matched(train: TrainBudget, search: SearchBudget, replicas: int | None = None) -> tuple[int, int]:
    """(replicas, validations) of a baseline at the evolution's compute (§8.6).

    The evolution trains task_iterations x samples_per_task candidates of V x K steps per task; a baseline trains
    `replicas` (default: children_per_generation, as the paper) replicas of V' x K steps, V' = ceil(V x
    task_iterations x samples_per_task / replicas) (muNet: 5 x 2 x 64 / 8 = 80 for chars, 30 x 2 x 64 / 8 = 480
    for VDD): with `children_per_generation` replicas, each gets the steps of the longest lineage the evolution
    can grow (one candidate per generation). One replica gets all the steps in one longer run.
    """
    if search.task_iterations < 1:
        raise ValueError("an open-ended evolution (task_iterations = 0) has no finite compute to match")
    replicas = search.children_per_generation if replicas is None else replicas
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    candidates = search.task_iterations * search.samples_per_task
    validations = max(1, math.ceil(train.validations * candidates / replicas))
    return replicas, validations


@dataclass(frozen=True)
class BaselineResult:
    """A trained baseline.

    Attributes:
        spec: the baseline.
        path: its best replica by validation, holding the weights of its best validation (quality set; publishable).
        validation_accuracy: that replica's best validation accuracy.
        test_accuracy: its accuracy on the whole test split.
        per_task_params: the parameters it adds for its task.
        steps: optimizer steps over all replicas.
        seconds: wall time of training all replicas and the test evaluation.
        train_seconds: the replicas' training time (candidate-seconds).
        replica_accuracies: every replica's best validation accuracy, in replica order.
    """

    spec: BaselineSpec
    path: Path
    validation_accuracy: float
    test_accuracy: float
    per_task_params: int
    steps: int
    seconds: float
    replica_accuracies: tuple[float, ...] = ()
    train_seconds: float = 0.0


def train_baseline(
    spec: BaselineSpec,
    root: Path,
    data: TaskData,
    *,
    train: TrainBudget,
    search: SearchBudget,
    task: str = "baseline",
    seed: int = 0,
    stop: threading.Event | None = None,
    executor: Executor | None = None,
    num_classes: int | None = None,
    replicas: int | None = None,
    bf16_prefix: bool = False,
) -> BaselineResult:
    """Trains the baseline's replicas as one generation at compute equal to the evolution's; keeps the best.

    The replicas are `baseline_path`s seeded differently (their adapters differ; heads start at zero), each trained
    on a batch stream of its own (seeded by `seed`, `task` and the replica, not by the spec, so every baseline of a
    task sees the same batches): replicas of zero heads on one stream would be one model trained several times.
    They use the data pipeline and budget of an evolution generation. The root's modules are never trained.

    Args:
        executor: how the generation's replicas are trained (default: one after another in this process).
        num_classes: the task's label count (default: the dataset's largest label + 1).
        replicas: how many replicas share the matched steps (default: children_per_generation, as §8.6).
        bf16_prefix: run the frozen prefix under bf16 autocast while training (as the evolver may).

    Raises:
        StopRequested: `stop` was set.
    """
    start = time.perf_counter()
    replicas, validations = compute_matched(train, search, replicas)
    num_classes = num_classes or data.max_label + 1
    paths = [
        baseline_path(spec, root, task=task, num_classes=num_classes, seed=_stable_seed(seed, task, spec.name, r))
        for r in range(replicas)
    ]
    for r, path in enumerate(paths):
        path.label = f"{task} {spec.name} r{r}"
    first = paths[0]
    k = train.steps_between_validations(data.num_train)
    logger.info("baseline %s on %s: %d replicas x %d validations x %d steps", spec.name, task, replicas,
                validations, k)
    results = []
    for r, path in enumerate(paths):  # each replica on a batch stream of its own (the same for every baseline)
        settings = GenerationSettings(
            augmentation=Augmentation.from_hparams(first.hparams),
            input=first.input,
            batch_seed=_stable_seed(seed, task, "baseline", r),
            batch_size=train.batch_size,
            steps_between_validations=k,
            validations=validations,
            max_validation_examples=train.max_validation_examples,
            eval_batch_size=train.eval_batch_size,
            bf16_prefix=bf16_prefix,
        )
        generation = Generation(task=task, number=1, candidates=[path], initial_best=[-math.inf],
                                score_factors=[1.0], settings=settings)
        results += (executor or InlineExecutor()).train(generation, data, stop)
    for path, result in zip(paths, results, strict=True):
        path.quality, path.score = result.quality, result.score
    best = max(range(replicas), key=lambda i: (results[i].quality, -i))  # the first of equals
    path = paths[best]
    test = evaluate_batches(path.module, data.eval_batches(Split.TEST, path.input, train.eval_batch_size))
    params = per_task_params(path)
    logger.info("baseline %s on %s: validation %.4f, test %.4f, %d params per task", spec.name, task,
                path.quality, test, params)
    return BaselineResult(
        spec=spec,
        path=path,
        validation_accuracy=path.quality,
        test_accuracy=test,
        per_task_params=params,
        steps=sum(r.steps for r in results),
        seconds=time.perf_counter() - start,
        replica_accuracies=tuple(r.quality for r in results),
        train_seconds=sum(r.seconds for r in results),
    )
