"""File formats shared by the server and the evolver: component weights files and dataset files.

A component travels and is stored as two files:
  - ``<id>.safetensors``: its weights, with metadata {"format", "kind", "config", "lineage"} (JSON strings). The id
    is the sha256 of this file, so the id names the content, kind, config and lineage together. A component trained
    by mu2Net also stores its optimizer's momentum trace here, one tensor per parameter under ``momentum.<name>``;
    those tensors are training state, not parameters, and are not counted as such;
  - ``<id>.onnx``: the graph the server runs (input ``x``, output ``y``, dynamic batch axis), exported from the very
    module whose weights are in the safetensors file.

A dataset is one ``.npz`` file: uint8 ``images`` [N, H, W, C], int64 ``labels`` [N], uint8 ``splits`` [N] (values of
`Split`). Its id is the sha256 of the file.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

COMPONENT_FORMAT = "munet-serve.component/1"
MOMENTUM_PREFIX = "momentum."  # tensors of a weights file that hold a momentum trace, not parameters
CHUNK_BYTES = 1 << 20  # streamed files travel in 1 MiB chunks


class ComponentKind(str, enum.Enum):
    """Component kinds; values are the names used in files (the proto enum is COMPONENT_KIND_<NAME>)."""

    EMBEDDING = "embedding"
    CLS = "cls"
    POSEMBED = "posembed"
    ENCODER_BLOCK = "encoder_block"
    RESIDUAL_ADAPTER = "residual_adapter"
    ENCODER_NORM = "encoder_norm"
    HEAD = "head"


class Split(enum.IntEnum):
    """Dataset splits; values match the proto enum Split."""

    TRAIN = 1
    VALIDATION = 2
    TEST = 3


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class ComponentMetadata:
    """What a component's weights file says about it."""

    kind: ComponentKind
    config: dict[str, Any]
    lineage: dict[str, Any]

    def to_safetensors(self) -> dict[str, str]:
        return {
            "format": COMPONENT_FORMAT,
            "kind": self.kind.value,
            "config": json.dumps(self.config, sort_keys=True),
            "lineage": json.dumps(self.lineage, sort_keys=True),
        }

    @classmethod
    def from_safetensors(cls, metadata: dict[str, str] | None) -> ComponentMetadata:
        if not metadata or metadata.get("format") != COMPONENT_FORMAT:
            raise ValueError(f"not a munet-serve component file (metadata format must be {COMPONENT_FORMAT!r})")
        try:
            return cls(
                kind=ComponentKind(metadata["kind"]),
                config=json.loads(metadata["config"]),
                lineage=json.loads(metadata.get("lineage", "{}")),
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"component metadata unreadable: {e}") from e


def read_component_metadata(weights: bytes) -> ComponentMetadata:
    """Reads the metadata from the header of a safetensors file held in memory."""
    if len(weights) < 8:
        raise ValueError("component weights file is truncated")
    header_len = int.from_bytes(weights[:8], "little")
    if header_len > len(weights) - 8 or header_len > 100 * 1024 * 1024:
        raise ValueError("component weights file has a corrupt header")
    try:
        header = json.loads(weights[8 : 8 + header_len])
    except ValueError as e:
        raise ValueError(f"component weights header is not JSON: {e}") from e
    return ComponentMetadata.from_safetensors(header.get("__metadata__"))


def count_params(weights: bytes) -> int:
    """Number of scalar parameters in a safetensors file held in memory (momentum traces are not parameters)."""
    header_len = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_len])
    total = 0
    for name, entry in header.items():
        if name != "__metadata__" and not name.startswith(MOMENTUM_PREFIX):
            total += int(np.prod(entry["shape"], dtype=np.int64))
    return total


def write_dataset(images: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> bytes:
    """Serialises a dataset to the bytes of an .npz file: the same arrays always give the same bytes."""
    arrays: dict[str, np.ndarray] = {
        "images": np.ascontiguousarray(images, dtype=np.uint8),
        "labels": np.ascontiguousarray(labels, dtype=np.int64),
        "splits": np.ascontiguousarray(splits, dtype=np.uint8),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)
    return buf.getvalue()


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray  # uint8 [N, H, W, C]
    labels: np.ndarray  # int64 [N]
    splits: np.ndarray  # uint8 [N], values of Split

    def split(self, which: Split) -> tuple[np.ndarray, np.ndarray]:
        mask = self.splits == which
        return self.images[mask], self.labels[mask]


def read_dataset(path: Path) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        return Dataset(images=z["images"], labels=z["labels"], splits=z["splits"])
