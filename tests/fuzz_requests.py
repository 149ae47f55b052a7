"""Hypothesis strategies and senders for tests/test_fuzz.py.

- `rpcs()`: every RPC the server serves, read from the service descriptors (the native munet_serve.v1 services of
  the generated modules under munet_serve.proto.v1, and KServe v2's GRPCInferenceService from its private pool), so a
  new RPC is fuzzed without a change here.
- `rpc_requests(rpc, vocabulary)`: one request of an RPC as raw bytes (or, for a client stream, a short list of
  them): arbitrary or mutated bytes (malformed protobuf), or a structurally valid message with random field values
  built generically from the message descriptor, biased toward the names and values the server knows.
- `http_requests(vocabulary)`: one KServe v2 HTTP/REST request (method, path, headers, body).
- `call_rpc` / `call_http`: send one request and say how it ended.

Destructive calls keep the real task: `guard_rpc` and `guard_http` rename a protected task (the real one) in the name
field of DeleteTask, Rollback, PublishPath and RepositoryModelUnload and in the HTTP unload path, after generation
and after any mutation of the bytes, so no request can delete, roll back, unload or republish it.
"""

from __future__ import annotations

import http.client
import importlib
import json
import math
import pkgutil
import re
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote, unquote

import grpc
import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st

import munet_serve.proto.v1 as native_package
from munet_serve.imaging import encode_png
from munet_serve.proto import kserve
from munet_serve.proto.v1 import evolution_pb2, evolution_pb2_grpc, inference_pb2, tasks_pb2, tasks_pb2_grpc, types_pb2

# --- the RPCs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rpc:
    """One method of a served service, with the class of its request message."""

    service: str
    name: str
    request: type[Message]
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def cardinality(self) -> str:
        return f"{'stream' if self.client_streaming else 'unary'}_{'stream' if self.server_streaming else 'unary'}"


def _rpc(method: MethodDescriptor, request: type[Message]) -> Rpc:
    return Rpc(method.containing_service.full_name, method.name, request, method.client_streaming,
               method.server_streaming)


