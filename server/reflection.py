"""Server reflection over every service the port serves: the native ones, whose files are in protobuf's default
pool, and KServe v2's, whose files are in munet_serve.proto.kserve's own pool (see there why). Reflection answers
from one pool, so this one holds both."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

from munet_serve.proto import kserve


def reflection_pool(native_files: Iterable[descriptor.FileDescriptor]) -> descriptor_pool.DescriptorPool:
    """A pool with the native files (their imports first) and the KServe v2 files."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto)
        pool.Add(proto)
        added.add(file.name)

    for file in native_files:
        add(file)
    for name in kserve.file_names():
        pool.Add(kserve.file_proto(name))
    return pool
