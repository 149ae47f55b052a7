"""The baselines (docs/evolution.md §8.6) on the tiny root: what each one trains (counted by hand), the root left
untouched, the compute matching, the spec's text form, and a tiny compute-matched run."""

from __future__ import annotations

import threading

import pytest
import torch

from munet_serve.clients.types import PathComponent, PathRef, RootInfo
from munet_serve.evolver.baselines import (
    BaselineResult,
    BaselineSpec,
    baseline_path,
    compute_matched,
    per_task_params,
    train_baseline,
)
from munet_serve.evolver.config import SearchBudget, TrainBudget, budget_preset, search_preset
from munet_serve.evolver.data import TaskData
from munet_serve.evolver.errors import StopRequested
from munet_serve.evolver.evolution import root_path
from munet_serve.evolver.mutate import slot_names
from munet_serve.evolver.path import Origin, Path
from munet_serve.evolver.store import ComponentStore

# The tiny-test root: width D = 64, L = 2 blocks, MLP ratio 4, 8 px patches at 32 px (a 4 x 4 grid); 10 classes.
D, L, R, PATCH, GRID, K = 64, 2, 4, 8, 4, 10
BLOCK = (
    2 * D  # norm1
    + 3 * D * D + 3 * D  # qkv
    + D * D + D  # attention proj
    + 2 * D  # norm2
    + D * (R * D) + R * D  # fc1
    + (R * D) * D + D  # fc2
)
EMBEDDING = PATCH * PATCH * 3 * D + D
CLS = D
POSEMBED = (GRID * GRID + 1) * D
ENCODER_NORM = 2 * D
HEAD = D * K + K


def adapter(x: int) -> int:
    return 2 * D + (D * x + x) + (x * D + D)  # LayerNorm, down, up


@pytest.fixture(scope="module")
def root(tiny_root) -> Path:
    store = ComponentStore()
    for artifact in tiny_root.artifacts:
        store.add(artifact)  # modules rebuilt from the artifacts: the session's root modules are never touched
    names = [n for n, _ in tiny_root.root.components]
    info = RootInfo("tiny", [PathComponent(n, a.id) for n, a in zip(names, tiny_root.artifacts, strict=True)], {},
                    tiny_root.root.params, tiny_root.root.input)
    return root_path(info, store)


def weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {s.name: {k: v.clone() for k, v in s.module.state_dict().items()} for s in path.slots}


CASES = [
    ("finetune-all", EMBEDDING + CLS + POSEMBED + L * BLOCK + ENCODER_NORM + HEAD,
     {"embedding", "cls", "posembed_input", "encoderblock_0", "encoderblock_1", "encoder_norm", "head"}),
    ("freeze-bottom:0", L * BLOCK + ENCODER_NORM + HEAD, {"encoderblock_0", "encoderblock_1", "encoder_norm", "head"}),
    ("freeze-bottom:1", BLOCK + ENCODER_NORM + HEAD, {"encoderblock_1", "encoder_norm", "head"}),
    ("freeze-bottom:2", ENCODER_NORM + HEAD, {"encoder_norm", "head"}),
    ("adapters:4", L * adapter(4) + ENCODER_NORM + HEAD,
     {"residual_adapter_0", "residual_adapter_1", "encoder_norm", "head"}),
]