def native_rpcs() -> list[Rpc]:
    """Every method of every service declared in the generated modules of munet_serve.proto.v1."""
    found = []
    for module_info in sorted(pkgutil.iter_modules(native_package.__path__), key=lambda m: m.name):
        if not module_info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{native_package.__name__}.{module_info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                found.append(_rpc(method, message_factory.GetMessageClass(method.input_type)))
    return found


def kserve_rpcs() -> list[Rpc]:
    """Every method of inference.GRPCInferenceService, its request classes from the private pool."""
    prefix = f"{kserve.PACKAGE}."
    return [_rpc(m, kserve.message(m.input_type.full_name.removeprefix(prefix))) for m in kserve.service().methods]


def rpcs() -> list[Rpc]:
    return [*native_rpcs(), *kserve_rpcs()]


# --- what the server knows ---------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Vocabulary:
    """Real names and sizes to bias the random values toward, so requests reach the deep checks."""

    tasks: tuple[str, ...]  # real task names; the protected ones (never deleted, rolled back, unloaded, published to)
    component_ids: tuple[str, ...] = ()
    image_size: int = 32
    spare_tasks: tuple[str, ...] = ()  # real tasks the fuzzing may change (publish to, roll back, delete)
    # Valid requests to cross with random values, by request message full name; each seed is one call's messages.
    seeds: Mapping[str, tuple[tuple[Message, ...], ...]] = field(default_factory=dict)
    http_seeds: tuple[tuple[dict[str, Any], bytes], ...] = ()  # valid inference bodies: JSON header, binary data

    def __repr__(self) -> str:  # short: hypothesis prints the strategies built from it
        return f"Vocabulary(tasks={self.tasks}, spare_tasks={self.spare_tasks}, {len(self.seeds)} seed types)"

    @cached_property
    def names(self) -> tuple[str, ...]:
        first = self.tasks[0]
        return (*self.tasks, *self.spare_tasks, "", "nope", first.title(), f"{first} ", f"../{first}", "a" * 300, "é",
                "\x00", "x/y", *TENSOR_NAMES)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return (*self.component_ids, "", "f" * 64, "0" * 64, "F" * 64, "not-an-id", "../../registry.sqlite3", "7")

    @cached_property
    def shapes(self) -> tuple[list[int], ...]:
        s = self.image_size
        return ([1, 8, 8], [1, 8, 8, 1], [1, 8, 8, 3], [2, 8, 8], [1, 3, s, s], [2, 3, s, s], [1, 3, 8, 8], [1],
                [1, 1], [2], [0], [], [0, 8, 8], [257, 1, 1], [-1, 8, 8], [1, -8, 8], [1, 2**31, 2**31],
                [2**32, 2**32], [0, 2**63 - 1, 2**63 - 1], [2**62, 4], [1, 8, 8, 5], [1, 1, 1, 1, 1], [1] * 65,
                [1, 8, 8] + [1] * 62, [1] * 1000)

    @cached_property
    def payloads(self) -> tuple[bytes, ...]:
        """Plausible bytes: encoded images, pixel and float buffers of the plausible shapes, BYTES-framed images."""
        s = self.image_size
        grey = encode_png(np.arange(64, dtype=np.uint8).reshape(8, 8))
        rgb = encode_png(np.zeros((s, s, 3), np.uint8))
        return (b"", grey, rgb, grey[:20], b"\x89PNG\r\n\x1a\n", b"GIF89a", bytes(64), bytes(192),
                np.zeros((1, 3, s, s), np.float32).tobytes(), np.full((1, 3, s, s), np.nan, np.float32).tobytes(),
                bytes(4 * 64), _framed([grey]), _framed([grey, rgb]), struct.pack("<I", 2**31) + b"x", b"\x00\x00")


def _framed(elements: Sequence[bytes]) -> bytes:
    """A raw BYTES tensor: each element as a 4-byte little-endian length, then its bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


TENSOR_NAMES = ("IMAGE", "LOGITS", "image", "INPUT0", "OUTPUT0")
VERSIONS = ("", "1", "2", "0", "-1", "+1", "01", "v1", "1.0", "\uff11", "\u0663", "99999999999999999999", " 1")
DATATYPES = ("UINT8", "FP32", "BYTES", "FP16", "BF16", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT16", "UINT32",
             "UINT64", "BOOL", "", "uint8", "STRING", "TYPE_UINT8")
PARAMETER_KEYS = ("classification", "binary_data", "binary_data_size", "binary_data_output", "unload_dependents",
                  "priority", "timeout", "config", "file:1/model.onnx", "")
DIMS = (-2**63, -1, 0, 1, 2, 3, 8, 32, 224, 256, 257, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1)
LENGTHS = (1, 3, 64, 192)  # lengths of constant repeated lists (a tensor's elements)

_T = FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-2**31, 2**31 - 1), _T.TYPE_SINT32: (-2**31, 2**31 - 1), _T.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1), _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-2**63, 2**63 - 1), _T.TYPE_SINT64: (-2**63, 2**63 - 1), _T.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1), _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_SPECIAL_FLOATS = (0.0, -0.0, 0.5, 1.0, -1.0, 255.0, 1e38, -1e38, math.nan, math.inf, -math.inf)
MAX_DEPTH = 3  # nested messages below this depth are left unset
MAX_REPEATED = 3


def pick(items: Sequence[Any]) -> st.SearchStrategy[Any]:
    """st.sampled_from for large items (seeds, payloads, long shapes): the same choice, shrinking to the first, but a
    short repr (hypothesis would otherwise build one of every item)."""
    items = tuple(items)
    return st.integers(0, len(items) - 1).map(items.__getitem__)


# --- values ------------------------------------------------------------------------------------------------------


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Any integer of the range, often an extreme or a small one."""
    special = sorted({v for v in (0, 1, 2, 3, 5, 8, 10, 32, 255, 256, -1, lo, lo + 1, hi - 1, hi, 2**31 - 1, 2**31,
                                  2**32, 2**53 + 1) if lo <= v <= hi})
    return st.one_of(st.sampled_from(special), st.integers(lo, hi))


def _likely_strings(field: FieldDescriptor, vocabulary: Vocabulary) -> tuple[str, ...]:
    if field.name == "name" and "Tensor" in field.containing_type.name:
        return TENSOR_NAMES[:2]
    if field.name in ("task", "model_name", "name"):
        return vocabulary.tasks
    if field.name == "datatype":
        return DATATYPES[:3]
    if field.name in ("version", "model_version"):
        return ("", "1")
    return ()


def _string_pool(field: FieldDescriptor, vocabulary: Vocabulary) -> tuple[str, ...]:
    name = field.name
    if name in ("task", "model_name"):
        return vocabulary.names
    if name == "name":
        return (*vocabulary.names, *vocabulary.ids[:2])
    if name in ("version", "model_version"):
        return VERSIONS
    if name == "datatype":
        return DATATYPES
    if name in ("id", "ids"):
        return vocabulary.ids
    if name == "key":
        return PARAMETER_KEYS
    return (*vocabulary.names, *VERSIONS, *DATATYPES, *PARAMETER_KEYS, *vocabulary.ids)


def scalars(field: FieldDescriptor, vocabulary: Vocabulary) -> st.SearchStrategy[Any]:
    """Random values of a scalar field's type, biased toward what the server knows."""
    kind = field.type
    if kind in _INT_RANGES:
        return integers(*_INT_RANGES[kind])
    if kind == _T.TYPE_FLOAT:
        return st.one_of(st.sampled_from(_SPECIAL_FLOATS), st.floats(width=32))
    if kind == _T.TYPE_DOUBLE:
        return st.one_of(st.sampled_from(_SPECIAL_FLOATS), st.floats())
    if kind == _T.TYPE_BOOL:
        return st.booleans()
    if kind == _T.TYPE_ENUM:  # proto3 enums are open: unknown numbers travel too
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), integers(-2**31, 2**31 - 1))
    if kind == _T.TYPE_STRING:
        pool = st.sampled_from(_string_pool(field, vocabulary))
        likely = _likely_strings(field, vocabulary)
        if likely:  # a third of them the real task, input or output, or a datatype the server takes
            return st.one_of(st.sampled_from(likely), pool, st.text(max_size=16))
        return st.one_of(pool, st.text(max_size=16))
    if kind == _T.TYPE_BYTES:
        return st.one_of(pick(vocabulary.payloads), st.binary(max_size=64))
    raise AssertionError(f"unexpected field type {kind} of {field.full_name}")


def _repeated_scalars(field: FieldDescriptor, vocabulary: Vocabulary) -> st.SearchStrategy[list[Any]]:
    values = scalars(field, vocabulary)
    if field.name == "shape" and field.type in _INT_RANGES:
        lo, hi = _INT_RANGES[field.type]
        dims = st.one_of(st.sampled_from([d for d in DIMS if lo <= d <= hi]), values)
        plausible = [s for s in vocabulary.shapes if all(lo <= d <= hi for d in s)]
        return st.one_of(pick(plausible), st.lists(dims, max_size=5))
    constant = st.builds(lambda v, n: [v] * n, values, st.sampled_from(LENGTHS))
    return st.one_of(st.lists(values, max_size=MAX_REPEATED), constant)


# --- messages ----------------------------------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == _T.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _fill(draw: st.DrawFn, message: Message, vocabulary: Vocabulary, depth: int) -> None:
    descriptor = message.DESCRIPTOR
    for oneof in descriptor.oneofs:  # at most one member of each oneof
        chosen = draw(st.sampled_from([None, *oneof.fields]))
        if chosen is not None:
            _set(draw, message, chosen, vocabulary, depth)
    for f in descriptor.fields:
        if f.containing_oneof is None and draw(st.integers(0, 3)):  # set 3 times in 4; shrinks to unset
            _set(draw, message, f, vocabulary, depth)


