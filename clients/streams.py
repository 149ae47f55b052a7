"""Builds the request streams of the streaming RPCs and reassembles streamed responses (shared by both clients)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Generic, TypeVar

import grpc
import numpy as np

from munet_serve import messages
from munet_serve.artifacts import CHUNK_BYTES, Split, sha256_file, sha256_hex
from munet_serve.imaging import InputSpec
from munet_serve.proto.v1 import evolution_pb2, tasks_pb2, types_pb2
from munet_serve.structs import to_struct

from . import convert
from .errors import MunetError, from_rpc_error
from .types import ComponentArtifact, ComponentInfo, DatasetInfo, Metrics, PathComponent, PathRef

Progress = Callable[[int, int], None]  # (examples sent, total examples)
T = TypeVar("T")


class RequestStream(Iterator[T], Generic[T]):
    """A streaming call's requests, keeping the exception that building one raised (a bad argument, an unreadable
    image): gRPC cancels the call and reports it only as UNKNOWN "Exception iterating requests!", so the clients
    raise the builder's own exception instead (`failure`)."""

    def __init__(self, requests: Iterable[T]) -> None:
        self._requests = iter(requests)
        self.error: Exception | None = None

    def __next__(self) -> T:
        try:
            return next(self._requests)
        except StopIteration:
            raise
        except Exception as e:
            self.error = e
            raise


def failure(error: grpc.RpcError, stream: RequestStream | None) -> Exception:
    """The exception a client raises for a failed call: the stream builder's own, else the status's MunetError."""
    if stream is not None and stream.error is not None:
        return stream.error
    return from_rpc_error(error)


@dataclass(frozen=True)
class TaskUpload:
    """A task to register: its name, labels and examples (encoded bytes or uint8 pixels, label index, split)."""

    name: str
    labels: Sequence[str]
    images: Sequence[bytes | np.ndarray]
    label_ids: Sequence[int]
    splits: Sequence[Split | int] | None = None
    description: str = ""
    validation_fraction: float = 0.0
    test_fraction: float = 0.0
    image_size: int = 0

    def __post_init__(self) -> None:
        if len(self.images) != len(self.label_ids):
            raise ValueError(f"{len(self.images)} images but {len(self.label_ids)} labels")
        if self.splits is not None and len(self.splits) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.splits)} splits")


def register_requests(
    upload: TaskUpload, progress: Progress | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tasks_pb2.RegisterTaskRequest]:
    spec = tasks_pb2.TaskSpec(
        name=upload.name,
        labels=list(upload.labels),
        description=upload.description,
        validation_fraction=upload.validation_fraction,
        test_fraction=upload.test_fraction,
        image_size=upload.image_size,
    )
    yield tasks_pb2.RegisterTaskRequest(spec=spec)
    total = len(upload.images)
    chunk = tasks_pb2.DatasetChunk()
    size = 0
    for i, (image, label) in enumerate(zip(upload.images, upload.label_ids, strict=True)):
        split = int(upload.splits[i]) if upload.splits is not None else 0
        example = tasks_pb2.Example(image=convert.image_to_pb(image), label=int(label), split=split)  # type: ignore[arg-type]
        chunk.examples.append(example)
        size += example.ByteSize()
        if size >= chunk_bytes:
            yield tasks_pb2.RegisterTaskRequest(chunk=chunk)
            if progress:
                progress(i + 1, total)
            chunk, size = tasks_pb2.DatasetChunk(), 0
    if chunk.examples:
        yield tasks_pb2.RegisterTaskRequest(chunk=chunk)
    if progress:
        progress(total, total)


