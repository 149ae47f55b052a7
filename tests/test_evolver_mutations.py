"""Child construction (§2.2 of docs/evolution.md) and every mutation, on the tiny root: clones, adapters, layer
removal and re-addition, position-embedding resizing, heads, locks, the seed phase, the neighbour rule and parent
selection (§4)."""

from __future__ import annotations

import pickle
import random
from collections import Counter

import pytest
import torch

from munet_serve.clients.types import PathComponent, RootInfo
from munet_serve.evolver.components import PositionEmbedding, fresh_head
from munet_serve.evolver.evolution import distinct_seeds, root_path
from munet_serve.evolver.export import clone_lineage, export_component, load_module
from munet_serve.evolver.locks import Locks
from munet_serve.evolver.mutate import ChildFactory, MutationSettings, resize_posembed, slot_names
from munet_serve.evolver.path import Origin, Path, Slot
from munet_serve.evolver.policy import DecayPolicy, Mu2NetPolicy, decay_walk
from munet_serve.evolver.search_space import SearchSpace, neighbour
from munet_serve.evolver.store import ComponentStore
from munet_serve.evolver.strategy import MU2NET, MUNET, strategy_for
from munet_serve.imaging import InputSpec

TASK = "digits"
DS = {"ds_image_size": 32}


@pytest.fixture
def root(tiny_root):
    store = ComponentStore()
    for artifact in tiny_root.artifacts:
        store.add(artifact)
    names = [n for n, _ in tiny_root.root.components]
    info = RootInfo("tiny", [PathComponent(n, a.id) for n, a in zip(names, tiny_root.artifacts, strict=True)], {},
                    tiny_root.root.params, tiny_root.root.input)
    return root_path(info, store)


def factory(root: Path, *, mu: float = 0.0, space: SearchSpace | None = None, locks: Locks | None = None,
            seed: int = 0, task: str = TASK) -> ChildFactory:
    return ChildFactory(
        task=task, num_classes=10, root=root,
        space=space if space is not None else SearchSpace(ranges={}),
        locks=locks if locks is not None else Locks.build([s.component_id for s in root.slots], {}),
        settings=MutationSettings(mu=mu), strategy=MUNET, rng=random.Random(seed),
    )


def own_path(root: Path, task: str = TASK) -> Path:
    """A same-task path: the root's components plus a trained (random) head of this task."""
    head = fresh_head(64, 10)
    with torch.no_grad():
        head.fc.weight.normal_(generator=torch.Generator().manual_seed(0))
    return Path(task, [*root.slots, Slot("head", head, Origin.FRESH)], root.hparams, root.input, None, "own",
                ancestor=root)


def out(path: Path, size: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return path.module.eval()(torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(7)))


