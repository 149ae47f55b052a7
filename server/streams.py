"""The streams of the native gRPC API: client streams reassembled into records (RegisterTask's spec and examples,
PublishPath's header and components, UploadComponents' components), files cut into chunks for the server streams.

The records come out lazily, as their messages arrive: the domain checks each as it comes, so the errors keep the
order of the stream (a bad first component fails before the rest is read).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from munet_serve.artifacts import CHUNK_BYTES
from munet_serve.errors import InvalidArgumentError, ResourceExhaustedError
from munet_serve.proto.v1 import evolution_pb2, tasks_pb2, types_pb2

from . import codec
from .records import ComponentUpload, Example, PathHeader, TaskSpec


def task_registration(requests: Iterator[tasks_pb2.RegisterTaskRequest]) -> tuple[TaskSpec, Iterator[Example]]:
    """The spec of a RegisterTask stream (its first message) and its examples, decoded as they come."""
    first = next(requests, None)
    if first is None or first.WhichOneof("part") != "spec":
        raise InvalidArgumentError("the first RegisterTask message must carry the TaskSpec")
    return codec.task_spec(first.spec), _examples(requests)


def _examples(requests: Iterator[tasks_pb2.RegisterTaskRequest]) -> Iterator[Example]:
    count = 0
    for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise InvalidArgumentError("only the first RegisterTask message may carry a TaskSpec")
        for example in request.chunk.examples:
            yield codec.example(example, f"example {count}")
            count += 1


def path_publication(
    requests: Iterator[evolution_pb2.PublishPathRequest], max_bytes: int
) -> tuple[PathHeader, Iterator[ComponentUpload]]:
    """The path of a PublishPath stream (its first message) and the components that follow, each as it completes."""
    first = next(requests, None)
    if first is None or first.WhichOneof("part") != "path":
        raise InvalidArgumentError("the first PublishPath message must carry the PathVersion")
    return codec.path_header(first.path), component_uploads(_published_parts(requests), max_bytes)


def _published_parts(requests: Iterator[evolution_pb2.PublishPathRequest]) -> Iterator[evolution_pb2.ComponentPart]:
    for request in requests:
        if request.WhichOneof("part") != "component":
            raise InvalidArgumentError("only the first PublishPath message may carry the PathVersion")
        yield request.component


def component_uploads(parts: Iterator[evolution_pb2.ComponentPart], max_bytes: int) -> Iterator[ComponentUpload]:
    """Components from their parts in stream order (info, then weights and ONNX chunks, then the next info), each
    yielded once the next one starts or the stream ends; at most `max_bytes` of chunks in all."""
    assembler = ComponentAssembler(max_bytes)
    for part in parts:
        done = assembler.add(part)
        if done is not None:
            yield done
    last = assembler.finish()
    if last is not None:
        yield last


class ComponentAssembler:
    """Joins the chunks of streamed components; `add` returns the component a part completed, if any."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._info: types_pb2.ComponentInfo | None = None
        self._weights = bytearray()
        self._onnx = bytearray()
        self._total = 0

    def add(self, part: evolution_pb2.ComponentPart) -> ComponentUpload | None:
        which = part.WhichOneof("part")
        if which == "info":
            done = self.finish()
            self._info = part.info
            return done
        if self._info is None:
            raise InvalidArgumentError("a component stream must start with the component's info")
        chunk = part.weights_chunk if which == "weights_chunk" else part.onnx_chunk
        self._total += len(chunk)
        if self._total > self.max_bytes:
            raise ResourceExhaustedError(f"components in one call exceed the limit of {self.max_bytes:,} bytes")
        (self._weights if which == "weights_chunk" else self._onnx).extend(chunk)
        return None

    def finish(self) -> ComponentUpload | None:
        """The component being assembled, if any, complete; the assembler then waits for the next info."""
        if self._info is None:
            return None
        info, weights, onnx = self._info, bytes(self._weights), bytes(self._onnx)
        self._info, self._weights, self._onnx = None, bytearray(), bytearray()
        return codec.component_upload(info, weights, onnx)


def file_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """A file's bytes in blocks of `chunk_bytes` (the chunk messages of GetComponent and GetDataset)."""
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            yield block
