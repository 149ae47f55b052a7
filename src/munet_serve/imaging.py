"""Image decoding and the evaluation preprocessing of a path's InputSpec, shared by the server and the evolver.

The server preprocesses every request with `to_model_input`, and the evolver measures validation and test accuracy
with the same function, so a published test accuracy is what the server's answers achieve. Only numpy and Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, UnidentifiedImageError

# Refuse images beyond this many pixels (a decompression bomb guard; 8k x 8k).
MAX_PIXELS = 64 * 1024 * 1024
METHOD_MEAN = (0.5, 0.5, 0.5)
METHOD_STD = (0.5, 0.5, 0.5)


class ImageError(ValueError):
    """An image that cannot be used: undecodable, or pixels of the wrong shape or dtype."""


@dataclass(frozen=True)
class InputSpec:
    """How a path expects its input: RGB, resized to image_size (bilinear), then (x / 255 - mean) / std.

    The defaults give the method's scaling to [-1, 1] (x / 127.5 - 1).
    """

    image_size: int
    mean: tuple[float, float, float] = field(default=METHOD_MEAN)
    std: tuple[float, float, float] = field(default=METHOD_STD)

    def __post_init__(self) -> None:
        if not 1 <= self.image_size <= 4096:
            raise ValueError(f"image_size must be in [1, 4096], got {self.image_size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need 3 values (R, G, B)")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    @property
    def model_input_shape(self) -> tuple[int, int, int]:
        return (3, self.image_size, self.image_size)


def decode(data: bytes) -> np.ndarray:
    """Decodes an encoded image to uint8 pixels: [H, W] for grey images, [H, W, 3] otherwise."""
    if not data:
        raise ImageError("empty image bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ImageError(f"image of {img.width}x{img.height} pixels is over the limit of {MAX_PIXELS} pixels")
            img.load()
            grey = img.mode in ("1", "L", "I;16", "I;16B", "I;16L", "I", "F")
            converted = img.convert("L") if grey else img if img.mode == "RGB" else img.convert("RGB")
            return np.asarray(converted, dtype=np.uint8).copy()
    except UnidentifiedImageError as e:
        raise ImageError(f"cannot decode image ({len(data)} bytes): not a format Pillow reads") from e
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"cannot decode image ({len(data)} bytes): {e}") from e


def check_pixels(pixels: np.ndarray) -> np.ndarray:
    """Validates uint8 pixels and returns them as [H, W] (grey) or [H, W, 3] (RGB; alpha dropped)."""
    if pixels.dtype != np.uint8:
        raise ImageError(f"pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ImageError(f"pixels must have shape [H, W] or [H, W, C] with C in (1, 3, 4), got {list(pixels.shape)}")
    if pixels.shape[0] < 1 or pixels.shape[1] < 1 or pixels.shape[0] * pixels.shape[1] > MAX_PIXELS:
        raise ImageError(f"pixel array of shape {list(pixels.shape)} has an invalid size")
    return pixels


def resize(pixels: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """Resizes uint8 pixels ([H, W] or [H, W, 3]) to height x width (default square), bilinear."""
    width = height if width is None else width
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    img = Image.fromarray(pixels)
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def to_model_input(images: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """Preprocesses uint8 images of any size to the float32 [N, 3, S, S] batch a path takes."""
    n, s = len(images), spec.image_size
    out = np.empty((n, s, s, 3), dtype=np.float32)
    for i, pixels in enumerate(images):
        resized = resize(check_pixels(pixels), s)
        out[i] = resized[:, :, None] if resized.ndim == 2 else resized
    out *= np.float32(1.0 / 255.0)
    out -= np.asarray(spec.mean, dtype=np.float32)
    out /= np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def encode_png(pixels: np.ndarray) -> bytes:
    """Encodes uint8 pixels ([H, W] or [H, W, 3]) as PNG."""
    buf = io.BytesIO()
    Image.fromarray(check_pixels(pixels)).save(buf, format="PNG")
    return buf.getvalue()
