"""The PyTorch module of each component kind, built from its kind and config alone.

Each module takes one tensor and returns one tensor, so a path is the plain chain of its components and each one
exports to an ONNX graph with one input ``x`` and one output ``y``. A module's `config` is exactly what
`build_module` needs to rebuild it; its weights travel separately (see export.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar, cast

import torch
from timm.layers import LayerNorm, lecun_normal_
from timm.models.vision_transformer import Block
from torch import nn

from munet_serve.artifacts import ComponentKind

logger = logging.getLogger(__name__)

__all__ = [
    "ClassToken",
    "Component",
    "EncoderBlock",
    "EncoderNorm",
    "Head",
    "PatchEmbedding",
    "PositionEmbedding",
    "ResidualAdapter",
    "build_module",
    "fresh_adapter",
    "fresh_head",
]

LN_EPS = 1e-6
ACTIVATIONS = ("gelu", "gelu_tanh")


def _gelu(name: str) -> Any:
    if name == "gelu":
        return nn.GELU
    if name == "gelu_tanh":
        return partial(nn.GELU, approximate="tanh")
    raise ValueError(f"unknown activation {name!r}; known: {ACTIVATIONS}")


class Component(nn.Module):
    """A component module: one tensor in, one tensor out, rebuildable from (kind, config)."""

    kind: ClassVar[ComponentKind]
    # mu2Net's momentum trace per parameter name (§5.3), stored with the component when it was trained with one;
    # clones copy it (deepcopy), and a child's optimizer resumes from it.
    momentum: dict[str, torch.Tensor] | None = None

    @property
    def config(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Component:
        raise NotImplementedError


class PatchEmbedding(Component):
    """Patch embedding: [N, C, H, W] -> [N, P, D] (conv with stride = kernel = patch size, then flatten)."""

    kind = ComponentKind.EMBEDDING

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "patch_size": int(self.proj.kernel_size[0]),
            "in_chans": int(self.proj.in_channels),
            "embed_dim": int(self.proj.out_channels),
            "bias": self.proj.bias is not None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PatchEmbedding:
        return cls(int(config["patch_size"]), int(config["in_chans"]), int(config["embed_dim"]), bool(config["bias"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ClassToken(Component):
    """Prepends the class token: [N, P, D] -> [N, 1 + P, D]."""

    kind = ComponentKind.CLS

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

    @property
    def config(self) -> dict[str, Any]:
        return {"embed_dim": int(self.cls_token.shape[-1])}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ClassToken:
        return cls(int(config["embed_dim"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)


class PositionEmbedding(Component):
    """Adds the learned position embedding, class-token row included: [N, T, D] -> [N, T, D], T = 1 + gh * gw."""

    kind = ComponentKind.POSEMBED

    def __init__(self, embed_dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = (int(grid[0]), int(grid[1]))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))

    @property
    def config(self) -> dict[str, Any]:
        return {"embed_dim": int(self.pos_embed.shape[-1]), "grid": list(self.grid)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PositionEmbedding:
        gh, gw = config["grid"]
        return cls(int(config["embed_dim"]), (int(gh), int(gw)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos_embed


class EncoderBlock(Component):
    """One timm pre-norm transformer `Block`: [N, T, D] -> [N, T, D].

    The wrapper hides Block's optional arguments so the module takes x only.
    """

    kind = ComponentKind.ENCODER_BLOCK

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_norm: bool = False,
        proj_bias: bool = True,
        init_values: float | None = None,
        norm_eps: float = LN_EPS,
        act: str = "gelu",
    ) -> None:
        super().__init__()
        self._config = {
            "dim": int(dim),
            "num_heads": int(num_heads),
            "mlp_ratio": float(mlp_ratio),
            "qkv_bias": bool(qkv_bias),
            "qk_norm": bool(qk_norm),
            "proj_bias": bool(proj_bias),
            "init_values": None if init_values is None else float(init_values),
            "norm_eps": float(norm_eps),
            "act": act,
        }
        self.block = Block(
            dim=dim,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_norm=qk_norm,
            proj_bias=proj_bias,
            init_values=init_values,
            act_layer=_gelu(act),
            norm_layer=cast(Any, partial(LayerNorm, eps=norm_eps)),
        )
        hidden = cast(nn.Linear, self.block.mlp.fc1).out_features
        if hidden != int(dim * mlp_ratio):  # pragma: no cover - Block computes it this way
            raise ValueError(f"mlp_ratio {mlp_ratio} does not give the hidden width {hidden}")

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EncoderBlock:
        return cls(**{k: config[k] for k in config})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ResidualAdapter(Component):
    """Residual adapter before a block: x + Up(GELU_tanh(Down(LayerNorm(x)))); Up starts at zero (identity)."""

    kind = ComponentKind.RESIDUAL_ADAPTER

    def __init__(self, dim: int, adapter_dim: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps=eps)
        self.down = nn.Linear(dim, adapter_dim)
        self.act = nn.GELU(approximate="tanh")
        self.up = nn.Linear(adapter_dim, dim)
        lecun_normal_(self.down.weight)  # flax Dense default init
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "dim": int(self.down.in_features),
            "adapter_dim": int(self.down.out_features),
            "eps": float(self.norm.eps),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ResidualAdapter:
        return cls(int(config["dim"]), int(config["adapter_dim"]), float(config.get("eps", LN_EPS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.act(self.down(self.norm(x))))


class EncoderNorm(Component):
    """The final LayerNorm: [N, T, D] -> [N, T, D]."""

    kind = ComponentKind.ENCODER_NORM

    def __init__(self, dim: int, eps: float = LN_EPS) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, eps=eps)

    @property
    def config(self) -> dict[str, Any]:
        return {"dim": int(self.norm.normalized_shape[0]), "eps": float(self.norm.eps)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EncoderNorm:
        return cls(int(config["dim"]), float(config.get("eps", LN_EPS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class Head(Component):
    """Linear classifier on the class token: [N, T, D] -> [N, C]. Fresh heads are all zeros (vit_jax default)."""

    kind = ComponentKind.HEAD

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    @property
    def config(self) -> dict[str, Any]:
        return {"dim": int(self.fc.in_features), "num_classes": int(self.fc.out_features)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Head:
        return cls(int(config["dim"]), int(config["num_classes"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x[:, 0])


_MODULES: dict[ComponentKind, type[Component]] = {
    cls.kind: cls
    for cls in (PatchEmbedding, ClassToken, PositionEmbedding, EncoderBlock, ResidualAdapter, EncoderNorm, Head)
}


def build_module(kind: ComponentKind | str, config: Mapping[str, Any]) -> Component:
    """A module of this kind and config, with its initial weights (zeros for heads, identity for adapters)."""
    kind = ComponentKind(kind)
    try:
        return _MODULES[kind].from_config(config)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"cannot build a {kind.value} component from config {dict(config)}: {e}") from e


def fresh_head(dim: int, num_classes: int) -> Head:
    """A zero-initialised head (kernel and bias)."""
    return Head(dim, num_classes)


def fresh_adapter(dim: int, adapter_dim: int, *, generator: torch.Generator | None = None) -> ResidualAdapter:
    """A new adapter computing the identity; `generator` seeds its down-projection."""
    adapter = ResidualAdapter(dim, adapter_dim)
    if generator is not None:
        with torch.no_grad():
            std = (1.0 / dim) ** 0.5 / 0.87962566103423978
            w = torch.empty_like(adapter.down.weight)
            nn.init.trunc_normal_(w, std=1.0, a=-2.0, b=2.0, generator=generator)
            adapter.down.weight.copy_(w * std)
    return adapter
