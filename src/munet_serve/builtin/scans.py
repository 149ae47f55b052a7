"""Real scanned image sets shipped in packages: scikit-learn's digits, Debian's Fashion-MNIST, PyPI's Animal-MNIST.

Every set is cut into balanced splits deterministically: exact duplicate images are kept once (an image whose copies
carry different labels is dropped), then each class's images are shuffled with a seed from the dataset name and dealt
to test, validation and train, so no image appears in two splits. Each kept image is its own source.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from munet_serve.artifacts import Split

from .dataset import BuiltinDataset, MissingDataError, SplitSizes

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "MUNET_SERVE_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                       "t10k-labels-idx1-ubyte.gz")
FASHION_MNIST_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                        "Ankle boot"]
ANIMAL_MNIST_FILES = ("data/Animal_MNIST/animal_data_version_3.gz", "data/Animal_MNIST/animal_label_version_3.gz")
# The class order of animal_label_version_3 (checked by looking at the images: 0 are bears, 9 zebras).
ANIMAL_MNIST_LABELS = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


def distinct(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Indices (ascending) of the first copy of each distinct image; images whose copies disagree on the label are
    dropped altogether."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    lo = np.full(len(first), np.iinfo(np.int64).max)
    hi = np.full(len(first), np.iinfo(np.int64).min)
    np.minimum.at(lo, inverse, labels)
    np.maximum.at(hi, inverse, labels)
    agree = lo == hi
    return np.sort(first[agree])


def _deal(name: str, pools: Sequence[tuple[np.ndarray, Sequence[Split]]], labels: np.ndarray, sizes: SplitSizes,
          num_classes: int) -> dict[Split, np.ndarray]:
    """For each pool (indices of images, the splits it feeds), each class's members are shuffled with a seed from
    `name` and dealt `sizes.<split>` at a time to the pool's splits in order: no image goes to two splits."""
    out: dict[Split, list[int]] = {s: [] for s in Split}
    for number, (indices, feeds) in enumerate(pools):
        for label in range(num_classes):
            members = np.random.default_rng([_seed(name), number, label]).permutation(indices[labels[indices] == label])
            start = 0
            for split in feeds:
                need = sizes.of(split)
                if start + need > len(members):
                    raise ValueError(
                        f"{name}: class {label} has {len(members)} distinct images for the "
                        f"{'/'.join(s.name.lower() for s in feeds)} split(s), {sizes} per class asked"
                    )
                out[split].extend(sorted(int(i) for i in members[start : start + need]))
                start += need
    return {s: np.array(v, dtype=np.int64) for s, v in out.items()}


def _assemble(name: str, description: str, images: np.ndarray, labels: np.ndarray, chosen: dict[Split, np.ndarray],
              label_names: Sequence[str], source_names: Sequence[str]) -> BuiltinDataset:
    order = [(split, i) for split in (Split.TRAIN, Split.VALIDATION, Split.TEST) for i in chosen[split]]
    idx = np.array([i for _, i in order], dtype=np.int64)
    return BuiltinDataset(
        name=name,
        description=description,
        images=np.ascontiguousarray(images[idx], dtype=np.uint8),
        labels=labels[idx].astype(np.int64),
        splits=np.array([int(s) for s, _ in order], dtype=np.uint8),
        label_names=list(label_names),
        sources=np.arange(len(idx), dtype=np.int32),
        source_names=[source_names[i] for i in idx],
    )


def _single_pool(name: str, description: str, images: np.ndarray, labels: np.ndarray, sizes: SplitSizes,
                 label_names: Sequence[str], source_prefix: str) -> BuiltinDataset:
    keep = distinct(images, labels)
    chosen = _deal(name, [(keep, (Split.TEST, Split.VALIDATION, Split.TRAIN))], labels, sizes, len(label_names))
    source_names = [f"{source_prefix}#{i}" for i in range(len(images))]
    return _assemble(name, description, images, labels, chosen, label_names, source_names)


# --- scikit-learn digits ---------------------------------------------------------------------------------------


def digits_available() -> bool:
    return importlib.util.find_spec("sklearn") is not None


def load_digits_set(name: str, description: str, sizes: SplitSizes) -> BuiltinDataset:
    if not digits_available():
        raise MissingDataError(f"{name} needs the PyPI package scikit-learn: run `pip install scikit-learn` "
                               "(or install munet-serve[evolver])")
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    labels = digits.target.astype(np.int64)
    return _single_pool(name, description, images, labels, sizes, [str(i) for i in range(10)], "load_digits")


# --- Fashion-MNIST (Debian dataset-fashion-mnist) -----------------------------------------------------------------


def fashion_dir(data_dir: Path | None = None) -> Path:
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


def fashion_available(data_dir: Path | None = None) -> bool:
    folder = fashion_dir(data_dir)
    return all((folder / f).is_file() for f in FASHION_MNIST_FILES)


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def load_fashion_set(name: str, description: str, sizes: SplitSizes, data_dir: Path | None = None) -> BuiltinDataset:
    folder = fashion_dir(data_dir)
    if not fashion_available(data_dir):
        raise MissingDataError(
            f"{name} needs the Debian package dataset-fashion-mnist (files {', '.join(FASHION_MNIST_FILES)} in "
            f"{folder}): run scripts/install-system-packages.sh or `apt-get install dataset-fashion-mnist`"
        )
    train_images = _idx(folder / "train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    train_labels = _idx(folder / "train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    test_images = _idx(folder / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    test_labels = _idx(folder / "t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    images = np.concatenate([train_images, test_images])
    labels = np.concatenate([train_labels, test_labels])
    keep = distinct(images, labels)
    n_train = len(train_images)
    pools = [(keep[keep >= n_train], (Split.TEST,)), (keep[keep < n_train], (Split.VALIDATION, Split.TRAIN))]
    chosen = _deal(name, pools, labels, sizes, 10)
    source_names = [f"train#{i}" for i in range(n_train)] + [f"t10k#{i}" for i in range(len(test_images))]
    return _assemble(name, description, images, labels, chosen, FASHION_MNIST_LABELS, source_names)


# --- Animal-MNIST (PyPI animal-mnist, read without importing it: its loader imports tensorflow) ------------------


def animal_dir() -> Path | None:
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def animal_available() -> bool:
    folder = animal_dir()
    return folder is not None and all((folder / f).is_file() for f in ANIMAL_MNIST_FILES)


def load_animal_set(name: str, description: str, sizes: SplitSizes) -> BuiltinDataset:
    folder = animal_dir()
    if folder is None or not animal_available():
        raise MissingDataError(
            f"{name} needs the PyPI package animal-mnist: run `pip install --no-deps animal-mnist` (--no-deps: the "
            "package declares tensorflow, which reading its data does not need)"
        )
    with gzip.open(folder / ANIMAL_MNIST_FILES[0], "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)  # the package's own gzip-pickled numpy arrays
    with gzip.open(folder / ANIMAL_MNIST_FILES[1], "rb") as f:
        labels = np.asarray(pickle.load(f)).astype(np.int64)
    return _single_pool(name, description, images, labels, sizes, ANIMAL_MNIST_LABELS, "animal_data_version_3")
