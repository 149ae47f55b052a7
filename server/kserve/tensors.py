"""Tensors of the KServe v2 protocol as the transports carry them: raw little-endian bytes (gRPC
raw_input_contents, HTTP's binary tensor data extension), typed lists (gRPC contents, HTTP JSON) and BYTES tensors,
whose raw form is each element as a 4-byte little-endian length followed by its bytes."""

from __future__ import annotations

import math
import reprlib
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from munet_serve.errors import InvalidArgumentError

BYTES = "BYTES"
NUMPY: dict[str, np.dtype] = {
    name: np.dtype(dtype).newbyteorder("<")
    for name, dtype in (
        ("BOOL", np.bool_), ("UINT8", np.uint8), ("UINT16", np.uint16), ("UINT32", np.uint32),
        ("UINT64", np.uint64), ("INT8", np.int8), ("INT16", np.int16), ("INT32", np.int32), ("INT64", np.int64),
        ("FP16", np.float16), ("FP32", np.float32), ("FP64", np.float64),
    )
}
_LENGTH = struct.Struct("<I")
MAX_DIMS = 8  # numpy holds at most 64; an image tensor has 4

Data = np.ndarray | list[bytes]  # a numeric array, or the elements of a BYTES tensor in row-major order


def check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(d) for d in shape)
    if not dims or any(d < 0 for d in dims):
        raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} is not a tensor shape (give every "
                                   f"dimension, none negative)"[:300])
    if len(dims) > MAX_DIMS:
        raise InvalidArgumentError(f"input {name!r}: shape has {len(dims)} dimensions; a tensor here has at most "
                                   f"{MAX_DIMS}")
    return dims


def _shaped(name: str, flat: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """The elements in the shape; INVALID_ARGUMENT for a shape that no array can have (an empty tensor whose other
    dimensions multiply past what memory addresses)."""
    try:
        return flat.reshape(dims)
    except ValueError as e:
        raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} cannot be held: {e}") from e


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def from_raw(name: str, datatype: str, shape: Sequence[int], raw: bytes) -> Data:
    """A tensor from its raw bytes."""
    dims = check_shape(name, shape)
    count = element_count(dims)
    if datatype == BYTES:
        elements = split_bytes(name, raw)
        if len(elements) != count:
            raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} needs {count} BYTES elements, the raw "
                                       f"contents hold {len(elements)}")
        return elements
    dtype = _dtype(name, datatype)
    if len(raw) != count * dtype.itemsize:
        raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} of {datatype} needs "
                                   f"{count * dtype.itemsize} bytes, the raw contents hold {len(raw)}")
    return _shaped(name, np.frombuffer(raw, dtype=dtype), dims)


def from_values(name: str, datatype: str, shape: Sequence[int], values: Sequence[Any]) -> Data:
    """A tensor from a flat (or nested, as JSON sends it) list of its elements."""
    dims = check_shape(name, shape)
    count = element_count(dims)
    if datatype == BYTES:
        elements = []
        for v in _flat(values):
            if not isinstance(v, str | bytes):
                raise InvalidArgumentError(f"input {name!r}: a BYTES element must be a string, got {brief(v)}")
            elements.append(v.encode() if isinstance(v, str) else v)
        if len(elements) != count:
            raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} needs {count} elements, got "
                                       f"{len(elements)}")
        return elements
    dtype = _dtype(name, datatype)
    try:
        array = np.asarray(list(_flat(values)), dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidArgumentError(f"input {name!r}: its data are not {datatype} values: {e}") from e
    if array.size != count:
        raise InvalidArgumentError(f"input {name!r}: shape {list(dims)} needs {count} elements, got {array.size}")
    return _shaped(name, array, dims)


def split_bytes(name: str, raw: bytes) -> list[bytes]:
    """The elements of a raw BYTES tensor."""
    elements, offset = [], 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise InvalidArgumentError(f"input {name!r}: the raw BYTES contents end inside an element's 4-byte "
                                       f"length")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + size > len(raw):
            raise InvalidArgumentError(f"input {name!r}: a BYTES element says it has {size} bytes, only "
                                       f"{len(raw) - offset} follow")
        elements.append(raw[offset:offset + size])
        offset += size
    return elements


def to_raw(data: Data) -> bytes:
    """The raw bytes of a numeric array (little-endian) or of BYTES elements."""
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes()
    return b"".join(_LENGTH.pack(len(e)) + e for e in data)


def _dtype(name: str, datatype: str) -> np.dtype:
    dtype = NUMPY.get(datatype)
    if dtype is None:
        raise InvalidArgumentError(f"input {name!r}: unknown datatype {datatype!r} (the protocol's are "
                                   f"{', '.join([*NUMPY, BYTES])})")
    return dtype


def brief(value: Any) -> str:
    """A short repr of a value a client sent, however large or deeply nested (for error messages)."""
    return reprlib.repr(value)


def _flat(values: Any) -> Any:
    """The leaves of nested lists in order, without recursion (JSON may nest as deep as its parser allows)."""
    stack = [iter(values)]
    while stack:
        for v in stack[-1]:
            if isinstance(v, list | tuple):
                stack.append(iter(v))
                break
            yield v
        else:
            stack.pop()