@pytest.mark.parametrize(("text", "expected", "trainable"), CASES)
def test_each_baseline_trains_only_what_it_should(root, text, expected, trainable):
    assert BLOCK == 12 * D * D + 13 * D == 49_984  # the formula above, summed
    path = baseline_path(BaselineSpec.parse(text), root, task="digits", num_classes=K)
    assert per_task_params(path) == expected
    assert {s.name for s in path.trainable_slots()} == trainable
    grads = [p for p in path.module.parameters() if p.requires_grad]
    assert sum(p.numel() for p in grads) == expected
    assert {id(p) for p in grads} == {id(p) for p in path.trainable_parameters()}
    for slot in path.slots:
        source = root.slot(slot.name)
        if slot.trainable:
            assert slot.origin is (Origin.FRESH if source is None else Origin.CLONE)
            if source is not None:  # a copy, recording the root component it copies
                assert slot.module is not source.module and slot.component_id == source.component_id
        else:  # the root's own module, by reference and id
            assert source is not None and slot.module is source.module
            assert slot.origin is Origin.SHARED and slot.component_id == source.component_id
    # the architecture is recorded as the evolver records it
    h = path.hparams
    assert h.num_layers == L and h.ds_image_size == 32 and path.input.image_size == 32
    assert [s.name for s in path.slots] == slot_names(h.num_layers, h.adapter_layers)
    assert path.parent == PathRef("", 0) and path.ancestor is root and path.task == "digits"
    assert path.module(torch.zeros(2, 3, 32, 32)).shape == (2, K)


def test_adapters_start_as_the_identity_and_are_seeded(root):
    spec = BaselineSpec("adapters", 4)
    a, b = (baseline_path(spec, root, task="t", num_classes=K, seed=s) for s in (1, 2))
    assert a.hparams.adapter_layers == (0, 1) and a.hparams.adapter_dim == 4
    for path in (a, b):
        for i in range(L):
            m = path.slot(f"residual_adapter_{i}").module
            assert not m.up.weight.any() and not m.up.bias.any()  # output zero-initialised
    assert not torch.equal(a.slot("residual_adapter_0").module.down.weight,
                           b.slot("residual_adapter_0").module.down.weight)
    assert torch.equal(a.slot("residual_adapter_0").module.down.weight,
                       baseline_path(spec, root, task="t", num_classes=K, seed=1)
                       .slot("residual_adapter_0").module.down.weight)
    # identity adapters and a clone of the root: features equal the root's
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(a.module.eval()(x), b.module.eval()(x))
    assert BaselineSpec("finetune-all") != spec


def test_another_image_size_uses_the_resized_root_position_embedding(root):
    frozen = baseline_path(BaselineSpec("freeze-bottom", 1), root, task="t", num_classes=K, image_size=48)
    slot = frozen.slot("posembed_input")
    assert slot.origin is Origin.DERIVED and slot.component_id is None and not slot.trainable
    assert tuple(slot.module.config["grid"]) == (6, 6)
    assert frozen.hparams.ds_image_size == 48 and frozen.input.image_size == 48
    assert per_task_params(frozen) == BLOCK + ENCODER_NORM + HEAD
    full = baseline_path(BaselineSpec("finetune-all"), root, task="t", num_classes=K, image_size=48)
    assert full.slot("posembed_input").origin is Origin.CLONE
    assert per_task_params(full) == EMBEDDING + CLS + (6 * 6 + 1) * D + L * BLOCK + ENCODER_NORM + HEAD
    assert full.module(torch.zeros(1, 3, 48, 48)).shape == (1, K)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        baseline_path(BaselineSpec("finetune-all"), root, task="t", num_classes=K, image_size=36)
    with pytest.raises(ValueError, match="only 2 blocks"):
        baseline_path(BaselineSpec("freeze-bottom", 3), root, task="t", num_classes=K)


def test_parse_and_name_round_trip():
    for text in ("finetune-all", "freeze-bottom:0", "freeze-bottom:12", "adapters:8", "adapters:512"):
        spec = BaselineSpec.parse(text)
        assert spec.name == text == str(spec) and BaselineSpec.parse(spec.name) == spec
    assert BaselineSpec.parse(" adapters:16 ") == BaselineSpec("adapters", 16)
    for bad, message in [
        ("finetune", "unknown baseline"), ("lora:4", "unknown baseline"), ("", "unknown baseline"),
        ("adapters", "integer argument"), ("freeze-bottom:x", "integer argument"), ("adapters:0", "size X >= 1"),
        ("freeze-bottom:-1", "X >= 0"), ("finetune-all:1", "takes no argument"),
    ]:
        with pytest.raises(ValueError, match=message):
            BaselineSpec.parse(bad)


