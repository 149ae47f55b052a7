from munet_serve.proto.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("task", "images", "batch", "top_k", "include_logits", "version")
    TASK_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_LOGITS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    task: str
    images: _containers.RepeatedCompositeFieldContainer[_types_pb2.Image]
    batch: _types_pb2.Tensor
    top_k: int
    include_logits: bool
    version: int
    def __init__(self, task: _Optional[str] = ..., images: _Optional[_Iterable[_Union[_types_pb2.Image, _Mapping]]] = ..., batch: _Optional[_Union[_types_pb2.Tensor, _Mapping]] = ..., top_k: _Optional[int] = ..., include_logits: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class LabelScore(_message.Message):
    __slots__ = ("label", "index", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    score: float
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class Classification(_message.Message):
    __slots__ = ("top", "logits")
    TOP_FIELD_NUMBER: _ClassVar[int]
    LOGITS_FIELD_NUMBER: _ClassVar[int]
    top: _containers.RepeatedCompositeFieldContainer[LabelScore]
    logits: _types_pb2.Tensor
    def __init__(self, top: _Optional[_Iterable[_Union[LabelScore, _Mapping]]] = ..., logits: _Optional[_Union[_types_pb2.Tensor, _Mapping]] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("task", "version", "results")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: int
    results: _containers.RepeatedCompositeFieldContainer[Classification]
    def __init__(self, task: _Optional[str] = ..., version: _Optional[int] = ..., results: _Optional[_Iterable[_Union[Classification, _Mapping]]] = ...) -> None: ...

class GetServingInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LoadedComponent(_message.Message):
    __slots__ = ("id", "kind", "tasks", "component_ids")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_IDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: _types_pb2.ComponentKind
    tasks: _containers.RepeatedScalarFieldContainer[str]
    component_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[_types_pb2.ComponentKind, str]] = ..., tasks: _Optional[_Iterable[str]] = ..., component_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class LiveRoute(_message.Message):
    __slots__ = ("task", "version", "component_ids")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPONENT_IDS_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: int
    component_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[str] = ..., version: _Optional[int] = ..., component_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ServingInfo(_message.Message):
    __slots__ = ("providers", "sessions", "routes", "server_version")
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    providers: _containers.RepeatedScalarFieldContainer[str]
    sessions: _containers.RepeatedCompositeFieldContainer[LoadedComponent]
    routes: _containers.RepeatedCompositeFieldContainer[LiveRoute]
    server_version: str
    def __init__(self, providers: _Optional[_Iterable[str]] = ..., sessions: _Optional[_Iterable[_Union[LoadedComponent, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[LiveRoute, _Mapping]]] = ..., server_version: _Optional[str] = ...) -> None: ...
