"""Training a generation in lock-step: the shared frozen prefix runs once per batch, yet every candidate ends exactly
as if trained alone; mu2Net's momentum travels with components (optimizer, snapshot, weights file)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from munet_serve.artifacts import Split, count_params
from munet_serve.evolver.components import fresh_adapter, fresh_head
from munet_serve.evolver.config import Hyperparameters
from munet_serve.evolver.data import Augmentation, TaskData
from munet_serve.evolver.export import fresh_lineage, load_module, serialize_weights
from munet_serve.evolver.path import Candidate, Origin, Slot
from munet_serve.evolver.prefix import PrefixTree, frozen_prefix_length
from munet_serve.evolver.train import train_candidate, train_generation

H = Hyperparameters(num_layers=2, opt_lr=0.3, ds_area_range_min=0.5)


def _shared(tiny_root) -> list[Slot]:
    return [
        Slot(name, module, Origin.SHARED, artifact.id)
        for (name, module), artifact in zip(tiny_root.root.components, tiny_root.artifacts, strict=True)
    ]


def _candidates(tiny_root) -> list[Candidate]:
    """Three candidates on the tiny root: a head alone, a cloned top block with a head, an adapter before the top
    block with a cloned norm and a head. The first two share the root up to the top block, all three up to it."""
    def head() -> Slot:
        return Slot("head", fresh_head(64, 10), Origin.FRESH)

    shared = _shared(tiny_root)
    names = [s.name for s in shared]
    top = names.index("encoderblock_1")
    clone_top = [*shared[:top], Slot("encoderblock_1", copy.deepcopy(shared[top].module), Origin.CLONE,
                                     shared[top].component_id), *shared[top + 1 :], head()]
    adapter = Slot("residual_adapter_1", fresh_adapter(64, 8, generator=torch.Generator().manual_seed(1)),
                   Origin.FRESH)
    norm = shared[-1]
    with_adapter = [*shared[:top], adapter, shared[top],
                    Slot(norm.name, copy.deepcopy(norm.module), Origin.CLONE, norm.component_id), head()]
    paths = [[*shared, head()], clone_top, with_adapter]
    return [Candidate("digits", slots, H, tiny_root.root.input, None, f"c{i}") for i, slots in enumerate(paths)]


def _stream(data: TaskData, candidate: Candidate):  # noqa: ANN202
    return data.train_batches(32, Augmentation.from_hparams(H), candidate.input, seed=5)


def _weights(candidate: Candidate) -> list[torch.Tensor]:
    return [p.detach().clone() for p in candidate.trainable_parameters()]


def test_a_generation_in_lock_step_ends_bit_for_bit_as_each_candidate_alone(tiny_root, digits):
    data = TaskData(digits)
    together, alone = _candidates(tiny_root), _candidates(tiny_root)
    validation = data.eval_tensors(Split.VALIDATION, together[0].input)
    initial = [-math.inf, 0.2, -math.inf]
    results = train_generation(together, _stream(data, together[0]), validation, steps_between_validations=6,
                               validations=3, initial_best=initial, progress=False)
    for c, candidate in enumerate(alone):
        single = train_candidate(candidate, _stream(data, candidate), validation, steps_between_validations=6,
                                 validations=3, initial_best=initial[c], progress=False)
        assert results[c].history == single.history and results[c].retained == single.retained
        assert results[c].best_step == single.best_step and results[c].score == single.score
        for a, b in zip(_weights(together[c]), _weights(candidate), strict=True):
            assert torch.equal(a, b)
    assert all(r.steps == 18 for r in results) and all(r.seconds > 0 for r in results)
    assert any(r.history[0][1] != results[0].history[0][1] for r in results[1:])  # they did train differently


def test_the_prefix_tree_runs_each_shared_frozen_module_once(tiny_root):
    candidates = _candidates(tiny_root)
    starts = [frozen_prefix_length([s.trainable for s in c.slots]) for c in candidates]
    names = [s.name for s in candidates[0].slots]
    assert starts == [len(names) - 1, names.index("encoderblock_1"), names.index("encoderblock_1")]
    chains = [[s.module for s in c.slots[:k]] for c, k in zip(candidates, starts, strict=True)]
    tree = PrefixTree(chains)
    assert tree.module_runs == len(names) - 1  # the root's modules, each once (the chains hold 3 + 3 + 5)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    outputs = tree.run(x)
    for candidate, k, y in zip(candidates, starts, outputs, strict=True):
        with torch.no_grad():
            expected = x
            for slot in candidate.slots[:k]:
                expected = slot.module(expected)
        assert torch.equal(y, expected)
    assert outputs[1] is outputs[2]  # the same departure point: one tensor
    low = PrefixTree(chains, bf16=True).run(x)
    assert all(t.dtype == torch.float32 for t in low)
    assert torch.allclose(low[0], outputs[0], atol=0.1, rtol=0.05)  # bf16 is close, not equal
    assert PrefixTree([[], []]).run(x)[0] is x  # a candidate that trains its first slot starts at the input


def test_mu2net_momentum_is_inherited_snapshotted_and_stored_with_the_component(tiny_root, digits):
    data = TaskData(digits)
    candidate = _candidates(tiny_root)[1]
    validation = data.eval_tensors(Split.VALIDATION, candidate.input)
    train_candidate(candidate, _stream(data, candidate), validation, steps_between_validations=4, validations=2,
                    inherit_momentum=True, progress=False)
    block = candidate.slot("encoderblock_1").module
    assert block.momentum is not None and set(block.momentum) == {n for n, _ in block.named_parameters()}
    assert any(t.abs().sum() > 0 for t in block.momentum.values())

    # stored in the weights file beside the parameters, not counted as parameters, read back by load_module
    weights = serialize_weights(block, fresh_lineage("digits", "encoderblock_1"))
    assert count_params(weights) == sum(p.numel() for p in block.parameters())
    loaded = load_module(weights)
    assert all(torch.equal(loaded.momentum[k], v) for k, v in block.momentum.items())

    # a clone of it resumes from that trace: its first SGD step is lr * (0.9 * trace + grad) instead of lr * grad
    slots = [*candidate.slots[:-3], Slot("encoderblock_1", copy.deepcopy(loaded), Origin.CLONE), candidate.slots[-2],
             Slot("head", copy.deepcopy(candidate.slot("head").module), Origin.CLONE)]
    child = Candidate("digits", slots, H.replace(opt_lr_schedule="constant"), candidate.input, None, "child")
    resumed, fresh = copy.deepcopy(child), copy.deepcopy(child)
    fresh.slot("encoderblock_1").module.momentum = None
    for c, inherit in ((resumed, True), (fresh, False)):
        train_candidate(c, _stream(data, c), validation, steps_between_validations=1, validations=1,
                        inherit_momentum=inherit, progress=False)
    before = dict(loaded.named_parameters())
    moved_resumed = resumed.slot("encoderblock_1").module.state_dict()
    moved_fresh = fresh.slot("encoderblock_1").module.state_dict()
    name = "block.attn.qkv.weight"
    assert not torch.equal(moved_resumed[name], moved_fresh[name])
    # with the trace, the step is lr * (0.9 * trace + clipped grad); the difference is lr * 0.9 * trace
    lr = 0.5 * H.opt_lr  # the constant schedule runs at half the peak
    diff = moved_fresh[name] - moved_resumed[name]
    assert torch.allclose(diff, lr * 0.9 * loaded.momentum[name], atol=1e-6)
    assert torch.equal(before[name], loaded.state_dict()[name])  # the published module itself never moved


def test_muNet_starts_every_optimizer_fresh(tiny_root, digits):
    data = TaskData(digits)
    a, b = _candidates(tiny_root)[1], _candidates(tiny_root)[1]
    a.slot("encoderblock_1").module.momentum = {n: torch.ones_like(p) for n, p in
                                                a.slot("encoderblock_1").module.named_parameters()}
    validation = data.eval_tensors(Split.VALIDATION, a.input)
    for c in (a, b):
        train_candidate(c, _stream(data, c), validation, steps_between_validations=2, validations=1, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))


@pytest.mark.parametrize("bf16", [False, True])
def test_validation_stays_float32_whatever_the_training_prefix_runs_in(tiny_root, digits, bf16):
    data = TaskData(digits)
    candidate = _candidates(tiny_root)[0]
    validation = data.eval_tensors(Split.VALIDATION, candidate.input)
    result = train_candidate(candidate, _stream(data, candidate), validation, steps_between_validations=5,
                             validations=1, bf16_prefix=bf16, progress=False)
    with torch.no_grad():
        accuracy = float((candidate.module(validation[0]).argmax(1) == validation[1]).float().mean())
    assert result.quality == pytest.approx(accuracy)