def _set(draw: st.DrawFn, message: Message, field: FieldDescriptor, vocabulary: Vocabulary, depth: int) -> None:
    name = field.name
    if field.type == _T.TYPE_MESSAGE and depth >= MAX_DEPTH:
        return
    if _is_map(field):
        entry = field.message_type
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        target = getattr(message, name)
        for _ in range(draw(st.integers(0, MAX_REPEATED))):
            key = draw(scalars(key_field, vocabulary))
            if value_field.type == _T.TYPE_MESSAGE:
                _fill(draw, target[key], vocabulary, depth + 1)
            else:
                target[key] = draw(scalars(value_field, vocabulary))
        return
    if field.is_repeated:
        if field.type == _T.TYPE_MESSAGE:
            target = getattr(message, name)
            for _ in range(draw(st.integers(0, MAX_REPEATED))):
                _fill(draw, target.add(), vocabulary, depth + 1)
        else:
            getattr(message, name).extend(draw(_repeated_scalars(field, vocabulary)))
        return
    if field.type == _T.TYPE_MESSAGE:
        child = getattr(message, name)
        child.SetInParent()
        _fill(draw, child, vocabulary, depth + 1)
        return
    setattr(message, name, draw(scalars(field, vocabulary)))


ITEM_BYTES = {"BOOL": 1, "UINT8": 1, "INT8": 1, "UINT16": 2, "INT16": 2, "FP16": 2, "BF16": 2, "UINT32": 4, "INT32": 4,
              "FP32": 4, "UINT64": 8, "INT64": 8, "FP64": 8, "BYTES": 1}
CONTENTS = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT32": "uint_contents", "INT32": "int_contents",
            "INT64": "int64_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}
MAX_FITTED_ELEMENTS = 1 << 17


def _elements(shape: Sequence[int]) -> int | None:
    """The element count of a shape, if it is one and small enough to send."""
    if any(d < 0 for d in shape):
        return None
    count = math.prod(shape)
    return count if count <= MAX_FITTED_ELEMENTS else None


def _fit(draw: st.DrawFn, message: Message) -> None:
    """Now and then (at every depth) makes a tensor's data fit its shape, whatever the shape: a `data` bytes field
    beside a `shape` (native Tensor), typed `contents` beside a shape and datatype, or `raw_input_contents` for
    the `inputs` beside them (KServe), so that odd shapes reach the checks past the size check."""
    fields = message.DESCRIPTOR.fields_by_name
    for f in message.DESCRIPTOR.fields:
        if f.type != _T.TYPE_MESSAGE or _is_map(f):
            continue
        if f.is_repeated:
            for item in getattr(message, f.name):
                _fit(draw, item)
        elif message.HasField(f.name):
            _fit(draw, getattr(message, f.name))
    shaped = "shape" in fields and fields["shape"].is_repeated and fields["shape"].type in _INT_RANGES
    if shaped and "data" in fields and fields["data"].type == _T.TYPE_BYTES and draw(st.integers(0, 2)) == 2:
        count = _elements(message.shape)
        if count is not None:
            message.data = bytes(count * draw(st.sampled_from([1, 4])))
    if (shaped and "contents" in fields and "datatype" in fields and message.datatype in CONTENTS
            and draw(st.integers(0, 2)) == 2):
        count = _elements(message.shape)
        if count is not None:
            target = getattr(message.contents, CONTENTS[message.datatype])
            del target[:]
            target.extend([False if message.datatype == "BOOL" else 0] * count)
    if "inputs" in fields and "raw_input_contents" in fields and fields["inputs"].message_type is not None \
            and {"shape", "datatype"} <= set(fields["inputs"].message_type.fields_by_name) \
            and draw(st.integers(0, 2)) == 2:
        counts = [_elements(t.shape) for t in message.inputs]
        if all(c is not None for c in counts):
            del message.raw_input_contents[:]
            message.raw_input_contents.extend(bytes(c * ITEM_BYTES.get(t.datatype, 1))  # type: ignore[operator]
                                              for c, t in zip(counts, message.inputs, strict=True))


@st.composite
def messages(draw: st.DrawFn, cls: type[Message], vocabulary: Vocabulary) -> Message:
    """A message of `cls` with random values in a random subset of its fields (nested messages, repeated fields,
    maps and one member of each oneof included), down to MAX_DEPTH levels; tensors' data now and then fitted."""
    message = cls()
    _fill(draw, message, vocabulary, 0)
    _fit(draw, message)
    return message


KEEP, RANDOM, CLEAR = "keep", "random", "clear"


def _rate(draw: st.DrawFn) -> int:
    """How much of one seed changes: each of its fields with a chance of 1, 2, 4 or 8 in 16."""
    return draw(st.sampled_from([1, 2, 4, 8]))


