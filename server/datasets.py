"""Turns the examples of a RegisterTask stream into a stored dataset: one image shape, splits assigned."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from munet_serve.artifacts import Split, sha256_hex, write_dataset
from munet_serve.errors import InvalidArgumentError, ResourceExhaustedError
from munet_serve.imaging import resize

from .records import DatasetRecord

DEFAULT_HELD_OUT_FRACTION = 0.1
# A default held-out split gets at least this many examples of each class (but never more than a fifth of the
# class): with 10 % alone, a class of 60 images would leave 6 for validation, and one image would move a 10-class
# task's validation accuracy by 1.7 points, too coarse to tell candidates apart.
DEFAULT_MIN_HELD_OUT_PER_CLASS = 16
DEFAULT_MAX_FLOOR_SHARE = 0.2


@dataclass(frozen=True)
class SplitPolicy:
    """How a registered task's examples are split when they do not name their splits, per class.

    Each held-out split (validation, test) gets round(fraction x n) of a class's n examples, raised to
    min(min_per_class, floor(max_floor_share x n)) where its fraction is the default; the rest trains. A class of
    fewer than 3 examples trains only.
    """

    validation_fraction: float = DEFAULT_HELD_OUT_FRACTION
    test_fraction: float = DEFAULT_HELD_OUT_FRACTION
    validation_floor: int = DEFAULT_MIN_HELD_OUT_PER_CLASS
    test_floor: int = DEFAULT_MIN_HELD_OUT_PER_CLASS
    max_floor_share: float = DEFAULT_MAX_FLOOR_SHARE

    def __post_init__(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 < value < 0.5:
                raise InvalidArgumentError(f"{name} must be in (0, 0.5), got {value}")

    @classmethod
    def of(cls, validation_fraction: float = 0.0, test_fraction: float = 0.0) -> SplitPolicy:
        """The policy for a TaskSpec's fractions: 0 means the default (with its floor), a given one is exact."""
        return cls(
            validation_fraction or DEFAULT_HELD_OUT_FRACTION,
            test_fraction or DEFAULT_HELD_OUT_FRACTION,
            validation_floor=0 if validation_fraction else DEFAULT_MIN_HELD_OUT_PER_CLASS,
            test_floor=0 if test_fraction else DEFAULT_MIN_HELD_OUT_PER_CLASS,
        )

    def held_out(self, n: int) -> tuple[int, int]:
        """(validation, test) examples of a class of n."""
        if n < 3:
            return 0, 0
        cap = int(self.max_floor_share * n)
        n_val = max(round(n * self.validation_fraction), min(self.validation_floor, cap), 1)
        n_test = max(round(n * self.test_fraction), min(self.test_floor, cap), 1)
        return n_val, n_test


class DatasetBuilder:
    """Accumulates decoded examples, then stores them as one uint8 [N, H, W, C] array with labels and splits."""

    def __init__(self, num_labels: int, image_size: int, max_bytes: int) -> None:
        self.num_labels = num_labels
        self.image_size = image_size
        self.max_bytes = max_bytes
        self._images: list[np.ndarray] = []
        self._labels: list[int] = []
        self._splits: list[int] = []
        self._bytes = 0
        self._shape: tuple[int, int] | None = (image_size, image_size) if image_size else None
        self._rgb = False

    def __len__(self) -> int:
        return len(self._images)

    def add(self, pixels: np.ndarray, label: int, split: int) -> None:
        index = len(self._images)
        if label >= self.num_labels:
            raise InvalidArgumentError(f"example {index}: label {label} is out of range for {self.num_labels} labels")
        if split not in (0, *[int(s) for s in Split]):
            raise InvalidArgumentError(f"example {index}: unknown split {split}")
        if self._splits and (split == 0) != (self._splits[0] == 0):
            raise InvalidArgumentError(
                f"example {index}: either every example names its split or none does (example 0 "
                f"{'does not' if self._splits[0] == 0 else 'does'})"
            )
        if self._shape is None:
            self._shape = (pixels.shape[0], pixels.shape[1])
        if pixels.shape[:2] != self._shape:
            pixels = resize(pixels, *self._shape)
        self._rgb |= pixels.ndim == 3
        self._bytes += self._shape[0] * self._shape[1] * 3
        if self._bytes > self.max_bytes:
            raise ResourceExhaustedError(
                f"dataset is over the limit of {self.max_bytes:,} bytes of decoded pixels (at example {index}); "
                f"register fewer or smaller images"
            )
        self._images.append(pixels)
        self._labels.append(label)
        self._splits.append(split)

    def build(self, policy: SplitPolicy) -> tuple[DatasetRecord, bytes]:
        """Stacks the examples, assigns splits, and returns the dataset record and its file bytes."""
        if not self._images:
            raise InvalidArgumentError("the dataset has no examples")
        channels = 3 if self._rgb else 1
        images = np.stack([_with_channels(p, channels) for p in self._images])
        labels = np.asarray(self._labels, dtype=np.int64)
        if self._splits[0] == 0:
            splits = stratified_split(images, labels, policy)
        else:
            splits = np.asarray(self._splits, dtype=np.uint8)
        counts = {s: int((splits == s).sum()) for s in Split}
        for s, n in counts.items():
            if n == 0:
                raise InvalidArgumentError(
                    f"the {s.name.lower()} split is empty ({len(labels)} examples); add examples"
                    + ("" if self._splits[0] == 0 else f" with split {s.name}")
                )
        untrained = sorted(set(range(self.num_labels)) - set(labels[splits == Split.TRAIN].tolist()))
        if untrained:
            shown = ", ".join(map(str, untrained[:10])) + (f" and {len(untrained) - 10} more" if len(untrained) > 10
                                                            else "")
            raise InvalidArgumentError(f"{len(untrained)} of the {self.num_labels} labels have no training examples "
                                       f"(label indices {shown}); every label needs at least one")
        data = write_dataset(images, labels, splits)
        record = DatasetRecord(
            id=sha256_hex(data),
            train=counts[Split.TRAIN],
            validation=counts[Split.VALIDATION],
            test=counts[Split.TEST],
            image_shape=tuple(images.shape[1:]),
            size_bytes=len(data),
        )
        return record, data


def stratified_split(images: np.ndarray, labels: np.ndarray, policy: SplitPolicy) -> np.ndarray:
    """Deterministic per-class split: the same examples always land in the same splits."""
    seed = int.from_bytes(hashlib.sha256(images.tobytes() + labels.tobytes()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    splits = np.full(len(labels), Split.TRAIN, dtype=np.uint8)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = policy.held_out(len(members))
        splits[members[:n_test]] = Split.TEST
        splits[members[n_test : n_test + n_val]] = Split.VALIDATION
    return splits


def _with_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if channels == 3 and pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels
