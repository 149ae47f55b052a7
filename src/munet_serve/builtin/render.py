"""Glyph rendering with Pillow, the blank/.notdef check, near-duplicate font designs, and augmentation.

A glyph is drawn once per (face, character) white on black (anchor "mm"), cropped to its ink, and kept at that size;
`clean` scales it to fit `MAX_SIDE` and centres it in a `SIZE` x `SIZE` image, and `augment` does the same through a
random affine map (rotation, shear, scale, translation) after an optional stroke change (MaxFilter / MinFilter), then
blurs and adds Gaussian noise, every draw from the numpy Generator it is given.

Text is laid out with Pillow's basic layout (one code point, no shaping): each class is one isolated character, and the
result does not depend on whether Pillow was built with raqm.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .fonts import Face

SIZE = 32  # output images are SIZE x SIZE
MAX_SIDE = 28  # a clean glyph's longer side
RENDER_PX = 40  # font size glyphs are drawn at before scaling
NOTDEF_PROBE = "\U0010fffd"  # a private-use code point no font maps: draws the .notdef glyph
MIN_INK_PIXELS = 6  # a 32x32 glyph with fewer lit pixels counts as blank
SAME_DESIGN = 0.035  # design_distance below which two families are one design (calibrated on the Debian fonts)


@functools.lru_cache(maxsize=512)
def load_font(path: str, index: int, size: int = RENDER_PX) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC)


def draw_glyph(font: ImageFont.FreeTypeFont, ch: str) -> np.ndarray | None:
    """The glyph's ink, cropped: uint8 [h, w], or None where nothing was drawn."""
    for factor in (3, 8):  # a glyph that reaches the canvas edge is drawn again on a larger one
        side = int(font.size) * factor
        canvas = Image.new("L", (side, side), 0)
        ImageDraw.Draw(canvas).text((side // 2, side // 2), ch, fill=255, font=font, anchor="mm")
        box = canvas.getbbox()
        if box is None:
            return None
        if box[0] > 0 and box[1] > 0 and box[2] < side and box[3] < side:
            break
    return np.asarray(canvas.crop(box))


@functools.lru_cache(maxsize=65536)
def glyph(path: str, index: int, ch: str) -> np.ndarray | None:
    """`draw_glyph` for one face, memoised (the array is shared: do not modify it)."""
    out = draw_glyph(load_font(path, index), ch)
    if out is not None:
        out.setflags(write=False)
    return out


def fit(crop: np.ndarray, size: int = SIZE, max_side: int = MAX_SIDE) -> np.ndarray:
    """Scales a cropped glyph so its longer side is `max_side` and centres it in a `size` x `size` image."""
    h, w = crop.shape
    scale = max_side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS)
    out = Image.new("L", (size, size), 0)
    out.paste(small, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(out)


def clean(face: Face, ch: str) -> np.ndarray | None:
    crop = glyph(face.path, face.index, ch)
    return None if crop is None else fit(crop)


def is_blank(image: np.ndarray) -> bool:
    return int(np.count_nonzero(image > 64)) < MIN_INK_PIXELS


def is_tofu(crop: np.ndarray, notdef: np.ndarray | None) -> bool:
    """Whether a drawn glyph is the face's .notdef box (what a font draws for a character it lacks)."""
    if notdef is None or crop.shape != notdef.shape:
        return False
    return float(np.abs(crop.astype(np.int16) - notdef).mean()) < 2.0


def renders_all(face: Face, chars: str) -> bool:
    """Whether every character draws as real ink: not blank at SIZE (hairline faces fade out when scaled down), not
    the face's .notdef (tofu) glyph, and no two
    characters alike (some fonts map code points they cannot draw to one placeholder box instead of .notdef)."""
    notdef = glyph(face.path, face.index, NOTDEF_PROBE)
    seen: set[tuple[tuple[int, ...], bytes]] = set()
    for ch in chars:
        crop = glyph(face.path, face.index, ch)
        if crop is None or is_blank(fit(crop)) or is_tofu(crop, notdef):
            return False
        key = (crop.shape, crop.tobytes())
        if key in seen:
            return False
        seen.add(key)
    return True


def _blur(images: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Separable Gaussian blur over the last two axes (float32)."""
    radius = int(3 * sigma)
    x = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    pad = [(0, 0)] * (images.ndim - 2) + [(radius, radius), (radius, radius)]
    padded = np.pad(images.astype(np.float32), pad)
    rows = sum(kernel[k] * padded[..., k : k + images.shape[-2], :] for k in range(len(kernel)))
    return sum(kernel[k] * rows[..., :, k : k + images.shape[-1]] for k in range(len(kernel)))


def design_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two fonts draw a character set: the median over characters of the mean absolute difference
    (0..1) between their blurred clean glyphs. Copies of one design score under SAME_DESIGN (a few pixels moved
    on most glyphs); distinct designs score above it however alike their overall style."""
    return float(np.median(np.abs(a - b).mean(axis=(1, 2))))


def design_groups(families: Sequence[Sequence[Face]], chars: str) -> list[list[int]]:
    """Groups families (each a non-empty list of faces, the first its representative) whose clean glyphs for `chars`
    are the same design shipped under two names (a Mono CJK and its proportional twin, the Latin letters an Indic
    font copies from FreeSerif), transitively. Returns lists of indices into `families`, each sorted."""
    n = len(families)
    blurred = [
        _blur(np.stack([clean(faces[0], ch) for ch in chars]).astype(np.float32) / 255.0)  # type: ignore[misc]
        for faces in families
    ]
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if design_distance(blurred[i], blurred[j]) < SAME_DESIGN:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values())


def _stroke(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    draw = rng.random()
    if draw < 0.25:
        return image.filter(ImageFilter.MaxFilter(3))
    if draw < 0.4:
        thinner = image.filter(ImageFilter.MinFilter(3))
        ink, kept = np.count_nonzero(np.asarray(image) > 64), np.count_nonzero(np.asarray(thinner) > 64)
        return thinner if kept >= 0.5 * ink else image
    return image


def augment(crop: np.ndarray, rng: np.random.Generator, size: int = SIZE, max_side: int = MAX_SIDE) -> np.ndarray:
    """One random variant of a cropped glyph: stroke width, affine map, blur and noise, centred in size x size."""
    pad = 2
    h, w = crop.shape
    image = Image.new("L", (w + 2 * pad, h + 2 * pad), 0)
    image.paste(Image.fromarray(crop), (pad, pad))
    image = _stroke(image, rng)
    base = max_side / max(h, w)
    scale = base * rng.uniform(0.8, 1.0)
    sx, sy = scale * rng.uniform(0.9, 1.1), scale * rng.uniform(0.9, 1.1)
    angle = math.radians(rng.uniform(-12.0, 12.0))
    shear = rng.uniform(-0.2, 0.2)
    tx, ty = rng.uniform(-2.0, 2.0, size=2)
    # forward map: input centre -> scale -> shear -> rotate -> output centre + translation
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    forward = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    inverse = np.linalg.inv(forward)
    centre_in = np.array([(w + 2 * pad) / 2.0, (h + 2 * pad) / 2.0])
    centre_out = np.array([size / 2.0 + tx, size / 2.0 + ty])
    offset = centre_in - inverse @ centre_out
    data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    out = image.transform((size, size), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.3:
        out = out.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    pixels = np.asarray(out, dtype=np.float32)
    sigma = rng.uniform(0.0, 10.0)
    pixels = pixels + rng.normal(0.0, 1.0, pixels.shape).astype(np.float32) * np.float32(sigma)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
