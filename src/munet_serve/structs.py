"""google.protobuf.Struct <-> dict, shared by the server and the SDK.

Struct stores every number as a double; configs and hyperparameters hold counts (dims, heads, layers), so whole
numbers come back as int.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, struct_pb2


def to_struct(values: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(values)
    return s


def from_struct(s: struct_pb2.Struct) -> dict[str, Any]:
    return _restore_ints(json_format.MessageToDict(s))


def _restore_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _restore_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_ints(v) for v in value]
    return value
