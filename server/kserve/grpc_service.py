"""The KServe v2 gRPC service (`inference.GRPCInferenceService`) on the native gRPC port: each method decodes its
message into the records of models.py, calls one KServeModels method and encodes the answer. Its messages come from
munet_serve.proto.kserve's own descriptor pool, so the handlers are registered generically here (no generated
stubs); errors leave through the server's one ErrorMappingInterceptor like every other call's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from google.protobuf import json_format, message_factory

from munet_serve.errors import InvalidArgumentError, MunetError, UnimplementedError
from munet_serve.proto import kserve

from . import tensors
from .models import InferRequest, InferResponse, InputTensor, KServeModels, RequestedOutput

logger = logging.getLogger(__name__)

NOT_SERVED = {
    "SystemSharedMemoryStatus": "system shared memory",
    "SystemSharedMemoryRegister": "system shared memory",
    "SystemSharedMemoryUnregister": "system shared memory",
    "CudaSharedMemoryStatus": "CUDA shared memory",
    "CudaSharedMemoryRegister": "CUDA shared memory",
    "CudaSharedMemoryUnregister": "CUDA shared memory",
    "TraceSetting": "trace settings",
    "LogSettings": "log settings",
}

# Which typed list of InferTensorContents carries each datatype (FP16 and BF16 travel raw only).
CONTENTS = {
    "BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}


def add_kserve_service(models: KServeModels, server: grpc.Server) -> str:
    """Adds GRPCInferenceService over `models` to the server; returns its full name."""
    service = kserve.service()
    servicer = KServeServicer(models)
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        behaviour = getattr(servicer, method.name, None) or _not_served(method.name)
        make = grpc.stream_stream_rpc_method_handler if method.client_streaming else grpc.unary_unary_rpc_method_handler
        handlers[method.name] = make(behaviour, request_deserializer=request.FromString,
                                     response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    return service.full_name


def _not_served(name: str) -> Callable[[Any, grpc.ServicerContext], Any]:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        raise UnimplementedError(f"{name}: munet-serve does not serve {NOT_SERVED.get(name, name)}; tensors travel "
                                 f"in the inference requests themselves")

    return refuse


def _message(name: str, fields: Mapping[str, Any] | None = None) -> Any:
    result = kserve.message(name)()
    if fields:
        json_format.ParseDict(fields, result)
    return result


class KServeServicer:
    def __init__(self, models: KServeModels) -> None:
        self.models = models

    def ServerLive(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ServerLiveResponse", {"live": True})

    def ServerReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ServerReadyResponse", {"ready": self.models.server_ready()})

    def ModelReady(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ModelReadyResponse", {"ready": self.models.model_ready(request.name, request.version)})

    def ServerMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ServerMetadataResponse", self.models.server_metadata())

    def ModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ModelMetadataResponse", self.models.model_metadata(request.name, request.version))

    def ModelConfig(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        config = self.models.model_config(request.name, request.version)
        return _message("ModelConfigResponse", {"config": config})

    def ModelStatistics(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("ModelStatisticsResponse", self.models.statistics(request.name, request.version))

    def RepositoryIndex(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _message("RepositoryIndexResponse", {"models": self.models.index(request.ready)})

    def RepositoryModelLoad(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        _no_repository_parameters(request.parameters, "load")
        self.models.load(request.model_name)
        return _message("RepositoryModelLoadResponse")

    def RepositoryModelUnload(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self.models.unload(request.model_name)  # unload_dependents: a task has none
        return _message("RepositoryModelUnloadResponse")

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return infer_response_pb(self.models.infer(infer_request(request)))

    def ModelStreamInfer(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        """Answers each request in order on the stream; a failed one answers with its error, and the stream goes on."""
        streamed = kserve.message("ModelStreamInferResponse")
        for request in requests:
            try:
                yield streamed(infer_response=infer_response_pb(self.models.infer(infer_request(request))))
            except MunetError as e:
                failed = kserve.message("ModelInferResponse")(
                    model_name=request.model_name, model_version=request.model_version, id=request.id)
                yield streamed(error_message=e.details, infer_response=failed)
            except Exception as e:  # noqa: BLE001 - one request's failure, reported on the stream as Triton does
                logger.exception("stream inference failed")
                yield streamed(error_message=f"internal error ({type(e).__name__}); details are in the server log")


def _no_repository_parameters(parameters: Mapping[str, Any], what: str) -> None:
    if parameters:
        raise InvalidArgumentError(f"repository {what} takes no parameters here (got {sorted(parameters)}): a task's "
                                   f"configuration and files come from its published versions")


def _parameter(parameters: Mapping[str, Any], key: str) -> Any:
    if key not in parameters:
        return None
    value = parameters[key]
    which = value.WhichOneof("parameter_choice")
    return None if which is None else getattr(value, which)


def infer_request(pb: Any) -> InferRequest:
    """A ModelInferRequest as the records of models.py; its tensors from raw_input_contents or from contents."""
    raw = list(pb.raw_input_contents)
    if raw and len(raw) != len(pb.inputs):
        raise InvalidArgumentError(f"raw_input_contents has {len(raw)} entries for {len(pb.inputs)} inputs (give one "
                                   f"per input, in order)")
    inputs = []
    for i, tensor in enumerate(pb.inputs):
        if raw:
            if tensor.HasField("contents"):
                raise InvalidArgumentError(f"input {tensor.name!r} has contents as well as raw_input_contents; give "
                                           f"one of them")
            data = tensors.from_raw(tensor.name, tensor.datatype, list(tensor.shape), raw[i])
        else:
            field = CONTENTS.get(tensor.datatype)
            if field is None:
                tensors.from_values(tensor.name, tensor.datatype, list(tensor.shape), [])  # says what is wrong
                raise InvalidArgumentError(f"input {tensor.name!r}: {tensor.datatype} travels only in "
                                           f"raw_input_contents")
            data = tensors.from_values(tensor.name, tensor.datatype, list(tensor.shape),
                                       list(getattr(tensor.contents, field)))
        inputs.append(InputTensor(tensor.name, tensor.datatype, tuple(tensor.shape), data))
    outputs = []
    for output in pb.outputs:
        count = _parameter(output.parameters, "classification")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise InvalidArgumentError(f"output {output.name!r}: the classification parameter must be an integer "
                                       f"class count, got {count!r}")
        outputs.append(RequestedOutput(output.name, int(count or 0)))
    return InferRequest(pb.model_name, pb.model_version, pb.id, inputs, outputs)


def infer_response_pb(response: InferResponse) -> Any:
    pb = _message("ModelInferResponse")
    pb.model_name, pb.model_version, pb.id = response.model, response.version, response.id
    for output in response.outputs:
        pb.outputs.add(name=output.name, datatype=output.datatype, shape=list(output.shape))
        pb.raw_output_contents.append(tensors.to_raw(output.data))
    return pb
