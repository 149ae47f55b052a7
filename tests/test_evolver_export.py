"""Export: ONNX parity for every kind at shapes other than the export example, ids, and weights round trips."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from munet_serve.artifacts import ComponentKind, read_component_metadata
from munet_serve.evolver.components import fresh_adapter, fresh_head
from munet_serve.evolver.export import (
    PARITY_TOLERANCE,
    component_id,
    cpu_session,
    export_component,
    export_onnx,
    fresh_lineage,
    load_module,
    probe_shape,
    root_lineage,
    serialize_weights,
)
from munet_serve.evolver.path import PathModule


def _run(onnx: bytes, x: torch.Tensor) -> np.ndarray:
    session = cpu_session(onnx)  # works whether or not a server in this process set ORT's global thread pool
    assert [i.name for i in session.get_inputs()] == ["x"] and [o.name for o in session.get_outputs()] == ["y"]
    return session.run(["y"], {"x": x.numpy()})[0]


def test_root_components_pass_parity(tiny_root):
    kinds = [a.info.kind for a in tiny_root.artifacts]
    assert kinds == [
        ComponentKind.EMBEDDING, ComponentKind.CLS, ComponentKind.POSEMBED, ComponentKind.ENCODER_BLOCK,
        ComponentKind.ENCODER_BLOCK, ComponentKind.ENCODER_NORM,
    ]
    for artifact in tiny_root.artifacts:
        assert artifact.info.parity_max_abs_error <= PARITY_TOLERANCE
        assert artifact.info.lineage["origin"] == "root"


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("embedding", (5, 3, 40, 24)),  # other batch, height and width than the export example
        ("cls", (4, 11, 64)),
        ("posembed_input", (7, 17, 64)),  # T is fixed by the grid
        ("encoderblock_0", (6, 13, 64)),
        ("encoder_norm", (1, 3, 64)),
    ],
)
def test_graph_matches_module_at_other_shapes(tiny_root, name, shape):
    artifact = tiny_root.artifacts[[n for n, _ in tiny_root.root.components].index(name)]
    x = torch.randn(shape)
    with torch.no_grad():
        expected = tiny_root.module(name)(x).numpy()
    actual = _run(artifact.onnx, x)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= PARITY_TOLERANCE


def test_head_and_adapter_export():
    torch.manual_seed(0)
    head = fresh_head(64, 10)
    with torch.no_grad():
        head.fc.weight.normal_()
        head.fc.bias.normal_()
    adapter = fresh_adapter(64, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapter.up.weight.normal_(0, 0.1)  # a trained adapter is no longer the identity
    for module, shape in ((head, (3, 6, 64)), (adapter, (2, 12, 64))):
        artifact = export_component(module, fresh_lineage("digits", module.kind.value))
        assert artifact.info.parity_max_abs_error <= PARITY_TOLERANCE
        x = torch.randn(shape)
        with torch.no_grad():
            expected = module(x).numpy()
        assert np.abs(_run(artifact.onnx, x) - expected).max() <= PARITY_TOLERANCE


def test_path_chain_of_graphs_matches_path_module(tiny_root):
    """Running the root graphs in order equals the PyTorch chain (what the server does)."""
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = x
    for artifact in tiny_root.artifacts:
        y = torch.from_numpy(_run(artifact.onnx, y))
    with torch.no_grad():
        expected = PathModule(tiny_root.root.components)(x)
    assert (y - expected).abs().max() <= 1e-4


def test_root_ids_are_deterministic_and_fresh_heads_distinct(tiny_root):
    for (name, module), artifact in zip(tiny_root.root.components, tiny_root.artifacts, strict=True):
        assert component_id(serialize_weights(module, root_lineage(name))) == artifact.id
    a, b = fresh_head(64, 10), fresh_head(64, 10)
    ida = component_id(serialize_weights(a, fresh_lineage("digits", "head")))
    idb = component_id(serialize_weights(b, fresh_lineage("digits", "head")))
    assert ida != idb  # equal zero weights, distinct components


def test_weights_carry_kind_config_and_lineage(tiny_root):
    artifact = tiny_root.artifacts[3]
    meta = read_component_metadata(artifact.weights)
    assert meta.kind is ComponentKind.ENCODER_BLOCK
    assert meta.config == tiny_root.module("encoderblock_0").config
    assert meta.lineage == root_lineage("encoderblock_0")
    assert artifact.info.num_params == sum(p.numel() for p in tiny_root.module("encoderblock_0").parameters())


def test_load_module_round_trip_is_exact(tiny_root):
    x_img = torch.randn(2, 3, 32, 32)
    x_tok = torch.randn(2, 17, 64)
    for (name, module), artifact in zip(tiny_root.root.components, tiny_root.artifacts, strict=True):
        rebuilt = load_module(artifact)
        assert type(rebuilt) is type(module) and rebuilt.config == module.config
        x = x_img if name == "embedding" else (x_tok[:, 1:] if name == "cls" else x_tok)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), module(x))
        assert torch.equal(load_module(artifact.weights)(x), rebuilt(x))


def test_a_reused_graph_is_the_exported_graph_with_the_modules_own_weights(tiny_root):
    generator = torch.Generator().manual_seed(3)
    modules = [fresh_head(64, 10), fresh_adapter(64, 8, generator=generator),
               *[copy.deepcopy(m) for _, m in tiny_root.root.components]]
    for module in modules:
        with torch.no_grad():
            for p in module.parameters():
                p.add_(torch.randn(p.shape, generator=generator))
        reused, fresh = export_onnx(module), export_onnx(module, reuse=False)
        a, b = onnx.load_from_string(reused), onnx.load_from_string(fresh)
        assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
        x = torch.randn(*probe_shape(module), generator=generator).numpy()
        (ya,), (yb,) = cpu_session(reused).run(["y"], {"x": x}), cpu_session(fresh).run(["y"], {"x": x})
        assert np.array_equal(ya, yb), module.kind