def _chunks(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    for start in range(0, len(data), chunk_bytes):
        yield data[start : start + chunk_bytes]


def component_parts(artifacts: Iterable[ComponentArtifact]) -> Iterator[evolution_pb2.ComponentPart]:
    for artifact in artifacts:
        if artifact.onnx is None:
            raise ValueError(f"component {artifact.id} has no ONNX graph to upload")
        yield evolution_pb2.ComponentPart(info=convert.component_info_to_pb(artifact.info))
        for piece in _chunks(artifact.weights):
            yield evolution_pb2.ComponentPart(weights_chunk=piece)
        for piece in _chunks(artifact.onnx):
            yield evolution_pb2.ComponentPart(onnx_chunk=piece)


def publish_requests(
    task: str,
    components: Sequence[PathComponent],
    hparams: dict,
    metrics: Metrics,
    input: InputSpec,
    parent: PathRef | None,
    new_components: Sequence[ComponentArtifact],
) -> Iterator[evolution_pb2.PublishPathRequest]:
    if not isinstance(metrics, Metrics):
        raise TypeError(f"metrics must be a Metrics, not {type(metrics).__name__}")
    if not isinstance(input, InputSpec):
        raise TypeError(f"input must be an InputSpec, not {type(input).__name__}")
    path = types_pb2.PathVersion(
        task=task,
        components=convert.path_components_to_pb(components),
        hparams=to_struct(hparams),
        metrics=convert.metrics_to_pb(metrics),
        input=messages.input_spec_pb(input),
    )
    if parent is not None:
        path.parent.CopyFrom(types_pb2.PathRef(task=parent.task, version=parent.version))
    yield evolution_pb2.PublishPathRequest(path=path)
    for part in component_parts(new_components):
        yield evolution_pb2.PublishPathRequest(component=part)


class ComponentAssembler:
    """Collects a GetComponent stream into a ComponentArtifact."""

    def __init__(self) -> None:
        self.info: ComponentInfo | None = None
        self.weights = bytearray()
        self.onnx = bytearray()

    def add(self, part: evolution_pb2.ComponentPart) -> bool:
        """Takes the next part; never asks to stop early (False)."""
        which = part.WhichOneof("part")
        if which == "info":
            self.info = convert.component_info_from_pb(part.info)
        elif which == "weights_chunk":
            self.weights += part.weights_chunk
        elif which == "onnx_chunk":
            self.onnx += part.onnx_chunk
        return False

    def result(self) -> ComponentArtifact:
        if self.info is None:
            raise ValueError("component stream carried no ComponentInfo")
        weights = bytes(self.weights)
        if sha256_hex(weights) != self.info.id:
            raise ValueError(f"component {self.info.id}: downloaded weights do not match the id")
        return ComponentArtifact(info=self.info, weights=weights, onnx=bytes(self.onnx) or None)


class DatasetDownload:
    """Writes a GetDataset stream into `cache_dir/<id>.npz`, or stops at its first part (the DatasetInfo) when a
    verified copy is already there. `add` takes each part, `result` checks and moves the file into place, `discard`
    removes a partial file after a failure."""

    def __init__(self, task: str, cache_dir: Path) -> None:
        self.task = task
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.info: DatasetInfo | None = None
        self._partial: IO[bytes] | None = None

    @property
    def target(self) -> Path:
        assert self.info is not None
        return self.cache_dir / f"{self.info.id}.npz"

    def add(self, part: evolution_pb2.DatasetPart) -> bool:
        """Takes the next part; True once the rest of the stream is not needed (a verified copy is cached)."""
        if self.info is None:
            self.info = convert.dataset_from_pb(part.info)
            if self.info is None:
                raise MunetError(f"dataset stream of {self.task!r} did not start with its info")
            if self.target.exists() and sha256_file(self.target) == self.info.id:
                return True
            self._partial = tempfile.NamedTemporaryFile(dir=self.cache_dir, delete=False, suffix=".part")
            return False
        assert self._partial is not None
        self._partial.write(part.chunk)
        return False

    def result(self) -> tuple[DatasetInfo, Path]:
        """The dataset's info and its verified file."""
        if self.info is None:
            raise MunetError(f"dataset stream of {self.task!r} did not start with its info")
        if self._partial is None:  # the cached copy
            return self.info, self.target
        self._partial.close()
        partial, self._partial = Path(self._partial.name), None
        if sha256_file(partial) != self.info.id:
            os.unlink(partial)
            raise MunetError(f"dataset of {self.task!r}: downloaded bytes do not match id {self.info.id}")
        os.replace(partial, self.target)
        return self.info, self.target

    def discard(self) -> None:
        if self._partial is not None:
            self._partial.close()
            Path(self._partial.name).unlink(missing_ok=True)
            self._partial = None
