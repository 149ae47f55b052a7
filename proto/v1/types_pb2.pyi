import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DTYPE_UNSPECIFIED: _ClassVar[DType]
    DTYPE_FLOAT32: _ClassVar[DType]
    DTYPE_UINT8: _ClassVar[DType]

class Split(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_UNSPECIFIED: _ClassVar[Split]
    SPLIT_TRAIN: _ClassVar[Split]
    SPLIT_VALIDATION: _ClassVar[Split]
    SPLIT_TEST: _ClassVar[Split]

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_PENDING: _ClassVar[TaskState]
    TASK_STATE_SERVING: _ClassVar[TaskState]

class ComponentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPONENT_KIND_UNSPECIFIED: _ClassVar[ComponentKind]
    COMPONENT_KIND_EMBEDDING: _ClassVar[ComponentKind]
    COMPONENT_KIND_CLS: _ClassVar[ComponentKind]
    COMPONENT_KIND_POSEMBED: _ClassVar[ComponentKind]
    COMPONENT_KIND_ENCODER_BLOCK: _ClassVar[ComponentKind]
    COMPONENT_KIND_RESIDUAL_ADAPTER: _ClassVar[ComponentKind]
    COMPONENT_KIND_ENCODER_NORM: _ClassVar[ComponentKind]
    COMPONENT_KIND_HEAD: _ClassVar[ComponentKind]
DTYPE_UNSPECIFIED: DType
DTYPE_FLOAT32: DType
DTYPE_UINT8: DType
SPLIT_UNSPECIFIED: Split
SPLIT_TRAIN: Split
SPLIT_VALIDATION: Split
SPLIT_TEST: Split
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_PENDING: TaskState
TASK_STATE_SERVING: TaskState
COMPONENT_KIND_UNSPECIFIED: ComponentKind
COMPONENT_KIND_EMBEDDING: ComponentKind
COMPONENT_KIND_CLS: ComponentKind
COMPONENT_KIND_POSEMBED: ComponentKind
COMPONENT_KIND_ENCODER_BLOCK: ComponentKind
COMPONENT_KIND_RESIDUAL_ADAPTER: ComponentKind
COMPONENT_KIND_ENCODER_NORM: ComponentKind
COMPONENT_KIND_HEAD: ComponentKind

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("encoded", "pixels")
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    encoded: bytes
    pixels: Tensor
    def __init__(self, encoded: _Optional[bytes] = ..., pixels: _Optional[_Union[Tensor, _Mapping]] = ...) -> None: ...

class InputSpec(_message.Message):
    __slots__ = ("image_size", "mean", "std")
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    image_size: int
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, image_size: _Optional[int] = ..., mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("validation_accuracy", "test_accuracy", "score", "accounted_params", "new_params", "train_steps", "train_seconds")
    VALIDATION_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTED_PARAMS_FIELD_NUMBER: _ClassVar[int]
    NEW_PARAMS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_STEPS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    validation_accuracy: float
    test_accuracy: float
    score: float
    accounted_params: int
    new_params: int
    train_steps: int
    train_seconds: float
    def __init__(self, validation_accuracy: _Optional[float] = ..., test_accuracy: _Optional[float] = ..., score: _Optional[float] = ..., accounted_params: _Optional[int] = ..., new_params: _Optional[int] = ..., train_steps: _Optional[int] = ..., train_seconds: _Optional[float] = ...) -> None: ...

class EvolutionStatus(_message.Message):
    __slots__ = ("phase", "iteration", "generation", "candidates", "best_score", "message", "worker", "updated_at", "state")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ITERATION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    BEST_SCORE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    phase: str
    iteration: int
    generation: int
    candidates: int
    best_score: float
    message: str
    worker: str
    updated_at: _timestamp_pb2.Timestamp
    state: _struct_pb2.Struct
    def __init__(self, phase: _Optional[str] = ..., iteration: _Optional[int] = ..., generation: _Optional[int] = ..., candidates: _Optional[int] = ..., best_score: _Optional[float] = ..., message: _Optional[str] = ..., worker: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class DatasetInfo(_message.Message):
    __slots__ = ("id", "train_examples", "validation_examples", "test_examples", "image_shape", "size_bytes")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRAIN_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    TEST_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SHAPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    train_examples: int
    validation_examples: int
    test_examples: int
    image_shape: _containers.RepeatedScalarFieldContainer[int]
    size_bytes: int
    def __init__(self, id: _Optional[str] = ..., train_examples: _Optional[int] = ..., validation_examples: _Optional[int] = ..., test_examples: _Optional[int] = ..., image_shape: _Optional[_Iterable[int]] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("name", "labels", "description", "state", "current_version", "num_versions", "metrics", "input", "evolution", "dataset", "created_at", "accounted_params")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EVOLUTION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTED_PARAMS_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    description: str
    state: TaskState
    current_version: int
    num_versions: int
    metrics: Metrics
    input: InputSpec
    evolution: EvolutionStatus
    dataset: DatasetInfo
    created_at: _timestamp_pb2.Timestamp
    accounted_params: int
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., current_version: _Optional[int] = ..., num_versions: _Optional[int] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., input: _Optional[_Union[InputSpec, _Mapping]] = ..., evolution: _Optional[_Union[EvolutionStatus, _Mapping]] = ..., dataset: _Optional[_Union[DatasetInfo, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., accounted_params: _Optional[int] = ...) -> None: ...

class ComponentInfo(_message.Message):
    __slots__ = ("id", "kind", "config", "num_params", "parity_max_abs_error", "lineage", "onnx_bytes", "weights_bytes", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    NUM_PARAMS_FIELD_NUMBER: _ClassVar[int]
    PARITY_MAX_ABS_ERROR_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_FIELD_NUMBER: _ClassVar[int]
    ONNX_BYTES_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: ComponentKind
    config: _struct_pb2.Struct
    num_params: int
    parity_max_abs_error: float
    lineage: _struct_pb2.Struct
    onnx_bytes: int
    weights_bytes: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[ComponentKind, str]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., num_params: _Optional[int] = ..., parity_max_abs_error: _Optional[float] = ..., lineage: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., onnx_bytes: _Optional[int] = ..., weights_bytes: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PathComponent(_message.Message):
    __slots__ = ("name", "id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: str
    def __init__(self, name: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class PathRef(_message.Message):
    __slots__ = ("task", "version")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: int
    def __init__(self, task: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PathVersion(_message.Message):
    __slots__ = ("task", "version", "components", "hparams", "metrics", "input", "parent", "created_at", "current")
    TASK_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    HPARAMS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    task: str
    version: int
    components: _containers.RepeatedCompositeFieldContainer[PathComponent]
    hparams: _struct_pb2.Struct
    metrics: Metrics
    input: InputSpec
    parent: PathRef
    created_at: _timestamp_pb2.Timestamp
    current: bool
    def __init__(self, task: _Optional[str] = ..., version: _Optional[int] = ..., components: _Optional[_Iterable[_Union[PathComponent, _Mapping]]] = ..., hparams: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., metrics: _Optional[_Union[Metrics, _Mapping]] = ..., input: _Optional[_Union[InputSpec, _Mapping]] = ..., parent: _Optional[_Union[PathRef, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current: _Optional[bool] = ...) -> None: ...

class RootInfo(_message.Message):
    __slots__ = ("source", "components", "config", "params", "input")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMPONENTS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    source: str
    components: _containers.RepeatedCompositeFieldContainer[PathComponent]
    config: _struct_pb2.Struct
    params: int
    input: InputSpec
    def __init__(self, source: _Optional[str] = ..., components: _Optional[_Iterable[_Union[PathComponent, _Mapping]]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., params: _Optional[int] = ..., input: _Optional[_Union[InputSpec, _Mapping]] = ...) -> None: ...
