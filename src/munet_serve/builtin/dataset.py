"""The value a built-in dataset loads as, its split sizes, its error, and its deterministic .npz form."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from munet_serve.artifacts import Split


class MissingDataError(RuntimeError):
    """A built-in dataset cannot be built here: the message names the package to install and the command."""


@dataclass(frozen=True)
class SplitSizes:
    """Examples per class in each split."""

    train: int
    validation: int
    test: int

    def __post_init__(self) -> None:
        for field, value in (("train", self.train), ("validation", self.validation), ("test", self.test)):
            if not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"SplitSizes.{field} must be a non-negative integer, got {value!r}")
        if self.train < 1:
            raise ValueError("SplitSizes.train must be at least 1")

    def of(self, split: Split) -> int:
        return {Split.TRAIN: self.train, Split.VALIDATION: self.validation, Split.TEST: self.test}[Split(split)]

    @property
    def per_class(self) -> int:
        return self.train + self.validation + self.test

    def tag(self) -> str:
        return f"{self.train}-{self.validation}-{self.test}"

    @classmethod
    def parse(cls, text: str) -> SplitSizes:
        """'TRAIN,VALIDATION,TEST', e.g. '60,15,15'."""
        parts = [p.strip() for p in text.replace("/", ",").split(",")]
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"split sizes must be TRAIN,VALIDATION,TEST (three integers), got {text!r}")
        return cls(int(parts[0]), int(parts[1]), int(parts[2]))


NPZ_FORMAT = "munet-serve.builtin/1"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class BuiltinDataset:
    name: str
    description: str
    images: np.ndarray  # uint8 [N, H, W] (grayscale)
    labels: np.ndarray  # int64 [N], 0..K-1
    splits: np.ndarray  # uint8 [N], values of Split
    label_names: list[str]
    sources: np.ndarray  # int32 [N], index into source_names
    source_names: list[str]

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.labels) == len(self.splits) == len(self.sources) == n):
            raise ValueError("images, labels, splits and sources must have one entry per example")

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def split(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """The images and labels of one split."""
        mask = self.splits == int(split)
        return self.images[mask], self.labels[mask]

    def sources_of(self, split: Split) -> set[int]:
        return {int(s) for s in np.unique(self.sources[self.splits == int(split)])}

    def to_npz_bytes(self) -> bytes:
        """The dataset as an .npz file; the same dataset always gives the same bytes (stored entries, fixed times),
        as `munet_serve.artifacts.write_dataset` does for task datasets."""
        meta = {"format": NPZ_FORMAT, "name": self.name, "description": self.description,
                "label_names": list(self.label_names), "source_names": list(self.source_names)}
        arrays: dict[str, np.ndarray] = {
            "images": np.ascontiguousarray(self.images, dtype=np.uint8),
            "labels": np.ascontiguousarray(self.labels, dtype=np.int64),
            "splits": np.ascontiguousarray(self.splits, dtype=np.uint8),
            "sources": np.ascontiguousarray(self.sources, dtype=np.int32),
            "label_names": np.array(list(self.label_names), dtype=np.str_),
            "meta": np.frombuffer(json.dumps(meta, ensure_ascii=False, sort_keys=True).encode(), dtype=np.uint8),
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for key, array in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, array, allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_npz_bytes(cls, data: bytes) -> BuiltinDataset:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(z["meta"].tobytes().decode())
            if meta.get("format") != NPZ_FORMAT:
                raise ValueError(f"not a built-in dataset file (format {meta.get('format')!r})")
            return cls(
                name=meta["name"],
                description=meta["description"],
                images=z["images"],
                labels=z["labels"],
                splits=z["splits"],
                label_names=list(meta["label_names"]),
                sources=z["sources"],
                source_names=list(meta["source_names"]),
            )
