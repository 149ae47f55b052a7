"""Protobuf builders and parsers that the server and the clients share: component kinds, input specs, component
infos and timestamps, each written once so both sides put the same bytes on the wire.

Parsers raise ValueError for a value they cannot read; the server turns that into its InvalidArgumentError.
"""

from __future__ import annotations

from typing import Any, cast

from google.protobuf import timestamp_pb2

from munet_serve.artifacts import ComponentKind
from munet_serve.imaging import METHOD_MEAN, METHOD_STD, InputSpec
from munet_serve.proto.v1 import types_pb2
from munet_serve.structs import to_struct

__all__ = ["component_info_pb", "input_spec_from_pb", "input_spec_pb", "kind_from_pb", "kind_pb", "timestamp_pb"]

_KIND_TO_PB: dict[ComponentKind, types_pb2.ComponentKind] = {
    kind: cast("types_pb2.ComponentKind", types_pb2.ComponentKind.Value(f"COMPONENT_KIND_{kind.name}"))
    for kind in ComponentKind
}
_KIND_FROM_PB: dict[int, ComponentKind] = {int(v): k for k, v in _KIND_TO_PB.items()}


def kind_pb(kind: ComponentKind) -> types_pb2.ComponentKind:
    """The ComponentKind enum value (COMPONENT_KIND_<NAME>) of a component kind."""
    return _KIND_TO_PB[kind]


def kind_from_pb(value: int) -> ComponentKind:
    """The component kind of a ComponentKind enum value; ValueError for UNSPECIFIED or a value this side lacks."""
    if value not in _KIND_FROM_PB:
        raise ValueError(f"unknown component kind {value}")
    return _KIND_FROM_PB[value]


def input_spec_pb(spec: InputSpec) -> types_pb2.InputSpec:
    return types_pb2.InputSpec(image_size=spec.image_size, mean=list(spec.mean), std=list(spec.std))


def input_spec_from_pb(message: types_pb2.InputSpec) -> InputSpec:
    """The InputSpec of a message; an empty mean or std is the method's (0.5 each). ValueError when invalid, an
    image_size of 0 (an unset spec) included."""
    return InputSpec(
        image_size=message.image_size,
        mean=tuple(message.mean) if message.mean else METHOD_MEAN,  # type: ignore[arg-type]
        std=tuple(message.std) if message.std else METHOD_STD,  # type: ignore[arg-type]
    )


def timestamp_pb(seconds: float) -> timestamp_pb2.Timestamp:
    """A Timestamp of seconds since the epoch; 0 leaves it unset (all zero), which readers take as "none"."""
    ts = timestamp_pb2.Timestamp()
    if seconds:
        ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def component_info_pb(
    *,
    id: str,
    kind: ComponentKind,
    config: dict[str, Any],
    num_params: int,
    parity_max_abs_error: float,
    lineage: dict[str, Any],
    onnx_bytes: int,
    weights_bytes: int,
    created_at: float | None = None,
) -> types_pb2.ComponentInfo:
    """A ComponentInfo message. `created_at`: seconds since the epoch, as the server answers it (`timestamp_pb`);
    None leaves the field out, as a client sends it (the server stamps it)."""
    message = types_pb2.ComponentInfo(
        id=id,
        kind=kind_pb(kind),
        config=to_struct(config),
        num_params=num_params,
        parity_max_abs_error=parity_max_abs_error,
        lineage=to_struct(lineage),
        onnx_bytes=onnx_bytes,
        weights_bytes=weights_bytes,
    )
    if created_at is not None:
        message.created_at.CopyFrom(timestamp_pb(created_at))
    return message
