"""Reading a task's examples from a folder of images or an .npz file, and the built-in demo task."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from munet_serve.artifacts import Split

from .streams import TaskUpload

if TYPE_CHECKING:
    from munet_serve.builtin import BuiltinDataset

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
SPLIT_DIRS = {"train": Split.TRAIN, "validation": Split.VALIDATION, "val": Split.VALIDATION, "test": Split.TEST}


class DatasetFormatError(ValueError):
    """A folder or file that does not hold a task's examples in a form we read."""


def _label_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def from_folder(name: str, folder: Path, **spec: object) -> TaskUpload:
    """One sub-folder per label (``DIR/<label>/*.png``), or split folders first (``DIR/train/<label>/*.png``,
    with ``validation`` (or ``val``) and ``test`` beside it) to name the splits."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder} is not a folder")
    top = _label_dirs(folder)
    split_layout = bool(top) and all(p.name in SPLIT_DIRS for p in top)
    groups = [(SPLIT_DIRS[p.name], p) for p in top] if split_layout else [(None, folder)]
    labels = sorted({d.name for _, root in groups for d in _label_dirs(root)})
    if len(labels) < 2:
        raise DatasetFormatError(f"{folder} needs at least two label sub-folders, found {labels}")
    index = {label: i for i, label in enumerate(labels)}
    images: list[bytes] = []
    label_ids: list[int] = []
    splits: list[int] = []
    for split, root in groups:
        for label_dir in _label_dirs(root):
            for path in _images_in(label_dir):
                images.append(path.read_bytes())
                label_ids.append(index[label_dir.name])
                splits.append(int(split) if split is not None else 0)
    if not images:
        raise DatasetFormatError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}")
    return TaskUpload(name, labels, images, label_ids, splits if split_layout else None, **spec)  # type: ignore[arg-type]


def from_npz(name: str, path: Path, **spec: object) -> TaskUpload:
    """An .npz with uint8 ``images`` [N, H, W] or [N, H, W, C] and integer ``labels`` [N]; optional ``label_names``
    [K] and ``splits`` [N] (1 train, 2 validation, 3 test, or the words)."""
    with np.load(Path(path), allow_pickle=False) as z:
        missing = {"images", "labels"} - set(z.files)
        if missing:
            raise DatasetFormatError(f"{path} lacks {sorted(missing)} (it has {sorted(z.files)})")
        images, label_ids = z["images"], z["labels"].astype(np.int64)
        names = [str(n) for n in z["label_names"]] if "label_names" in z.files else None
        raw_splits = z["splits"] if "splits" in z.files else None
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) != len(label_ids):
        raise DatasetFormatError(
            f"{path}: images must be uint8 [N, H, W(, C)] with one label each, got {images.dtype} "
            f"{list(images.shape)} and {len(label_ids)} labels"
        )
    labels = names or [str(i) for i in range(int(label_ids.max()) + 1)]
    splits = None
    if raw_splits is not None:
        splits = [int(SPLIT_DIRS[str(s)]) if str(s) in SPLIT_DIRS else int(s) for s in raw_splits]
    return TaskUpload(name, labels, list(images), label_ids.tolist(), splits, **spec)  # type: ignore[arg-type]


def demo_digits(name: str = "digits") -> TaskUpload:
    """The built-in demo task: scikit-learn's 1,797 handwritten digits (8x8, 10 classes), split 80/10/10."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    return TaskUpload(
        name=name,
        labels=[str(i) for i in range(10)],
        images=list(images),
        label_ids=digits.target.tolist(),
        description="scikit-learn handwritten digits (built-in demo)",
    )


def from_builtin(task_name: str, builtin: str, **kwargs: object) -> TaskUpload:
    """A built-in dataset (see `munet_serve.builtin.names()`, e.g. "chars/greek") as a task with its own splits.

    kwargs: `sizes` (a `munet_serve.builtin.SplitSizes`, examples per class per split), `cache_dir`, `use_cache`,
    `font_dirs` and `data_dir` go to `munet_serve.builtin.load`; the rest (description, image_size, ...) to the task.
    Raises `munet_serve.builtin.MissingDataError` (naming the package to install) when its fonts or data are absent,
    and KeyError for an unknown name."""
    from munet_serve.builtin import load

    load_keys = ("sizes", "cache_dir", "use_cache", "font_dirs", "data_dir")
    options = {k: kwargs.pop(k) for k in load_keys if k in kwargs}
    return builtin_upload(task_name, load(builtin, **options), builtin, **kwargs)  # type: ignore[arg-type]


def builtin_upload(task_name: str, data: BuiltinDataset, builtin: str = "", **spec: object) -> TaskUpload:
    """An already loaded built-in dataset as a task with its own splits (`spec`: description, image_size, ...)."""
    spec = {k: v for k, v in spec.items() if k not in ("validation_fraction", "test_fraction")}  # splits are given
    if not spec.get("description"):
        spec["description"] = f"{data.description} (built-in {builtin or data.name})"
    return TaskUpload(task_name, list(data.label_names), list(data.images), data.labels.tolist(),
                      data.splits.tolist(), **spec)  # type: ignore[arg-type]
