"""Helpers of the KServe v2 conformance tests: Triton's own clients against a real server, and native Predict as the
reference their answers must agree with."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from munet_serve.clients import Client

LOGITS_TOLERANCE = 1e-5


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels).save(out, "PNG")
    return out.getvalue()


def native_logits(client: Client, task: str, images: np.ndarray, version: int | None = None) -> np.ndarray:
    """Logits [N, L] of native Predict for uint8 pixels [N, H, W(, C)]."""
    result = client.predict_batch(task, images, include_logits=True, version=version)
    return np.stack([p.logits for p in result.predictions])


def assert_agrees(logits: np.ndarray, reference: np.ndarray) -> None:
    """Same top-1 and logits within 1e-5 of native Predict's."""
    assert logits.shape == reference.shape
    assert logits.dtype == np.float32
    np.testing.assert_array_equal(logits.argmax(axis=1), reference.argmax(axis=1))
    np.testing.assert_allclose(logits, reference, rtol=0, atol=LOGITS_TOLERANCE)


def parse_classes(entries: np.ndarray) -> list[list[tuple[float, int, str]]]:
    """The classification extension's "value:index:label" strings, per image."""
    rows = []
    for row in entries:
        parsed = []
        for entry in row:
            text = entry.decode() if isinstance(entry, bytes) else str(entry)
            value, index, label = text.split(":", 2)
            parsed.append((float(value), int(index), label))
        rows.append(parsed)
    return rows


def image_client_view(config: dict, metadata: dict) -> tuple[int, str, str, int, int, int, str, str]:
    """The checks Triton's example image client (image_client.py's parse_model) makes of a model before it sends an
    image, restated: one input and one output, an FP32 output with one dimension above 1, a batch dimension when
    max_batch_size > 0, an NHWC or NCHW image input of three dimensions besides the batch. Returns what it reads:
    max_batch_size, input and output names, channels, height, width, format and input datatype."""
    assert len(config["input"]) == 1 and len(config["output"]) == 1
    assert len(metadata["inputs"]) == 1 and len(metadata["outputs"]) == 1
    inp, out = metadata["inputs"][0], metadata["outputs"][0]
    max_batch = int(config.get("max_batch_size", 0))
    assert max_batch > 0
    assert out["datatype"] == "FP32"
    out_dims = [int(d) for d in out["shape"]][1:]  # past the batch dimension
    assert sum(1 for d in out_dims if d != 1) == 1
    shape = [int(d) for d in inp["shape"]]
    assert len(shape) == 4  # a batch dimension and three
    fmt = config["input"][0]["format"]
    assert fmt in ("FORMAT_NHWC", "FORMAT_NCHW")
    if fmt == "FORMAT_NHWC":
        h, w, c = shape[1:]
    else:
        c, h, w = shape[1:]
    assert c in (1, 3) and h > 0 and w > 0
    assert config["output"][0].get("label_filename")
    return max_batch, inp["name"], out["name"], c, h, w, fmt, inp["datatype"]
