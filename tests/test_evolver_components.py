"""Component modules: shapes of every kind, zero heads, identity adapters, rebuild from config."""

from __future__ import annotations

import pytest
import torch

from munet_serve.artifacts import ComponentKind
from munet_serve.evolver.components import build_module, fresh_adapter, fresh_head

D = 16
CONFIGS = {
    ComponentKind.EMBEDDING: {"patch_size": 4, "in_chans": 3, "embed_dim": D, "bias": True},
    ComponentKind.CLS: {"embed_dim": D},
    ComponentKind.POSEMBED: {"embed_dim": D, "grid": [2, 3]},
    ComponentKind.ENCODER_BLOCK: {
        "dim": D, "num_heads": 2, "mlp_ratio": 4.0, "qkv_bias": True, "qk_norm": False, "proj_bias": True,
        "init_values": None, "norm_eps": 1e-6, "act": "gelu",
    },
    ComponentKind.RESIDUAL_ADAPTER: {"dim": D, "adapter_dim": 4, "eps": 1e-6},
    ComponentKind.ENCODER_NORM: {"dim": D, "eps": 1e-6},
    ComponentKind.HEAD: {"dim": D, "num_classes": 5},
}


@pytest.mark.parametrize(
    ("kind", "shape_in", "shape_out"),
    [
        (ComponentKind.EMBEDDING, (2, 3, 8, 12), (2, 6, D)),
        (ComponentKind.CLS, (2, 6, D), (2, 7, D)),
        (ComponentKind.POSEMBED, (3, 7, D), (3, 7, D)),
        (ComponentKind.ENCODER_BLOCK, (2, 9, D), (2, 9, D)),
        (ComponentKind.RESIDUAL_ADAPTER, (2, 9, D), (2, 9, D)),
        (ComponentKind.ENCODER_NORM, (2, 9, D), (2, 9, D)),
        (ComponentKind.HEAD, (4, 9, D), (4, 5)),
    ],
)
def test_module_shapes_and_config_round_trip(kind, shape_in, shape_out):
    module = build_module(kind, CONFIGS[kind])
    assert module.kind is kind
    assert module.config == CONFIGS[kind]
    assert tuple(module(torch.randn(shape_in)).shape) == shape_out
    rebuilt = build_module(kind.value, module.config)
    assert rebuilt.config == module.config


def test_fresh_head_is_zero():
    head = fresh_head(D, 7)
    assert torch.count_nonzero(head.fc.weight) == 0 and torch.count_nonzero(head.fc.bias) == 0
    assert torch.equal(head(torch.randn(3, 5, D)), torch.zeros(3, 7))


def test_fresh_adapter_is_identity():
    x = torch.randn(4, 9, D) * 3
    for generator in (None, torch.Generator().manual_seed(1)):
        adapter = fresh_adapter(D, 8, generator=generator)
        assert torch.count_nonzero(adapter.down.weight) > 0  # the down projection is initialised
        assert (adapter(x) - x).abs().max() <= 1e-6


def test_block_with_layer_scale_and_tanh_gelu():
    cfg = dict(CONFIGS[ComponentKind.ENCODER_BLOCK], init_values=1e-5, act="gelu_tanh")
    block = build_module(ComponentKind.ENCODER_BLOCK, cfg)
    assert block.config == cfg
    assert block.block.mlp.act.approximate == "tanh"
    assert torch.allclose(block.block.ls1.gamma, torch.full((D,), 1e-5))


def test_bad_config_is_a_value_error():
    with pytest.raises(ValueError, match="encoder_block"):
        build_module(ComponentKind.ENCODER_BLOCK, {"dim": D})
    with pytest.raises(ValueError):
        build_module("no-such-kind", {})
