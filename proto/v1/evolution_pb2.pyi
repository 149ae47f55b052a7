from munet_serve.proto.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetRootRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ComponentPart(_message.Message):
    __slots__ = ("info", "weights_chunk", "onnx_chunk")
    INFO_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_CHUNK_FIELD_NUMBER: _ClassVar[int]
    ONNX_CHUNK_FIELD_NUMBER: _ClassVar[int]
    info: _types_pb2.ComponentInfo
    weights_chunk: bytes
    onnx_chunk: bytes
    def __init__(self, info: _Optional[_Union[_types_pb2.ComponentInfo, _Mapping]] = ..., weights_chunk: _Optional[bytes] = ..., onnx_chunk: _Optional[bytes] = ...) -> None: ...

class UploadComponentsResponse(_message.Message):
    __slots__ = ("stored", "existing")
    STORED_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    stored: _containers.RepeatedScalarFieldContainer[str]
    existing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, stored: _Optional[_Iterable[str]] = ..., existing: _Optional[_Iterable[str]] = ...) -> None: ...

class ListComponentsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListComponentsResponse(_message.Message):
    __slots__ = ("components",)
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    components: _containers.RepeatedCompositeFieldContainer[_types_pb2.ComponentInfo]
    def __init__(self, components: _Optional[_Iterable[_Union[_types_pb2.ComponentInfo, _Mapping]]] = ...) -> None: ...

class GetComponentRequest(_message.Message):
    __slots__ = ("id", "include_onnx")
    ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ONNX_FIELD_NUMBER: _ClassVar[int]
    id: str
    include_onnx: bool
    def __init__(self, id: _Optional[str] = ..., include_onnx: _Optional[bool] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class DatasetPart(_message.Message):
    __slots__ = ("info", "chunk")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    info: _types_pb2.DatasetInfo
    chunk: bytes
    def __init__(self, info: _Optional[_Union[_types_pb2.DatasetInfo, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PublishPathRequest(_message.Message):
    __slots__ = ("path", "component")
    PATH_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_FIELD_NUMBER: _ClassVar[int]
    path: _types_pb2.PathVersion
    component: ComponentPart
    def __init__(self, path: _Optional[_Union[_types_pb2.PathVersion, _Mapping]] = ..., component: _Optional[_Union[ComponentPart, _Mapping]] = ...) -> None: ...

class ReportStatusRequest(_message.Message):
    __slots__ = ("task", "status")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    task: str
    status: _types_pb2.EvolutionStatus
    def __init__(self, task: _Optional[str] = ..., status: _Optional[_Union[_types_pb2.EvolutionStatus, _Mapping]] = ...) -> None: ...

class ReportStatusResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
