"""Rendered character datasets: the font families that can draw a character set, their split, and the examples.

A face counts for a character set only if its cmap covers every character and each one draws as real ink (not blank,
not .notdef). Faces are grouped into families by name (fonts.family_key), then families that draw the set the same
way are merged (render.design_groups), so one design never ends up in two splits. Families are sorted by name,
shuffled with a seed derived from the dataset name, and dealt to test, validation and train (about 20 % / 20 % /
the rest, at least one each): the test split uses only fonts training never saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from munet_serve.artifacts import Split

from . import render
from .cache import GENERATOR_VERSION, atomic_write_bytes, read_bytes
from .dataset import BuiltinDataset, SplitSizes
from .fonts import Face, FontIndex
from .scripts import frequent_ideographs

MIN_FAMILIES = 3
SPLIT_ORDER = (Split.TRAIN, Split.VALIDATION, Split.TEST)


@dataclass(frozen=True)
class FontFamily:
    """One font design: its name and the faces (regular first) that draw every character of a set."""

    name: str
    faces: tuple[Face, ...]


def seed_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def _face_order(face: Face) -> tuple:
    return (not face.is_regular, face.path, face.index)


def _compute_families(chars: str, index: FontIndex) -> list[FontFamily]:
    by_family: dict[str, list[Face]] = {}
    for face in index.covering(chars):
        if render.renders_all(face, chars):
            by_family.setdefault(face.family, []).append(face)
    names = sorted(by_family)
    faces = [sorted(by_family[n], key=_face_order) for n in names]
    out = []
    for group in render.design_groups(faces, chars):
        members = [names[i] for i in group]
        merged = sorted((f for i in group for f in faces[i]), key=_face_order)
        out.append(FontFamily(" / ".join(members), tuple(merged)))
    return sorted(out, key=lambda f: f.name)


def _plan_path(cache_dir: Path, index: FontIndex, chars: str) -> Path:
    digest = hashlib.sha256(chars.encode()).hexdigest()[:12]
    return cache_dir / f"font-plan-{index.key}-{digest}-g{GENERATOR_VERSION}.json"


_PLANS: dict[tuple[str, str], tuple[FontFamily, ...]] = {}


def _families_memo(chars: str, index: FontIndex, cache_dir: Path | None) -> tuple[FontFamily, ...]:
    key = (chars, index.key)
    if key not in _PLANS:
        _PLANS[key] = _load_or_compute(chars, index, cache_dir)
    return _PLANS[key]


def _load_or_compute(chars: str, index: FontIndex, cache_dir: Path | None) -> tuple[FontFamily, ...]:
    path = _plan_path(cache_dir, index, chars) if cache_dir is not None else None
    data = read_bytes(path) if path is not None else None
    if data is not None:
        try:
            faces = {(f.path, f.index): f for f in index.faces}
            plan = json.loads(data)
            return tuple(FontFamily(name, tuple(faces[(p, i)] for p, i in members)) for name, members in plan)
        except (ValueError, KeyError, TypeError):
            pass
    families = _compute_families(chars, index)
    if path is not None:
        plan = [[f.name, [[face.path, face.index] for face in f.faces]] for f in families]
        try:
            atomic_write_bytes(path, json.dumps(plan, ensure_ascii=False).encode())
        except OSError:
            pass
    return tuple(families)


def families_for(chars: str, index: FontIndex, cache_dir: Path | None = None) -> list[FontFamily]:
    """The font families (designs) under `index` that draw every character of `chars`, sorted by name."""
    return list(_families_memo(chars, index, cache_dir))


def assign_splits(name: str, families: Sequence[FontFamily]) -> dict[Split, list[FontFamily]]:
    """Deals families to test, validation and train: sorted by name, shuffled with a seed from `name`, then about
    20 % to test, 20 % to validation and the rest to train (at least one each; needs three families)."""
    if len(families) < MIN_FAMILIES:
        raise ValueError(f"{name}: {len(families)} font families, at least {MIN_FAMILIES} needed")
    ordered = sorted(families, key=lambda f: f.name)
    perm = np.random.default_rng(seed_of(f"{name}/families")).permutation(len(ordered))
    shuffled = [ordered[int(i)] for i in perm]
    n = len(shuffled)
    n_test = max(1, round(0.2 * n))
    n_val = max(1, round(0.2 * n))
    return {
        Split.TEST: sorted(shuffled[:n_test], key=lambda f: f.name),
        Split.VALIDATION: sorted(shuffled[n_test : n_test + n_val], key=lambda f: f.name),
        Split.TRAIN: sorted(shuffled[n_test + n_val :], key=lambda f: f.name),
    }


def render_dataset(name: str, description: str, chars: str, families: Sequence[FontFamily],
                   sizes: SplitSizes) -> BuiltinDataset:
    """`sizes.<split>` augmented examples of every character per split, round-robin over the split's families (and
    over each family's faces), each from its own seeded Generator: the same inputs always give the same arrays."""
    assigned = assign_splits(name, families)
    source_names = sorted(f.name for f in families)
    source_id = {n: i for i, n in enumerate(source_names)}
    seed = seed_of(name)
    total = sizes.per_class * len(chars)
    images = np.zeros((total, render.SIZE, render.SIZE), dtype=np.uint8)
    labels = np.zeros(total, dtype=np.int64)
    splits = np.zeros(total, dtype=np.uint8)
    sources = np.zeros(total, dtype=np.int32)
    row = 0
    for split in SPLIT_ORDER:
        fams = assigned[split]
        for label, ch in enumerate(chars):
            for j in range(sizes.of(split)):
                family = fams[j % len(fams)]
                face = family.faces[(j // len(fams)) % len(family.faces)]
                crop = render.glyph(face.path, face.index, ch)
                assert crop is not None  # families_for kept only faces that draw every character
                rng = np.random.default_rng([seed, int(split), label, j])
                images[row] = render.augment(crop, rng)
                labels[row], splits[row], sources[row] = label, int(split), source_id[family.name]
                row += 1
    return BuiltinDataset(name=name, description=description, images=images, labels=labels, splits=splits,
                          label_names=list(chars), sources=sources, source_names=source_names)


def cjk_classes(index: FontIndex, count: int, min_families: int = 5) -> tuple[str, list[Face]]:
    """`count` frequent CJK ideographs (scripts.frequent_ideographs) that every face able to draw nearly all of them
    covers, spread evenly over code-point order, and those faces. Empty when fewer than `min_families` name
    families can draw them."""
    candidates = frequent_ideographs()
    wanted = np.fromiter((ord(c) for c in candidates), dtype=np.int32, count=len(candidates))
    capable = []
    for face in index.faces:
        covered = np.isin(wanted, face.codes)
        if covered.mean() >= 0.9:
            capable.append((face, covered))
    if len({face.family for face, _ in capable}) < min_families:
        return "", []
    common = np.logical_and.reduce([covered for _, covered in capable])
    pool = [c for c, ok in zip(candidates, common, strict=True) if ok]
    if len(pool) < count:
        return "", []
    picks = np.linspace(0, len(pool) - 1, count).round().astype(int)
    return "".join(pool[int(i)] for i in picks), [face for face, _ in capable]
