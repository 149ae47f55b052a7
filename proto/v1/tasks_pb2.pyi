import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from munet_serve.proto.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_EVENT_TYPE_UNSPECIFIED: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_SNAPSHOT: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_REGISTERED: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_PUBLISHED: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_ROLLED_BACK: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_DELETED: _ClassVar[TaskEventType]
    TASK_EVENT_TYPE_STATUS: _ClassVar[TaskEventType]
TASK_EVENT_TYPE_UNSPECIFIED: TaskEventType
TASK_EVENT_TYPE_SNAPSHOT: TaskEventType
TASK_EVENT_TYPE_REGISTERED: TaskEventType
TASK_EVENT_TYPE_PUBLISHED: TaskEventType
TASK_EVENT_TYPE_ROLLED_BACK: TaskEventType
TASK_EVENT_TYPE_DELETED: TaskEventType
TASK_EVENT_TYPE_STATUS: TaskEventType

class TaskSpec(_message.Message):
    __slots__ = ("name", "labels", "description", "validation_fraction", "test_fraction", "image_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_FRACTION_FIELD_NUMBER: _ClassVar[int]
    TEST_FRACTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    description: str
    validation_fraction: float
    test_fraction: float
    image_size: int
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., validation_fraction: _Optional[float] = ..., test_fraction: _Optional[float] = ..., image_size: _Optional[int] = ...) -> None: ...

class Example(_message.Message):
    __slots__ = ("image", "label", "split")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    image: _types_pb2.Image
    label: int
    split: _types_pb2.Split
    def __init__(self, image: _Optional[_Union[_types_pb2.Image, _Mapping]] = ..., label: _Optional[int] = ..., split: _Optional[_Union[_types_pb2.Split, str]] = ...) -> None: ...

class DatasetChunk(_message.Message):
    __slots__ = ("examples",)
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    examples: _containers.RepeatedCompositeFieldContainer[Example]
    def __init__(self, examples: _Optional[_Iterable[_Union[Example, _Mapping]]] = ...) -> None: ...

class RegisterTaskRequest(_message.Message):
    __slots__ = ("spec", "chunk")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    spec: TaskSpec
    chunk: DatasetChunk
    def __init__(self, spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., chunk: _Optional[_Union[DatasetChunk, _Mapping]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "system")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_types_pb2.TaskInfo]
    system: SystemStats
    def __init__(self, tasks: _Optional[_Iterable[_Union[_types_pb2.TaskInfo, _Mapping]]] = ..., system: _Optional[_Union[SystemStats, _Mapping]] = ...) -> None: ...

class SystemStats(_message.Message):
    __slots__ = ("distinct_params", "params_per_task", "serving_tasks", "root_params")
    DISTINCT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_PER_TASK_FIELD_NUMBER: _ClassVar[int]
    SERVING_TASKS_FIELD_NUMBER: _ClassVar[int]
    ROOT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    distinct_params: int
    params_per_task: float
    serving_tasks: int
    root_params: int
    def __init__(self, distinct_params: _Optional[int] = ..., params_per_task: _Optional[float] = ..., serving_tasks: _Optional[int] = ..., root_params: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WatchTasksRequest(_message.Message):
    __slots__ = ("task", "send_initial")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SEND_INITIAL_FIELD_NUMBER: _ClassVar[int]
    task: str
    send_initial: bool
    def __init__(self, task: _Optional[str] = ..., send_initial: _Optional[bool] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("type", "task", "version", "time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    type: TaskEventType
    task: _types_pb2.TaskInfo
    version: int
    time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[TaskEventType, str]] = ..., task: _Optional[_Union[_types_pb2.TaskInfo, _Mapping]] = ..., version: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: str
    def __init__(self, task: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[_types_pb2.PathVersion]
    def __init__(self, versions: _Optional[_Iterable[_Union[_types_pb2.PathVersion, _Mapping]]] = ...) -> None: ...

class RollbackRequest(_message.Message):
    __slots__ = ("task", "version")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: int
    def __init__(self, task: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