def _fate(draw: st.DrawFn, rate: int, present: bool = True) -> str:
    """What becomes of a seed's field: kept (what it shrinks to), replaced by a random value, or cleared; a field the
    seed does not have is given a random value half as often."""
    roll = draw(st.integers(0, 15))
    if roll < 16 - (rate if present else rate // 2):
        return KEEP
    return RANDOM if not present or draw(st.integers(0, 2)) else CLEAR


def _present(message: Message, f: FieldDescriptor) -> bool:
    if f.is_repeated:
        return len(getattr(message, f.name)) > 0
    if f.has_presence:
        return message.HasField(f.name)
    return getattr(message, f.name) != f.default_value


def _cross(draw: st.DrawFn, target: Message, seed: Message, vocabulary: Vocabulary, depth: int, rate: int) -> None:
    for f in seed.DESCRIPTOR.fields:
        present = _present(seed, f)
        fate = _fate(draw, rate, present)
        if fate == RANDOM:
            _set(draw, target, f, vocabulary, depth)
        if fate != KEEP or not present:
            continue
        value = getattr(seed, f.name)
        if _is_map(f):
            for key, item in value.items():
                if f.message_type.fields_by_name["value"].type == _T.TYPE_MESSAGE:
                    getattr(target, f.name)[key].CopyFrom(item)
                else:
                    getattr(target, f.name)[key] = item
        elif f.is_repeated and f.type == _T.TYPE_MESSAGE:
            for item in value:
                if _fate(draw, rate) != CLEAR:
                    _cross(draw, getattr(target, f.name).add(), item, vocabulary, depth + 1, rate)
        elif f.is_repeated:
            getattr(target, f.name).extend(value)
        elif f.type == _T.TYPE_MESSAGE:
            child = getattr(target, f.name)
            child.SetInParent()
            _cross(draw, child, value, vocabulary, depth + 1, rate)
        else:
            setattr(target, f.name, value)


@st.composite
def crossed(draw: st.DrawFn, seed: Message, vocabulary: Vocabulary) -> Message:
    """A valid seed with some of its fields (at every depth) replaced by random values or cleared: from one field in
    16 to one in 2, so that some differ from a valid request in a single field and others in many."""
    message = type(seed)()
    _cross(draw, message, seed, vocabulary, 0, _rate(draw))
    _fit(draw, message)
    return message


def _seed_messages(cls: type[Message], vocabulary: Vocabulary) -> list[Message]:
    return [m for seed in vocabulary.seeds.get(cls.DESCRIPTOR.full_name, ()) for m in seed]


def generic_seed(cls: type[Message], vocabulary: Vocabulary) -> Message:
    """A request naming the real task in its name fields and version 1 in its version fields (and nothing else)."""
    message = cls()
    for f in cls.DESCRIPTOR.fields:
        if f.is_repeated or f.type == _T.TYPE_MESSAGE:
            continue
        if f.name in ("task", "model_name", "name") and f.type == _T.TYPE_STRING:
            setattr(message, f.name, vocabulary.tasks[0])
        elif f.name in ("version", "model_version"):
            setattr(message, f.name, "1" if f.type == _T.TYPE_STRING else 1)
    return message


# --- malformed bytes ---------------------------------------------------------------------------------------------

WIRE_SNIPPETS = (
    b"\x08",  # a varint field with no value
    b"\x0a\x05ab",  # a length past the end
    b"\x0a\xff\xff\xff\xff\x0f",  # a huge length
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # an overlong varint tag
    b"\x00",  # field number 0
    b"\x0b",  # a start-group tag
    b"\x0c",  # an end-group tag without its start
    b"\x0f",  # wire type 7
    b"\x0a\x02\xc3\x28",  # invalid UTF-8 in field 1 (a string in many requests)
    b"\x12\x01\xff",  # invalid UTF-8 in field 2
    b"\x1a\x02\x0a\x00" * 3,
    b"\x12" + b"\x7f" + b"\x12\x7d" * 60,  # nested lengths that do not add up
)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    """A serialized message with a few random byte edits: flips, insertions, deletions, a truncation."""
    data = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "snippet"]))
        at = draw(st.integers(0, len(data)))
        if edit == "flip" and data:
            data[min(at, len(data) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete" and data:
            del data[min(at, len(data) - 1)]
        elif edit == "truncate":
            del data[at:]
        else:
            data[at:at] = draw(st.sampled_from(WIRE_SNIPPETS))
    return bytes(data)


def nested_bytes(depth: int) -> bytes:
    """Field 1 holding field 1 holding ... `depth` levels of length-delimited submessages."""
    data = b""
    for _ in range(depth):
        data = b"\x0a" + _varint(len(data)) + data
    return data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def serialized(cls: type[Message], vocabulary: Vocabulary) -> st.SearchStrategy[bytes]:
    return messages(cls, vocabulary).map(lambda m: m.SerializeToString())


def raw_bytes(cls: type[Message], vocabulary: Vocabulary, valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Bytes that are most likely not a valid message of `cls`: random, known-bad wire snippets, deep nesting, and
    (twice as likely) mutations of valid messages."""
    return st.one_of(
        st.binary(max_size=256),
        st.sampled_from(WIRE_SNIPPETS),
        pick([nested_bytes(d) for d in (50, 101, 200, 1000)]),
        mutated(valid),
        mutated(valid),
    )


def seeded(cls: type[Message], vocabulary: Vocabulary) -> st.SearchStrategy[bytes]:
    """A crossed seed of the message type (the given seeds and the generic one), serialized."""
    seeds = [*_seed_messages(cls, vocabulary), generic_seed(cls, vocabulary)]
    return pick(seeds).flatmap(lambda seed: crossed(seed, vocabulary)).map(lambda m: m.SerializeToString())


@st.composite
def payloads(draw: st.DrawFn, cls: type[Message], vocabulary: Vocabulary) -> bytes:
    """One request message's bytes: a crossed seed (2 in 4), a random well-formed message (1 in 4) or malformed
    bytes (1 in 4, most of them mutations of the other two). (Drawn by kind: st.one_of would flatten the branches
    of raw_bytes into its own and weigh them alike.)"""
    valid, near = serialized(cls, vocabulary), seeded(cls, vocabulary)
    kind = draw(st.sampled_from(["near", "valid", "near", "raw"]))
    if kind == "raw":
        return draw(raw_bytes(cls, vocabulary, st.one_of(near, valid)))
    return draw(near if kind == "near" else valid)


Request = bytes | list[bytes]


@st.composite
def seeded_streams(draw: st.DrawFn, rpc: Rpc, vocabulary: Vocabulary) -> list[bytes]:
    """A seed stream with its messages crossed, and now and then one dropped, repeated or replaced by any payload."""
    seed = draw(pick(vocabulary.seeds[rpc.request.DESCRIPTOR.full_name]))
    items = [draw(crossed(m, vocabulary)).SerializeToString() for m in seed]
    for _ in range(draw(st.integers(0, 2)) if items else 0):
        edit, at = draw(st.sampled_from(["drop", "repeat", "replace"])), draw(st.integers(0, len(items) - 1))
        if edit == "drop":
            del items[at]
            if not items:
                break
        elif edit == "repeat":
            items.insert(at, items[at])
        else:
            items[at] = draw(payloads(rpc.request, vocabulary))
    return items


def rpc_requests(rpc: Rpc, vocabulary: Vocabulary) -> st.SearchStrategy[Request]:
    """The request of one call: one message's bytes, or for a client-streaming RPC a short list of them (half the
    time a crossed seed stream, when there are seeds)."""
    one = payloads(rpc.request, vocabulary)
    if not rpc.client_streaming:
        return one
    lists = st.lists(one, max_size=4)
    if rpc.request.DESCRIPTOR.full_name in vocabulary.seeds:
        return st.one_of(seeded_streams(rpc, vocabulary), lists)
    return lists


# --- destructive calls -------------------------------------------------------------------------------------------

PROTECTED_FIELDS = {  # RPC path -> the request field (dotted) naming the task it deletes, rolls back, unloads or
    # publishes to (a publish of the real task's own components with another input spec changes its answers)
    "/munet_serve.v1.Tasks/DeleteTask": "name",
    "/munet_serve.v1.Versions/Rollback": "task",
    "/munet_serve.v1.Evolution/PublishPath": "path.task",
    "/inference.GRPCInferenceService/RepositoryModelUnload": "model_name",
}


def _guard_one(rpc: Rpc, data: bytes, protected: Sequence[str]) -> bytes:
    dotted = PROTECTED_FIELDS.get(rpc.path)
    if dotted is None:
        return data
    try:
        message = rpc.request.FromString(data)
    except DecodeError:
        return data  # the server will not parse it either
    *parents, name = dotted.split(".")
    holder = message
    for parent in parents:
        if not holder.HasField(parent):
            return data
        holder = getattr(holder, parent)
    if getattr(holder, name) not in protected:
        return data
    setattr(holder, name, getattr(holder, name) + "-fuzz")
    return message.SerializeToString()


def guard_rpc(rpc: Rpc, request: Request, protected: Sequence[str]) -> Request:
    """The request with any protected task renamed in the name field of a destructive RPC."""
    if isinstance(request, list):
        return [_guard_one(rpc, r, protected) for r in request]
    return _guard_one(rpc, request, protected)


_UNLOAD = re.compile(r"/v2/repository/models/([^/]*)/unload/*")


def guard_http(path: str, protected: Sequence[str]) -> str:
    """The path with a protected task renamed if it would unload it (the server matches the decoded path)."""
    bare = path.split("?", 1)[0]
    match = _UNLOAD.fullmatch(unquote(bare))
    if match is None or match.group(1) not in protected:
        return path
    return f"/v2/repository/models/{quote(match.group(1) + '-fuzz', safe='')}/unload"


# --- sending gRPC ------------------------------------------------------------------------------------------------

STREAM_QUIET_S = 0.25  # a server stream with no message for this long after its headers is cancelled by the client
STREAM_MAX_MESSAGES = 8  # ... and after this many messages


@dataclass(frozen=True)
class Outcome:
    """How one call ended: its status code's name (OK included), its details, and whether the client ended it."""

    status: str
    details: str = ""
    by_client: bool = False  # cancelled by the client, or its own deadline on a streaming call


class _QuietWatch:
    """Cancels a server stream that, once its headers arrived, sends nothing for `quiet` seconds (WatchTasks
    follows events until cancelled)."""

    def __init__(self, call: Any, quiet: float) -> None:
        self.call, self.quiet = call, quiet
        self.last = time.monotonic()
        self.cancelled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def seen(self) -> None:
        self.last = time.monotonic()

    def _watch(self) -> None:
        try:
            self.call.initial_metadata()  # returns when the headers arrive or the call ends
        except Exception:  # noqa: BLE001 - the call failed; the reader sees how
            return
        self.seen()
        while not self._stop.wait(self.quiet / 5):
            if time.monotonic() - self.last > self.quiet:
                self.cancelled = True
                self.call.cancel()
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _drain(call: Any) -> Outcome:
    watch = _QuietWatch(call, STREAM_QUIET_S)
    try:
        for count, _ in enumerate(call, 1):
            watch.seen()
            if count >= STREAM_MAX_MESSAGES:
                call.cancel()
                return Outcome("CANCELLED", f"after {count} messages", by_client=True)
    except grpc.RpcError as e:
        code = e.code()
        by_client = (watch.cancelled and code == grpc.StatusCode.CANCELLED) or code == grpc.StatusCode.DEADLINE_EXCEEDED
        return Outcome(code.name, e.details() or "", by_client)
    finally:
        watch.close()
    return Outcome("OK")


def call_rpc(channel: grpc.Channel, rpc: Rpc, request: Request, timeout: float) -> Outcome:
    """Sends the raw request bytes with the RPC's cardinality; reads a server stream as _drain says."""
    callables: dict[str, Callable[..., Any]] = {
        "unary_unary": channel.unary_unary, "unary_stream": channel.unary_stream,
        "stream_unary": channel.stream_unary, "stream_stream": channel.stream_stream,
    }
    method = callables[rpc.cardinality](rpc.path, request_serializer=None, response_deserializer=None)
    argument: Any = iter(request) if rpc.client_streaming else request
    if rpc.server_streaming:
        return _drain(method(argument, timeout=timeout))
    try:
        method(argument, timeout=timeout)
    except grpc.RpcError as e:
        return Outcome(e.code().name, e.details() or "")
    return Outcome("OK")


# --- HTTP --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None


HEADER_LENGTH = "Inference-Header-Content-Length"
METHODS = ("GET", "GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


def _segments(vocabulary: Vocabulary) -> st.SearchStrategy[str]:
    raw = st.one_of(st.sampled_from([*vocabulary.names, *VERSIONS]), st.text(max_size=12))
    return raw.map(lambda s: quote(s, safe=""))


@st.composite
def paths(draw: st.DrawFn, vocabulary: Vocabulary) -> str:
    """A path under /v2 (now and then /metrics or elsewhere): a route of the endpoint with random model, version and
    region names, or random segments; sometimes with a query string."""
    m = draw(st.one_of(st.sampled_from(vocabulary.tasks), st.sampled_from(vocabulary.tasks), _segments(vocabulary)))
    v = draw(st.one_of(st.sampled_from([quote(x, safe="") for x in VERSIONS]), _segments(vocabulary)))
    x = draw(_segments(vocabulary))
    model, versioned = f"/v2/models/{m}", f"/v2/models/{m}/versions/{v}"
    templates = [
        "/v2", "/v2/", "/v2/health/live", "/v2/health/ready", f"/v2/health/{x}", "/v2/models/stats",
        "/v2/repository/index", f"/v2/repository/models/{m}/load", f"/v2/repository/models/{m}/unload",
        "/v2/systemsharedmemory/status", f"/v2/systemsharedmemory/region/{x}/register",
        f"/v2/cudasharedmemory/region/{x}/unregister", "/v2/trace/setting", f"{model}/trace/setting", "/v2/logging",
        "/metrics", f"/v2/{x}", f"/{x}", f"{model}/{x}", f"{model}//infer", "/v2/models//infer",
    ]
    for prefix in (model, versioned):
        templates += [prefix, f"{prefix}/ready", f"{prefix}/config", f"{prefix}/stats", f"{prefix}/infer",
                      f"{prefix}/infer", f"{prefix}/infer"]
    path = draw(st.one_of(st.sampled_from(templates),
                          st.lists(_segments(vocabulary), max_size=5).map(lambda s: "/v2/" + "/".join(s))))
    if draw(st.integers(0, 9)) == 0:
        path += "?" + draw(st.sampled_from(["", "x=1", "ready=true", "a=%ff", "&&=="]))
    return path


def json_values(vocabulary: Vocabulary) -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(), st.booleans(), integers(-2**64, 2**64), st.floats(),
        st.sampled_from([*vocabulary.names, *DATATYPES, *PARAMETER_KEYS, 10**400]), st.text(max_size=8),
    )
    keys = st.one_of(st.sampled_from(["name", "datatype", "shape", "data", "parameters", "inputs", "outputs", "id",
                                      "ready", *PARAMETER_KEYS]), st.text(max_size=6))
    return st.recursive(leaves, lambda children: st.one_of(st.lists(children, max_size=4),
                                                           st.dictionaries(keys, children, max_size=4)),
                        max_leaves=12)


def _tensor_data(vocabulary: Vocabulary) -> st.SearchStrategy[Any]:
    element = st.one_of(integers(-2**64, 2**64), st.floats(), st.sampled_from([0, 255, 256, -1, 0.5, "x", True]))
    constant = st.builds(lambda v, n: [v] * n, element, st.sampled_from(LENGTHS + (3 * vocabulary.image_size ** 2,)))
    nested = st.builds(lambda v, n: [[[v] * 8] * 8] * n, element, st.sampled_from([1, 2]))
    return st.one_of(st.lists(element, max_size=4), constant, nested, json_values(vocabulary))


@st.composite
def infer_documents(draw: st.DrawFn, vocabulary: Vocabulary) -> tuple[dict[str, Any], bytes]:
    """An inference request's JSON header, mostly of the right structure with random values, and the binary data
    its binary_data_size parameters ask for (or not quite)."""
    anything = json_values(vocabulary)
    inputs, binary = [], b""
    for _ in range(draw(st.integers(0, 2))):
        tensor: dict[str, Any] = {}
        if draw(st.integers(0, 4)):
            tensor["name"] = draw(st.one_of(st.sampled_from(TENSOR_NAMES), anything))
        if draw(st.integers(0, 4)):
            tensor["datatype"] = draw(st.one_of(st.sampled_from(DATATYPES), anything))
        if draw(st.integers(0, 4)):
            tensor["shape"] = draw(st.one_of(pick(vocabulary.shapes), anything,
                                             st.lists(st.sampled_from(DIMS), max_size=4)))
        how = draw(st.sampled_from(["data", "binary", "both", "neither"]))
        if how in ("data", "both"):
            tensor["data"] = draw(_tensor_data(vocabulary))
        if how in ("binary", "both"):
            chunk = draw(st.one_of(pick(vocabulary.payloads), st.binary(max_size=32)))
            size = draw(st.one_of(st.just(len(chunk)), st.sampled_from([-1, 0, 2**63, 1.5, "4", None, True]),
                                  st.integers(0, 300)))
            tensor["parameters"] = {"binary_data_size": size}
            binary += chunk
        if draw(st.integers(0, 5)) == 0:
            tensor[draw(st.text(max_size=6))] = draw(anything)
        inputs.append(tensor)
    document: dict[str, Any] = {}
    if draw(st.integers(0, 5)):
        document["inputs"] = inputs
    if draw(st.booleans()):
        document["id"] = draw(anything)
    if draw(st.booleans()):
        document["parameters"] = draw(st.one_of(
            st.fixed_dictionaries({"binary_data_output": st.one_of(st.booleans(), anything)}), anything))
    if draw(st.booleans()):
        document["outputs"] = draw(st.one_of(st.lists(st.fixed_dictionaries(
            {"name": st.one_of(st.sampled_from(TENSOR_NAMES), anything)},
            optional={"parameters": st.one_of(st.fixed_dictionaries(
                {}, optional={"classification": st.one_of(integers(-2**63, 2**63), anything),
                              "binary_data": st.one_of(st.booleans(), anything)}), anything)}), max_size=2), anything))
    return document, binary


def deep_json(depth: int, opener: str = "[") -> bytes:
    closer = {"[": "]", "{": "}"}[opener]
    if opener == "{":
        return ('{"a":' * depth + "0" + closer * depth).encode()
    return (opener * depth + closer * depth).encode()


def deep_infer(depth: int) -> bytes:
    """An inference request whose data list nests `depth` levels deep."""
    data = "[" * depth + "0" + "]" * depth
    return ('{"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 1, 1], "data": ' + data + "}]}").encode()


@st.composite
def bodies(draw: st.DrawFn, vocabulary: Vocabulary) -> tuple[bytes | None, dict[str, str]]:
    """A body (none, random bytes, any JSON, an inference request, with or without binary data, deeply nested
    JSON) and its headers, the binary extension's header length among them."""
    headers: dict[str, str] = {}
    kind = draw(st.sampled_from(["none", "bytes", "json", "infer", "infer", "infer", "binary", "binary", "deep",
                                 "junk"]))
    if kind == "none":
        body = None
    elif kind == "bytes":
        body = draw(st.binary(max_size=128))
    elif kind == "json":
        body = json.dumps(draw(json_values(vocabulary))).encode()
    elif kind == "deep":
        depth = draw(st.sampled_from([10, 500, 990, 1500, 100_000]))
        body = draw(pick([deep_json(depth), deep_json(depth, "{"), deep_infer(depth)]))
    elif kind == "junk":
        body = draw(st.sampled_from([b"\xff\xfe{", b'{"inputs": [}', b"{}{}", b'{"a": NaN}', b"null", b"[]", b'"x"',
                                     b"\x00", "{\"id\": \"\u2028\"}".encode()]))
    else:
        document, binary = draw(infer_documents(vocabulary))
        header = json.dumps(document).encode()
        if kind == "binary":
            body = header + binary
            headers[HEADER_LENGTH] = str(len(header))
        else:
            body = header
    if draw(st.integers(0, 3)) == 0:
        length = len(body or b"")
        headers[HEADER_LENGTH] = draw(st.one_of(
            st.sampled_from(["", "-1", "0", "abc", "1e3", " 12 ", "0x10", "99999999999999999999", str(length),
                             str(length + 1)]),
            st.integers(-10, 500).map(str)))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.sampled_from(["application/json", "application/octet-stream",
                                                        "text/plain", "multipart/form-data; boundary=x"]))
    return body, headers


@st.composite
def json_crossed(draw: st.DrawFn, value: Any, vocabulary: Vocabulary, rate: int) -> Any:
    """A JSON value with some of its members and elements (at every depth, each with a chance of `rate` in 16)
    replaced by random values or removed, and now and then a random member added."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            fate = _fate(draw, rate)
            if fate != CLEAR:
                result[key] = draw(json_crossed(item, vocabulary, rate)) if fate == KEEP else \
                    draw(json_values(vocabulary))
        if _fate(draw, rate, present=False) == RANDOM:
            result[draw(st.text(max_size=6))] = draw(json_values(vocabulary))
        return result
    if isinstance(value, list) and len(value) <= 8:
        result_list = []
        for item in value:
            fate = _fate(draw, rate)
            if fate != CLEAR:
                result_list.append(draw(json_crossed(item, vocabulary, rate)) if fate == KEEP else
                                   draw(json_values(vocabulary)))
        return result_list
    return value if _fate(draw, rate) != RANDOM else draw(json_values(vocabulary))


@st.composite
def seeded_infer(draw: st.DrawFn, vocabulary: Vocabulary) -> HttpRequest:
    """A valid inference request (JSON or binary) of the real task, crossed: its header's values, its binary data,
    its header length, its method and its path's version now and then changed."""
    document, binary = draw(pick(vocabulary.http_seeds))
    rate = _rate(draw)
    header = json.dumps(draw(json_crossed(document, vocabulary, rate))).encode()
    if binary and _fate(draw, rate) == RANDOM:
        binary = draw(st.one_of(pick(vocabulary.payloads), st.binary(max_size=64)))
    headers = {HEADER_LENGTH: str(len(header))} if binary else {}
    if _fate(draw, rate) == RANDOM:
        headers[HEADER_LENGTH] = draw(st.sampled_from(["", "-1", "0", "abc", str(len(header) + 1), str(len(header) - 1),
                                                       str(len(header) + len(binary)), "99999999999999999999"]))
    method = "POST" if _fate(draw, rate) != RANDOM else draw(st.sampled_from(METHODS))
    version = draw(st.sampled_from(["", "", "1", "2", "0", "v1", "%31"]))
    path = f"/v2/models/{vocabulary.tasks[0]}" + (f"/versions/{version}" if version else "") + "/infer"
    if _fate(draw, rate) == RANDOM:  # any body at all (deep, junk, random bytes) to the route that reads it
        body, headers = draw(bodies(vocabulary))
        return HttpRequest(method, path, headers, body)
    return HttpRequest(method, path, headers, header + binary)


POST_ROUTES = ("/infer", "/index", "/load", "/unload")


@st.composite
def random_http(draw: st.DrawFn, vocabulary: Vocabulary) -> HttpRequest:
    """A random route with a random body; the routes that take POST mostly get POST, so that their bodies are read."""
    path = guard_http(draw(paths(vocabulary)), vocabulary.tasks)
    posted = path.split("?", 1)[0].endswith(POST_ROUTES) and draw(st.integers(0, 3)) > 0
    method = "POST" if posted else draw(st.sampled_from(METHODS))
    body, headers = draw(bodies(vocabulary))
    return HttpRequest(method, path, headers, body)


def http_requests(vocabulary: Vocabulary) -> st.SearchStrategy[HttpRequest]:
    """A random request to a random route (2 in 3), or a crossed valid inference request (1 in 3, with seeds)."""
    if not vocabulary.http_seeds:
        return random_http(vocabulary)
    return st.one_of(random_http(vocabulary), random_http(vocabulary), seeded_infer(vocabulary))


def call_http(port: int, request: HttpRequest, timeout: float) -> tuple[int, bytes]:
    """Sends the request on a fresh connection; its status and body (transport errors propagate)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(request.method, request.path, body=request.body, headers=request.headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- seeds -------------------------------------------------------------------------------------------------------


def _tensor(dtype: int, array: np.ndarray) -> types_pb2.Tensor:
    return types_pb2.Tensor(dtype=dtype, shape=list(array.shape), data=array.tobytes())


def build_vocabulary(channel: grpc.Channel, task: str, spare: str) -> Vocabulary:
    """The vocabulary of a running server whose `task` serves version 1 and whose `spare` task is pending (it takes
    `task`'s labels): valid requests of every kind as seeds, read from what the server holds."""
    versions = tasks_pb2_grpc.VersionsStub(channel)
    evolution = evolution_pb2_grpc.EvolutionStub(channel)
    (v1,) = versions.ListVersions(tasks_pb2.ListVersionsRequest(task=task), timeout=30).versions
    root = evolution.GetRoot(evolution_pb2.GetRootRequest(), timeout=30)
    components = evolution.ListComponents(evolution_pb2.ListComponentsRequest(), timeout=30).components
    smallest = min(components, key=lambda c: c.weights_bytes + c.onnx_bytes)
    parts = tuple(evolution.GetComponent(evolution_pb2.GetComponentRequest(id=smallest.id, include_onnx=True),
                                         timeout=30))
    s = v1.input.image_size
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    png = encode_png(pixels)
    uint8, float32 = types_pb2.DTYPE_UINT8, types_pb2.DTYPE_FLOAT32
    infer, tensor, output = (kserve.message(n) for n in ("ModelInferRequest", "ModelInferRequest.InferInputTensor",
                                                          "ModelInferRequest.InferRequestedOutputTensor"))
    classes = output(name="LOGITS")
    classes.parameters["classification"].int64_param = 3
    raw_uint8 = infer(model_name=task, id="7", inputs=[tensor(name="IMAGE", datatype="UINT8", shape=[1, 8, 8])],
                      raw_input_contents=[pixels.tobytes()], outputs=[classes])
    listed = infer(model_name=task, model_version="1",
                   inputs=[tensor(name="IMAGE", datatype="FP32", shape=[1, 3, s, s])])
    listed.inputs[0].contents.fp32_contents.extend([0.0] * (3 * s * s))
    encoded = infer(model_name=task, inputs=[tensor(name="IMAGE", datatype="BYTES", shape=[1])],
                    raw_input_contents=[_framed([png])])
    as_list = infer(model_name=task, inputs=[tensor(name="IMAGE", datatype="BYTES", shape=[2, 1])])
    as_list.inputs[0].contents.bytes_contents.extend([png, png])
    splits = (types_pb2.SPLIT_TRAIN,) * 4 + (types_pb2.SPLIT_VALIDATION, types_pb2.SPLIT_TEST)
    examples = [tasks_pb2.Example(image=types_pb2.Image(encoded=encode_png(np.full((8, 8), 20 * i, np.uint8))),
                                  label=i % 2, split=splits[i % 6]) for i in range(12)]
    examples[1].image.Clear()
    examples[1].image.pixels.CopyFrom(_tensor(uint8, np.zeros((8, 8), np.uint8)))
    publish = types_pb2.PathVersion(task=spare, components=v1.components, hparams=v1.hparams, metrics=v1.metrics,
                                    input=v1.input, parent=types_pb2.PathRef(task=task, version=1))
    status = types_pb2.EvolutionStatus(phase="evolving", iteration=3, generation=1, best_score=0.5, message="fuzz")
    status.state.update({"round": 1, "names": ["a", "b"]})
    seeds: dict[str, tuple[tuple[Message, ...], ...]] = {
        "munet_serve.v1.PredictRequest": (
            (inference_pb2.PredictRequest(task=task, batch=_tensor(uint8, np.zeros((2, 8, 8, 1), np.uint8)),
                                          include_logits=True, top_k=3),),
            (inference_pb2.PredictRequest(task=task, version=1, images=[
                types_pb2.Image(encoded=png), types_pb2.Image(pixels=_tensor(uint8, pixels))]),),
            (inference_pb2.PredictRequest(task=task, batch=_tensor(float32, np.zeros((1, 3, s, s), np.float32))),),
        ),
        "inference.ModelInferRequest": ((raw_uint8,), (listed,), (encoded,), (as_list,), (raw_uint8, encoded, listed)),
        "munet_serve.v1.RegisterTaskRequest": ((
            tasks_pb2.RegisterTaskRequest(spec=tasks_pb2.TaskSpec(name="fuzz-new", labels=["a", "b"])),
            tasks_pb2.RegisterTaskRequest(chunk=tasks_pb2.DatasetChunk(examples=examples)),
        ),),
        "munet_serve.v1.PublishPathRequest": ((evolution_pb2.PublishPathRequest(path=publish),),),
        "munet_serve.v1.ComponentPart": (parts,),
        "munet_serve.v1.RootInfo": ((root,),),
        "munet_serve.v1.ReportStatusRequest": ((evolution_pb2.ReportStatusRequest(task=spare, status=status),),),
        "munet_serve.v1.RollbackRequest": ((tasks_pb2.RollbackRequest(task=spare, version=1),),),
        "munet_serve.v1.GetComponentRequest": ((evolution_pb2.GetComponentRequest(id=smallest.id,
                                                                                  include_onnx=True),),),
        "munet_serve.v1.ListComponentsRequest": ((evolution_pb2.ListComponentsRequest(
            ids=[c.id for c in components[:2]]),),),
        "munet_serve.v1.WatchTasksRequest": ((tasks_pb2.WatchTasksRequest(send_initial=True),),),
        "inference.RepositoryIndexRequest": ((kserve.message("RepositoryIndexRequest")(ready=True),),),
        "inference.RepositoryModelLoadRequest": ((kserve.message("RepositoryModelLoadRequest")(model_name=spare),),),
        "inference.RepositoryModelUnloadRequest": ((kserve.message("RepositoryModelUnloadRequest")(
            model_name=spare),),),
    }
    http_seeds = (
        ({"id": "7", "inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 8, 8],
                                 "data": pixels.reshape(-1).tolist()}],
          "outputs": [{"name": "LOGITS", "parameters": {"classification": 3}}]}, b""),
        ({"inputs": [{"name": "IMAGE", "datatype": "FP32", "shape": [1, 3, s, s], "data": [0.0] * (3 * s * s)}]},
         b""),
        ({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [2, 8, 8, 1],
                      "parameters": {"binary_data_size": 128}}], "parameters": {"binary_data_output": True}},
         bytes(128)),
        ({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [1],
                      "parameters": {"binary_data_size": len(_framed([png]))}}],
          "outputs": [{"name": "LOGITS", "parameters": {"binary_data": True}}]}, _framed([png])),
    )
    return Vocabulary(tasks=(task,), component_ids=tuple(c.id for c in components), image_size=s,
                      spare_tasks=(spare,), seeds=seeds, http_seeds=http_seeds)
