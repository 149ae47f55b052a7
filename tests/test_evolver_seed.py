"""The seed step's candidates: the root and other tasks' paths without their heads, each with a fresh head."""

from __future__ import annotations

from datetime import datetime, timezone

import torch

from munet_serve.clients.types import Metrics, PathComponent, PathRef, PathVersion, RootInfo
from munet_serve.evolver.components import fresh_adapter
from munet_serve.evolver.export import export_component, fresh_lineage
from munet_serve.evolver.path import Origin
from munet_serve.evolver.seed import build_seed_candidate, distinct_seeds, seed_paths
from munet_serve.evolver.store import ComponentStore
from munet_serve.imaging import InputSpec


def _root_info(tiny_root) -> RootInfo:
    comps = [PathComponent(n, a.id) for (n, _), a in zip(tiny_root.root.components, tiny_root.artifacts, strict=True)]
    return RootInfo("test", comps, {}, tiny_root.root.params, tiny_root.root.input)


def _store(tiny_root) -> ComponentStore:
    store = ComponentStore()
    for artifact in tiny_root.artifacts:
        store.add(artifact)
    return store


def test_seed_list_is_other_paths_then_root(tiny_root):
    root = _root_info(tiny_root)
    other = PathVersion(
        task="letters", version=3, components=[*root.components, PathComponent("head", "h" * 64)],
        hparams={"num_layers": 2.0}, metrics=Metrics(), input=InputSpec(32),
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), current=True,
    )
    seeds = seed_paths(root, {"letters": other})
    assert [s.parent for s in seeds] == [PathRef("letters", 3), PathRef("", 0)]
    assert [c.name for c in seeds[0].components] == [c.name for c in root.components]  # head removed
    assert seeds[1].components == root.components


def test_root_seed_candidate_trains_only_a_fresh_head(tiny_root):
    store = _store(tiny_root)
    (seed,) = seed_paths(_root_info(tiny_root), {})
    candidate = build_seed_candidate("digits", 10, seed, store)
    assert [s.name for s in candidate.slots][-1] == "head"
    assert [s.origin for s in candidate.slots] == [Origin.SHARED] * 6 + [Origin.FRESH]
    assert candidate.num_new_params() == 64 * 10 + 10
    assert candidate.hparams.num_layers == 2 and candidate.hparams.ds_image_size == 32
    assert candidate.parent == PathRef("", 0)
    assert candidate.module(torch.randn(2, 3, 32, 32)).abs().max() == 0  # zero head
    # shared components are the store's frozen modules, by reference
    assert candidate.slots[3].module is store.get(tiny_root.artifacts[3].id).module


def test_seed_from_a_path_with_an_adapter_keeps_its_architecture(tiny_root):
    store = _store(tiny_root)
    adapter = export_component(fresh_adapter(64, 16), fresh_lineage("letters", "residual_adapter_1"))
    store.add(adapter)
    root = _root_info(tiny_root)
    comps = [*root.components[:4], PathComponent("residual_adapter_1", adapter.id), *root.components[4:]]
    other = PathVersion("letters", 1, comps, {"adapter_dim": 16.0}, Metrics(), InputSpec(32), current=True)
    seed = seed_paths(root, {"letters": other})[0]
    candidate = build_seed_candidate("digits", 4, seed, store)
    assert candidate.hparams.adapter_layers == (1,) and candidate.hparams.adapter_dim == 16
    assert candidate.slots[4].name == "residual_adapter_1" and not candidate.slots[4].trainable
    assert candidate.module(torch.randn(1, 3, 32, 32)).shape == (1, 4)


def test_identical_seed_paths_are_trained_once(tiny_root):
    """A task seeded from the root with only a head shares the root's other components: one candidate suffices."""
    root = _root_info(tiny_root)
    other = PathVersion(
        "letters", 1, [*root.components, PathComponent("head", "h" * 64)], {}, Metrics(), root.input, current=True
    )
    seeds = distinct_seeds(seed_paths(root, {"letters": other}))
    assert [s.label for s in seeds] == ["seed letters v1"]
    bigger = PathVersion("big", 2, other.components, {}, Metrics(), InputSpec(48), current=True)
    assert len(distinct_seeds(seed_paths(root, {"big": bigger}))) == 2  # another input size is another candidate
