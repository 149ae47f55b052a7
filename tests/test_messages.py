"""munet_serve.messages: the protobuf builders and parsers the server and the clients share."""

from __future__ import annotations

import pytest

from munet_serve import messages
from munet_serve.artifacts import ComponentKind
from munet_serve.imaging import InputSpec
from munet_serve.proto.v1 import types_pb2
from munet_serve.server import codec
from munet_serve.server.registry import ComponentRecord

FIELDS = dict(id="ab" * 32, kind=ComponentKind.HEAD, config={"dim": 8, "classes": 10}, num_params=90,
              parity_max_abs_error=1e-6, lineage={"parent": None, "task": "digits"}, onnx_bytes=300,
              weights_bytes=400)


def test_every_kind_round_trips_and_unknown_values_are_refused() -> None:
    for kind in ComponentKind:
        assert types_pb2.ComponentKind.Name(messages.kind_pb(kind)) == f"COMPONENT_KIND_{kind.name}"
        assert messages.kind_from_pb(messages.kind_pb(kind)) is kind
    for value in (types_pb2.COMPONENT_KIND_UNSPECIFIED, 99):
        with pytest.raises(ValueError, match=f"unknown component kind {value}"):
            messages.kind_from_pb(value)


def test_input_spec_round_trips_and_an_empty_mean_is_the_methods() -> None:
    spec = InputSpec(image_size=32, mean=(0.25, 0.5, 0.75), std=(0.125, 0.25, 0.5))  # exact in float32
    assert messages.input_spec_from_pb(messages.input_spec_pb(spec)) == spec
    assert messages.input_spec_from_pb(types_pb2.InputSpec(image_size=16)) == InputSpec(image_size=16)
    with pytest.raises(ValueError, match="image_size must be in"):
        messages.input_spec_from_pb(types_pb2.InputSpec())


def test_component_info_carries_every_field_and_created_at_only_when_given() -> None:
    sent = messages.component_info_pb(**FIELDS)
    assert not sent.HasField("created_at")
    assert (sent.id, messages.kind_from_pb(sent.kind), sent.num_params, sent.onnx_bytes) == ("ab" * 32,
                                                                                            ComponentKind.HEAD, 90, 300)
    answered = messages.component_info_pb(**FIELDS, created_at=1700000000.5)
    assert answered.created_at.ToNanoseconds() == 1700000000_500000000
    assert not messages.timestamp_pb(0.0).ByteSize()


def test_the_servers_codec_builds_the_same_messages() -> None:
    """The server's codec answers with munet_serve.messages' builders: the two agree byte for byte."""
    for created_at in (0.0, 1700000000.5):
        record = ComponentRecord(**FIELDS, created_at=created_at)
        assert codec.component_pb(record) == messages.component_info_pb(**FIELDS, created_at=created_at)
    spec = InputSpec(image_size=32)
    assert codec.input_spec_pb(spec) == messages.input_spec_pb(spec)
    assert codec.input_spec(messages.input_spec_pb(spec), "x") == messages.input_spec_from_pb(codec.input_spec_pb(spec))
    assert all(codec.kind_pb(k) == messages.kind_pb(k) for k in ComponentKind)
