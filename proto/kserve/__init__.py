"""The KServe v2 protocol's messages, in a descriptor pool of munet-serve's own.

`kserve.binpb` is the descriptor set that ``python proto/generate.py`` compiles from the .proto files beside it.
Loading it here, instead of importing generated ``*_pb2`` modules, keeps the protocol's names (package
``inference``) out of protobuf's default pool: tritonclient registers the same names there from its own files, so
both may be imported by one process, in either order. The message classes below are built from this pool; on the
wire they are the protocol's messages, whoever built them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"{PACKAGE}.GRPCInferenceService"
SET_FILE = "kserve.binpb"


@cache
def _files() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    files = descriptor_pb2.FileDescriptorSet.FromString(resources.files(__name__).joinpath(SET_FILE).read_bytes())
    return {f.name: f for f in files.file}  # protoc writes them with their imports first


def file_names() -> list[str]:
    """The protocol's .proto files, imports first."""
    return list(_files())


def file_proto(name: str) -> descriptor_pb2.FileDescriptorProto:
    result = descriptor_pb2.FileDescriptorProto()
    result.CopyFrom(_files()[name])
    return result


@cache
def pool() -> descriptor_pool.DescriptorPool:
    """The pool that holds the protocol's files (and nothing else)."""
    result = descriptor_pool.DescriptorPool()
    for file in _files().values():
        result.Add(file)
    return result


@cache
def message(name: str) -> Any:
    """The class of the protocol's message `name` ("ModelInferRequest", "ModelConfig", nested ones dotted)."""
    return message_factory.GetMessageClass(pool().FindMessageTypeByName(f"{PACKAGE}.{name}"))


def service() -> Any:
    """The descriptor of GRPCInferenceService: its methods with their message types."""
    return pool().FindServiceByName(SERVICE)
