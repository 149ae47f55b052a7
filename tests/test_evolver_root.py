"""Building the root: the cut equals timm's forward, truncation, local checkpoints, clear errors, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import timm
import torch

from munet_serve.evolver.components import Head
from munet_serve.evolver.config import ROOT_PRESETS, RootConfig
from munet_serve.evolver.errors import CheckpointError, RootUnavailableError, UnsupportedRootError
from munet_serve.evolver.export import component_id, root_lineage, serialize_weights
from munet_serve.evolver.path import PathModule
from munet_serve.evolver.root import build_root

TINY = ROOT_PRESETS["tiny-test"]
TINY_KWARGS = dict(img_size=32, embed_dim=64, depth=2, num_heads=2, patch_size=8)


def _timm_model(num_classes: int = 5, seed: int = 1, **overrides) -> torch.nn.Module:
    """A random timm ViT with non-trivial class token, position embedding and head."""
    torch.manual_seed(seed)
    kwargs = {**TINY_KWARGS, **overrides}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes, **kwargs).eval()
    with torch.no_grad():
        for p in (model.cls_token, model.pos_embed, model.head.weight, model.head.bias):
            p.normal_(0, 0.5)
    return model


def _path_with_timm_head(root, model) -> PathModule:
    head = Head(model.embed_dim, model.num_classes)
    head.fc.load_state_dict(model.head.state_dict())
    return PathModule([*root.components, ("head", head)])


def _assert_same_forward(root, model, image_size: int = 32) -> None:
    x = torch.randn(3, 3, image_size, image_size)
    path = _path_with_timm_head(root, model)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x))
        actual = path(x)
    assert (actual - expected).abs().max() <= 1e-5


def _save_backbone(model, path: Path) -> Path:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        safetensors.torch.save_file(state, str(path))
    else:
        torch.save({"model": state}, path)
    return path


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_cut_root_equals_timm_forward(tmp_path, suffix):
    model = _timm_model()
    ckpt = _save_backbone(model, tmp_path / f"vit{suffix}")
    config = RootConfig(model="vit_tiny_patch16_224", image_size=32, overrides=TINY.overrides, checkpoint=ckpt)
    root = build_root(config)
    assert [n for n, _ in root.components] == [
        "embedding", "cls", "posembed_input", "encoderblock_0", "encoderblock_1", "encoder_norm",
    ]
    assert root.source == f"timm:vit_tiny_patch16_224 checkpoint=vit{suffix}"
    _assert_same_forward(root, model)


def test_truncation_keeps_the_first_blocks(tmp_path):
    model = _timm_model(depth=3)
    ckpt = _save_backbone(model, tmp_path / "vit3.safetensors")
    overrides = dict(TINY.overrides, depth=3)
    root = build_root(RootConfig(image_size=32, overrides=overrides, checkpoint=ckpt, num_layers=2))
    assert root.num_layers == 2
    model.blocks = model.blocks[:2]
    _assert_same_forward(root, model)


def test_checkpoint_with_more_blocks_than_the_model(tmp_path):
    """A 3-block checkpoint loads into a 2-block model (the extra blocks are what truncation drops)."""
    ckpt = _save_backbone(_timm_model(depth=3), tmp_path / "deep.safetensors")
    root = build_root(RootConfig(image_size=32, overrides=TINY.overrides, checkpoint=ckpt))
    assert root.num_layers == 2


def test_checkpoint_missing_a_backbone_weight_is_named(tmp_path):
    state = {k: v for k, v in _timm_model().state_dict().items() if k != "blocks.1.mlp.fc2.bias"}
    ckpt = tmp_path / "broken.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(ckpt))
    with pytest.raises(CheckpointError, match=r"blocks\.1\.mlp\.fc2\.bias"):
        build_root(RootConfig(image_size=32, overrides=TINY.overrides, checkpoint=ckpt))
    with pytest.raises(CheckpointError, match="does not exist"):
        build_root(RootConfig(image_size=32, overrides=TINY.overrides, checkpoint=tmp_path / "nope.safetensors"))


def _write_augreg_npz(model, path: Path) -> None:
    """Writes a timm ViT in the layout of the AugReg (vit_jax) .npz files, the inverse of timm's npz loader."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    dim, heads = model.embed_dim, model.blocks[0].attn.num_heads
    w = {
        "embedding/kernel": sd["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
        "embedding/bias": sd["patch_embed.proj.bias"],
        "cls": sd["cls_token"],
        "Transformer/posembed_input/pos_embedding": sd["pos_embed"],
        "Transformer/encoder_norm/scale": sd["norm.weight"],
        "Transformer/encoder_norm/bias": sd["norm.bias"],
    }
    for i in range(len(model.blocks)):
        b, p = f"blocks.{i}.", f"Transformer/encoderblock_{i}/"
        qkv_w, qkv_b = sd[b + "attn.qkv.weight"], sd[b + "attn.qkv.bias"]
        for j, name in enumerate(("query", "key", "value")):
            w[f"{p}MultiHeadDotProductAttention_1/{name}/kernel"] = (
                qkv_w[j * dim : (j + 1) * dim].T.reshape(dim, heads, dim // heads)
            )
            w[f"{p}MultiHeadDotProductAttention_1/{name}/bias"] = qkv_b[j * dim : (j + 1) * dim].reshape(heads, -1)
        w[f"{p}MultiHeadDotProductAttention_1/out/kernel"] = (
            sd[b + "attn.proj.weight"].reshape(dim, heads, dim // heads).transpose(1, 2, 0)
        )
        w[f"{p}MultiHeadDotProductAttention_1/out/bias"] = sd[b + "attn.proj.bias"]
        for ln, norm in (("LayerNorm_0", "norm1"), ("LayerNorm_2", "norm2")):
            w[f"{p}{ln}/scale"], w[f"{p}{ln}/bias"] = sd[f"{b}{norm}.weight"], sd[f"{b}{norm}.bias"]
        for r in range(2):
            w[f"{p}MlpBlock_3/Dense_{r}/kernel"] = sd[f"{b}mlp.fc{r + 1}.weight"].T
            w[f"{p}MlpBlock_3/Dense_{r}/bias"] = sd[f"{b}mlp.fc{r + 1}.bias"]
    np.savez(path, **w)


def test_augreg_npz_checkpoint(tmp_path):
    model = _timm_model()
    ckpt = tmp_path / "Ti_16-i21k.npz"
    _write_augreg_npz(model, ckpt)
    root = build_root(RootConfig(image_size=32, overrides=TINY.overrides, checkpoint=ckpt))
    _assert_same_forward(root, model)
    # another image size: timm's loader resamples the position embedding to the new grid
    bigger = build_root(RootConfig(image_size=48, overrides=TINY.overrides, checkpoint=ckpt))
    assert dict(bigger.components)["posembed_input"].config["grid"] == [6, 6]


def test_no_hub_and_no_checkpoint_names_the_flags(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    config = RootConfig(model="vit_tiny_patch16_224.augreg_in21k", image_size=32, num_layers=3, pretrained=True)
    with pytest.raises(RootUnavailableError) as info:
        build_root(config)
    assert "--root-checkpoint" in str(info.value) and "--random-root" in str(info.value)
    with pytest.raises(RootUnavailableError, match="--random-root"):
        build_root(RootConfig(image_size=32))  # nothing asked at all


def test_random_root_is_deterministic_for_a_seed():
    def ids(seed: int) -> list[str]:
        root = build_root(RootConfig(**{**_tiny_fields(), "seed": seed}))
        return [component_id(serialize_weights(m, root_lineage(n))) for n, m in root.components]

    first, again, other = ids(0), ids(0), ids(1)
    assert first == again
    # random parts change with the seed; the final norm starts at ones/zeros whatever the seed (same content, same id)
    assert [a != b for a, b in zip(first, other, strict=True)] == [True, True, True, True, True, False]


def _tiny_fields() -> dict:
    return dict(model=TINY.model, image_size=TINY.image_size, overrides=dict(TINY.overrides), random_init=True)


def test_root_params_matches_the_paper_for_ti3():
    """P_root of ViT-Ti/16 truncated to 3 blocks at 32 px is 1,484,162 (docs/evolution.md §6)."""
    root = build_root(RootConfig(model="vit_tiny_patch16_224", image_size=32, num_layers=3, random_init=True))
    assert root.params == 1_484_162
    assert root.input.mean == (0.5, 0.5, 0.5)


def test_dinov2_style_root_no_embed_class_and_layer_scale(tmp_path):
    """no_embed_class models get a zero class-token row; layer scale and the model's mean/std are kept."""
    kwargs = dict(img_size=28, embed_dim=32, depth=1, num_heads=2)
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=3, **kwargs).eval()
    with torch.no_grad():
        model.pos_embed.normal_(0, 0.5)
        model.head.weight.normal_(0, 0.5)
    ckpt = _save_backbone(model, tmp_path / "dinov2.safetensors")
    overrides = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    root = build_root(RootConfig(model="vit_small_patch14_dinov2", image_size=28, overrides=overrides, checkpoint=ckpt))
    assert dict(root.components)["encoderblock_0"].config["init_values"] is not None
    assert root.input.mean != (0.5, 0.5, 0.5)  # ImageNet mean/std from the pretrained cfg
    _assert_same_forward(root, model, image_size=28)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"reg_tokens": 4}, "register tokens"),
        ({"global_pool": "avg", "class_token": False}, "global pooling"),
        ({"pre_norm": True}, "norm_pre"),
        ({"embed_norm_layer": "layernorm"}, "patch embedding"),
    ],
)
def test_unsupported_variants_are_refused(overrides, reason):
    config = RootConfig(image_size=32, overrides={**TINY.overrides, **overrides}, random_init=True)
    with pytest.raises(UnsupportedRootError, match=reason):
        build_root(config)