@pytest.mark.parametrize(
    ("train", "search"),
    [
        (budget_preset("paper-chars"), search_preset("paper-chars")),
        (budget_preset("paper-vdd"), search_preset("paper-vdd")),
        (budget_preset("small"), search_preset("small")),
        (budget_preset("tiny"), search_preset("tiny")),
        (TrainBudget(32, 7, 3, 64), SearchBudget(children_per_generation=4, samples_per_task=12, task_iterations=3)),
    ],
)
def test_compute_matched_equals_the_evolution_per_task(train, search):
    replicas, validations = compute_matched(train, search)
    assert replicas == search.children_per_generation
    for n_train in (100, 10_000, 1_000_000):
        k = train.steps_between_validations(n_train)
        evolution = search.task_iterations * search.samples_per_task * train.validations * k
        assert replicas * validations * k == evolution
        one, long_run = compute_matched(train, search, replicas=1)  # one replica gets every step
        assert one == 1 and long_run * k == evolution


def test_compute_matched_paper_numbers_and_rounding():
    assert compute_matched(budget_preset("paper-chars"), search_preset("paper-chars")) == (8, 80)  # 8,000 steps
    assert compute_matched(budget_preset("paper-vdd"), search_preset("paper-vdd")) == (8, 480)  # 96,000 steps
    train = TrainBudget(32, 5, 1, 64)
    assert compute_matched(train, SearchBudget(4, 3, 1)) == (4, 1)  # 3 candidate-trainings: rounded up
    assert compute_matched(train, SearchBudget(8, 1, 1)) == (8, 1)
    with pytest.raises(ValueError, match="open-ended"):
        compute_matched(train, SearchBudget(2, 4, 0))
    with pytest.raises(ValueError, match="replicas must be >= 1"):
        compute_matched(train, SearchBudget(2, 4, 1), replicas=0)


@pytest.mark.parametrize("text", ["finetune-all", "freeze-bottom:1", "adapters:4"])
def test_a_tiny_compute_matched_run_leaves_the_root_untouched(root, digits, text):
    data = TaskData(digits)
    train, search = budget_preset("tiny"), search_preset("tiny")
    before = weights(root)
    result = train_baseline(BaselineSpec.parse(text), root, data, train=train, search=search, task="digits")
    assert isinstance(result, BaselineResult) and result.spec.name == text
    replicas, validations = compute_matched(train, search)
    k = train.steps_between_validations(data.num_train)
    assert result.steps == replicas * validations * k == 40  # 2 replicas x 4 validations x 5 steps
    assert 0.0 <= result.validation_accuracy <= 1.0 and 0.0 <= result.test_accuracy <= 1.0
    assert len(result.replica_accuracies) == replicas
    assert result.validation_accuracy == max(result.replica_accuracies) == result.path.quality
    assert result.per_task_params == per_task_params(result.path) and result.seconds > 0
    # the root's weights are bit-identical and still frozen
    after = weights(root)
    for name, tensors in before.items():
        assert all(torch.equal(t, after[name][k]) for k, t in tensors.items()), name
    assert not any(p.requires_grad for p in root.module.parameters())
    # the trained path's frozen slots are the root's own tensors; its clones trained away from the root
    trained = weights(result.path)
    for slot in result.path.slots:
        source = root.slot(slot.name)
        if not slot.trainable:
            assert slot.module is source.module
            assert all(torch.equal(t, before[slot.name][k]) for k, t in trained[slot.name].items())
    assert not torch.equal(result.path.slot("encoder_norm").module.norm.weight,
                           root.slot("encoder_norm").module.norm.weight)


def test_stop_interrupts_a_baseline(root, digits):
    stop = threading.Event()
    stop.set()
    with pytest.raises(StopRequested):
        train_baseline(BaselineSpec("freeze-bottom", 2), root, TaskData(digits), train=budget_preset("tiny"),
                       search=search_preset("tiny"), stop=stop)