def test_layer_cloning_makes_a_new_id_with_identical_weights(root):
    child = factory(root, mu=1.0).child(root, DS, mutate=True)
    block = child.slot("encoderblock_0")
    root_block = root.slot("encoderblock_0")
    assert block.origin is Origin.CLONE and block.module is not root_block.module
    assert block.component_id == root_block.component_id  # lineage: the component it copies
    artifact = export_component(block.module, clone_lineage(block.component_id, TASK, "encoderblock_0"))
    assert artifact.id != root_block.component_id
    assert artifact.info.lineage["parent"] == root_block.component_id
    for a, b in zip(load_module(artifact).state_dict().values(), root_block.module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_frozen_components_are_shared_without_cloning_but_encoder_norm_always_clones(root):
    child = factory(root, mu=0.0).child(root, DS, mutate=True)
    for name in ("embedding", "cls", "posembed_input", "encoderblock_0", "encoderblock_1"):
        assert child.slot(name).module is root.slot(name).module and child.slot(name).origin is Origin.SHARED
    assert child.slot("encoder_norm").origin is Origin.CLONE  # force-finetuned
    assert child.slot("head").origin is Origin.FRESH
    assert [s.name for s in child.trainable_slots()] == ["encoder_norm", "head"]


def test_seed_phase_child_trains_only_its_head(root):
    child = factory(root, mu=1.0).child(root, DS, mutate=False)
    assert [s.origin for s in child.slots] == [Origin.SHARED] * 6 + [Origin.FRESH]
    assert child.num_new_params() == 64 * 10 + 10
    assert out(child).abs().max() == 0  # a fresh head is zero
    assert child.hparams.num_layers == 2 and child.input.image_size == 32


def test_inserted_adapters_leave_the_output_unchanged(root):
    parent = own_path(root)
    child = factory(root, mu=1.0).child(parent, DS, mutate=True)  # mu = 1: an adapter before every block
    assert child.hparams.adapter_layers == (0, 1)
    assert [s.name for s in child.slots] == slot_names(2, (0, 1))
    assert all(child.slot(f"residual_adapter_{i}").origin is Origin.FRESH for i in (0, 1))
    assert (out(child) - out(parent)).abs().max() <= 1e-6


def test_head_comes_only_from_the_same_task(root):
    parent = own_path(root, task="letters")
    other = factory(root).child(parent, DS, mutate=True)
    assert other.slot("head").origin is Origin.FRESH and out(other).abs().max() == 0
    same = factory(root, task="letters").child(parent, DS, mutate=True)
    assert same.slot("head").origin is Origin.CLONE
    assert torch.equal(same.slot("head").module.fc.weight, parent.slot("head").module.fc.weight)


def test_num_layers_drops_the_top_block_and_readds_it_from_the_nearest_ancestor(root):
    drop = SearchSpace(ranges={"num_layers": (1,)})  # the neighbour of 2 in [1] is 1
    shallow = factory(root, mu=1.0, space=drop).child(own_path(root), DS, mutate=True)
    assert shallow.hparams.num_layers == 1
    assert [s.name for s in shallow.slots] == ["embedding", "cls", "posembed_input", "residual_adapter_0",
                                                "encoderblock_0", "encoder_norm", "head"]
    grow = SearchSpace(ranges={"num_layers": (2,)})
    deep = factory(root, mu=1.0, space=grow).child(shallow, DS, mutate=True)
    assert deep.hparams.num_layers == 2 and deep.hparams.adapter_layers == (0, 1)
    block = deep.slot("encoderblock_1")  # the nearest ancestor that has it is the root (cloned, since mu = 1)
    assert block.component_id == root.slot("encoderblock_1").component_id
    assert torch.equal(block.module.block.attn.qkv.weight, root.slot("encoderblock_1").module.block.attn.qkv.weight)
    assert out(deep).shape == (3, 10)


def test_a_new_image_size_resizes_the_root_position_embedding(root):
    child = factory(root).child(root, {"ds_image_size": 48}, mutate=True)
    posembed = child.slot("posembed_input")
    assert posembed.origin is Origin.DERIVED and posembed.module.config["grid"] == [6, 6]
    assert child.input == InputSpec(48)
    assert out(child, 48).shape == (3, 10)
    original = root.slot("posembed_input").module
    resized = resize_posembed(original, (6, 6))
    assert torch.equal(resized.pos_embed[0, 0], original.pos_embed[0, 0])  # the class-token row is kept
    assert torch.allclose(resized.pos_embed[0, 1], original.pos_embed[0, 1])  # corners are kept (order-1 zoom)
    assert torch.allclose(resized.pos_embed[0, -1], original.pos_embed[0, -1])
    assert torch.equal(resize_posembed(original, (4, 4)).pos_embed, original.pos_embed)
    again = factory(root).child(root, {"ds_image_size": 48}, mutate=True)
    assert isinstance(again.slot("posembed_input").module, PositionEmbedding)


def test_locks_decide_between_sharing_and_copying(root):
    parent = own_path(root)
    head_id = "h" * 64
    parent.slots[-1] = Slot("head", parent.slots[-1].module, Origin.SHARED, head_id)
    locks = Locks.build([s.component_id for s in root.slots],
                        {TASK: [head_id], "letters": [root.slots[3].component_id]})
    assert locks.frozen_for(root.slots[3].component_id, TASK) and not locks.frozen_for(head_id, TASK)
    assert locks.users(root.slots[3].component_id) == {"letters"}
    child = factory(root, mu=0.0, locks=locks).child(parent, DS, mutate=False)
    assert child.slot("head").origin is Origin.CLONE  # the task's own published head: unlocked on a revisit
    assert child.slot("head").module is not parent.slot("head").module  # never trained in place
    assert child.slot("encoderblock_0").module is root.slot("encoderblock_0").module


def test_hparam_mutations_follow_the_search_space(root):
    space = SearchSpace.munet(num_layers=2, patch_size=8, root_image_size=32)
    assert space.ranges["ds_image_size"][:3] == (16, 32, 48) and space.ranges["num_layers"] == (1, 2)
    f = factory(root, mu=1.0, space=space, seed=3)
    seen = Counter()
    for _ in range(200):
        h = f.child_hparams(root, DS, mutate=True)
        seen[h.opt_lr] += 1
        assert h.ds_image_size == 32  # ds_* keys never mutate per child
    assert set(seen) == {0.005, 0.02}  # one step from 0.01, either way
    mu2 = SearchSpace.mu2net(num_layers=2, patch_size=8, root_image_size=32)
    assert next(iter(mu2.ranges)) == "_mu_" and 0.5 in mu2.ranges["opt_lr"]


def test_neighbour_rule_moves_one_step_and_stays_at_an_end_half_the_time():
    rng = random.Random(0)
    values = (1, 2, 3)
    at_end = Counter(neighbour(1, values, rng) for _ in range(4000))
    assert set(at_end) == {1, 2} and abs(at_end[1] / 4000 - 0.5) < 0.04
    assert set(Counter(neighbour(2, values, rng) for _ in range(100))) == {1, 3}
    assert neighbour(None, (None, 0.5), random.Random(1)) in (None, 0.5)


def test_decay_walk_accepts_with_half_to_the_power_of_offspring(root):
    paths = [Path(TASK, [], root.hparams, root.input, None, label) for label in "abc"]
    for path, n in zip(paths, (1, 2, 0), strict=True):
        path.offspring[TASK] = n
    rng = random.Random(0)
    draws = 40000
    picks = Counter(decay_walk(paths, TASK, rng).label for _ in range(draws))
    expected = {"a": 0.5, "b": 0.5 * 0.25, "c": 0.5 * 0.75}  # c has no offspring: always accepted when reached
    for label, p in expected.items():
        assert abs(picks[label] / draws - p) < 0.01, (label, picks)
    for path in paths:
        path.offspring[TASK] = 60  # practically never accepted: the walk gives up
    assert decay_walk(paths, TASK, random.Random(0)) is None


def test_decay_policy_seed_phase_then_decay_walk(root):
    seeds = [own_path(root, "letters"), root]
    population: list[Path] = []
    policy = DecayPolicy(TASK, seeds, population, random.Random(0))
    assert policy.next() == (seeds[0], False) and policy.next() == (seeds[1], False)
    assert not policy.in_seed_phase
    parent, mutate = policy.next()  # empty population: uniform over seeds
    assert mutate and parent in seeds
    best = own_path(root)
    best.score = 0.9
    population.append(best)
    assert policy.next() == (best, True)  # an unexplored top path is always taken
    mu2 = Mu2NetPolicy(TASK, seeds, [], random.Random(0))
    assert all(mu2.next()[1] for _ in range(5))


def test_identical_seeds_are_trained_once(root):
    same_as_root = own_path(root, "letters")
    assert distinct_seeds([same_as_root, root]) == [same_as_root]


def test_a_seed_phase_generation_is_filled_with_mutated_children(root):
    seeds = [own_path(root, "letters"), root]
    policy = DecayPolicy(TASK, seeds, [], random.Random(0))
    generation = [policy.next() for _ in range(5)]  # a generation of 5 with 2 seeds
    assert generation[:2] == [(seeds[0], False), (seeds[1], False)]
    assert all(mutate and parent in seeds for parent, mutate in generation[2:])


def test_the_variants_differ_only_where_mu2net_does(root):
    assert strategy_for("munet") is MUNET and strategy_for("mu2net") is MU2NET
    with pytest.raises(ValueError, match="unknown variant"):
        strategy_for("mu3net")
    # mu2Net searches num_layers only with a size scale (s < 1); muNet always
    assert "num_layers" in MUNET.search_space(2, 8, 32, 1.0).ranges
    assert "num_layers" not in MU2NET.search_space(2, 8, 32, 1.0).ranges
    assert "num_layers" in MU2NET.search_space(2, 8, 32, 0.5).ranges
    assert next(iter(MU2NET.search_space(2, 8, 32, 1.0).ranges)) == "_mu_"
    assert MUNET.policy(TASK, [], [], random.Random(0)).__class__ is DecayPolicy
    assert MU2NET.policy(TASK, [], [], random.Random(0)).__class__ is Mu2NetPolicy
    # the seed phase: muNet's policy first gives each seed an unmutated child; mu2Net's has none
    assert MUNET.policy(TASK, [root], [], random.Random(0)).in_seed_phase
    assert not MU2NET.policy(TASK, [root], [], random.Random(0)).in_seed_phase
    # the tie rule: muNet needs a higher score, mu2Net keeps an equal one
    assert MUNET.improves(0.6, 0.5) and not MUNET.improves(0.5, 0.5)
    assert MU2NET.improves(0.6, 0.5) and MU2NET.improves(0.5, 0.5) and not MU2NET.improves(0.4, 0.5)
    # the mutation probability: the configured one for muNet, the path's own `_mu_` for mu2Net
    assert MUNET.mutation_probability({"_mu_": 0.3}, 0.1) == 0.1
    assert MU2NET.mutation_probability({"_mu_": 0.3}, 0.1) == 0.3
    assert MUNET.inherits_momentum is False and MU2NET.inherits_momentum is True
    assert MUNET.clones_resized_posembed is False and MU2NET.clones_resized_posembed is True
    # a Ray worker receives the tie rule as a bound method: it pickles
    assert pickle.loads(pickle.dumps(MU2NET.improves))(0.5, 0.5)
    assert not pickle.loads(pickle.dumps(MUNET.improves))(0.5, 0.5)


def test_mu2net_mu_is_the_paths_own_and_a_resized_posembed_always_trains(root):
    settings = MutationSettings(mu=0.0)
    space = SearchSpace(ranges={"_mu_": (1.0,)})  # mutated first, and stays 1
    f = ChildFactory(task=TASK, num_classes=10, root=root, space=space,
                     locks=Locks.build([s.component_id for s in root.slots], {}), settings=settings,
                     strategy=MU2NET, rng=random.Random(0))
    parent = own_path(root)
    parent.hparams = parent.hparams.replace(_mu_=1.0)  # mu = 1: every frozen component is cloned
    child = f.child(parent, DS, mutate=True)
    assert all(s.origin is not Origin.SHARED for s in child.slots)
    resized = f.child(root, {"ds_image_size": 16}, mutate=False)
    assert resized.slot("posembed_input").origin is Origin.CLONE


def test_a_generations_dataset_hyperparameters_come_from_the_best_path_or_the_last_task(root):
    from munet_serve.evolver.evolution import generation_ds

    space = SearchSpace.munet(num_layers=2, patch_size=8, root_image_size=32)
    other = own_path(root, "letters")
    other.hparams = other.hparams.replace(ds_area_range_min=1.0, ds_flip_left_right=False, ds_image_size=48)
    best = own_path(root)
    best.hparams = best.hparams.replace(ds_area_range_min=0.5)
    rng = random.Random(0)
    defaults = generation_ds(32, best=None, latest_other=None, space=space, mu=0.0, rng=rng)
    assert defaults["ds_area_range_min"] == 0.05 and defaults["ds_flip_left_right"] is True
    transferred = generation_ds(32, best=None, latest_other=other, space=space, mu=0.0, rng=rng)
    assert transferred["ds_area_range_min"] == 1.0 and transferred["ds_flip_left_right"] is False
    assert transferred["ds_image_size"] == 32  # the image size is the task's own
    own = generation_ds(32, best=best, latest_other=other, space=space, mu=0.0, rng=rng)
    assert own["ds_area_range_min"] == 0.5 and own["ds_flip_left_right"] is True  # the task's own best wins
    mutated = [generation_ds(32, best=best, latest_other=None, space=space, mu=1.0, rng=rng) for _ in range(50)]
    assert {m["ds_area_range_min"] for m in mutated} == {0.2, 1.0}  # one neighbour step from 0.5, either way
