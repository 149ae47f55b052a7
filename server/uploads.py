"""Reassembles streamed components (info, then weights and ONNX chunks) and checks them before anything is stored."""

from __future__ import annotations

from munet_serve.artifacts import count_params, read_component_metadata, sha256_hex
from munet_serve.errors import InvalidArgumentError, ResourceExhaustedError
from munet_serve.proto.v1 import evolution_pb2
from munet_serve.structs import from_struct

from .codec import kind_from_pb
from .records import ComponentFiles, ComponentRecord


class ComponentReader:
    """Feed it ComponentPart messages in stream order; `finish()` returns the verified components."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._done: list[ComponentFiles] = []
        self._info: evolution_pb2.ComponentPart | None = None
        self._weights = bytearray()
        self._onnx = bytearray()
        self._total = 0

    def add(self, part: evolution_pb2.ComponentPart) -> None:
        which = part.WhichOneof("part")
        if which == "info":
            self._close_current()
            self._info = part
            return
        if self._info is None:
            raise InvalidArgumentError("a component stream must start with the component's info")
        chunk = part.weights_chunk if which == "weights_chunk" else part.onnx_chunk
        self._total += len(chunk)
        if self._total > self.max_bytes:
            raise ResourceExhaustedError(f"components in one call exceed the limit of {self.max_bytes:,} bytes")
        (self._weights if which == "weights_chunk" else self._onnx).extend(chunk)

    def finish(self) -> list[ComponentFiles]:
        self._close_current()
        return self._done

    def _close_current(self) -> None:
        if self._info is None:
            return
        info = self._info.info
        weights, onnx = bytes(self._weights), bytes(self._onnx)
        self._info, self._weights, self._onnx = None, bytearray(), bytearray()
        self._done.append(verify_component(info, weights, onnx))


def verify_component(info, weights: bytes, onnx: bytes) -> ComponentFiles:  # noqa: ANN001 - types_pb2.ComponentInfo
    """Checks that the weights hash to the id and carry the same kind; returns the record the server stores."""
    cid = info.id
    if not cid:
        raise InvalidArgumentError("a component needs its id")
    if not weights:
        raise InvalidArgumentError(f"component {cid}: no weights were sent")
    if not onnx:
        raise InvalidArgumentError(f"component {cid}: no ONNX graph was sent")
    actual = sha256_hex(weights)
    if actual != cid:
        raise InvalidArgumentError(f"component {cid}: the weights hash to {actual}, not to the component's id")
    try:
        meta = read_component_metadata(weights)
        num_params = count_params(weights)
    except ValueError as e:
        raise InvalidArgumentError(f"component {cid}: {e}") from e
    kind = kind_from_pb(info.kind)
    if meta.kind != kind:
        raise InvalidArgumentError(f"component {cid}: info says {kind.value}, its weights file says {meta.kind.value}")
    record = ComponentRecord(
        id=cid,
        kind=kind,
        config=meta.config,
        lineage=meta.lineage or from_struct(info.lineage),
        num_params=num_params,
        parity_max_abs_error=info.parity_max_abs_error,
        onnx_bytes=len(onnx),
        weights_bytes=len(weights),
    )
    return ComponentFiles(record=record, weights=weights, onnx=onnx)
