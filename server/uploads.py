"""Checks an uploaded component before anything is stored: its weights hash to its id and carry its kind."""

from __future__ import annotations

from munet_serve.artifacts import ComponentKind, count_params, read_component_metadata, sha256_hex
from munet_serve.errors import InvalidArgumentError

from .records import ComponentFiles, ComponentRecord, ComponentUpload


def verify_component(upload: ComponentUpload) -> ComponentFiles:
    """Checks that the weights hash to the id and carry the same kind; returns the record the server stores."""
    cid, weights, onnx = upload.id, upload.weights, upload.onnx
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
    kind = upload.kind
    if not isinstance(kind, ComponentKind):
        raise InvalidArgumentError(f"unknown component kind {kind}")
    if meta.kind != kind:
        raise InvalidArgumentError(f"component {cid}: info says {kind.value}, its weights file says {meta.kind.value}")
    record = ComponentRecord(
        id=cid,
        kind=kind,
        config=meta.config,
        lineage=meta.lineage or upload.lineage,
        num_params=num_params,
        parity_max_abs_error=upload.parity_max_abs_error,
        onnx_bytes=len(onnx),
        weights_bytes=len(weights),
        onnx_sha256=sha256_hex(onnx),
    )
    return ComponentFiles(record=record, weights=weights, onnx=onnx)
