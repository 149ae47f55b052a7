"""Every bad input gets a gRPC status whose message says what was wrong, and nothing is lost."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import numpy as np
import pytest

from munet_serve.clients import Client
from munet_serve.clients.errors import MunetError, from_rpc_error
from munet_serve.clients.types import ComponentArtifact, PathComponent, PathRef
from munet_serve.evolver.components import fresh_head
from munet_serve.evolver.export import fresh_lineage, serialize_weights
from munet_serve.imaging import encode_png
from munet_serve.proto.v1 import evolution_pb2, evolution_pb2_grpc, inference_pb2, inference_pb2_grpc, types_pb2

from serving_fixtures import TASK, Served

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


def expect(code: grpc.StatusCode, pattern: str, call, *args, **kwargs) -> None:  # noqa: ANN001
    with pytest.raises(MunetError) as info:
        call(*args, **kwargs)
    assert info.value.code == code, info.value
    assert re.search(pattern, info.value.details), info.value.details


def raw_predict(target: str, request: inference_pb2.PredictRequest) -> None:
    """Sends a hand-built request (the SDK would refuse some of these before sending)."""
    with grpc.insecure_channel(target) as channel:
        try:
            inference_pb2_grpc.InferenceStub(channel).Predict(request, timeout=30)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e


def raw_get_root(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        try:
            evolution_pb2_grpc.EvolutionStub(channel).GetRoot(evolution_pb2.GetRootRequest(), timeout=30)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e


def test_predict_errors(start_server, served_dir: Path, served_template: Served) -> None:
    server = start_server(served_dir, max_images_per_request=4)
    image = served_template.test_images[0]
    with Client(server.target, timeout=30) as client:
        expect(NOT_FOUND, r"task 'nope' not found", client.predict, "nope", [image])
        expect(INVALID, r"cannot decode image .*not a format", client.predict, TASK, [b"not an image"])
        expect(INVALID, r"image 1: empty image bytes", client.predict, TASK, [encode_png(image[:, :, 0]), b""])
        expect(INVALID, r"no images", raw_predict, server.target, inference_pb2.PredictRequest(task=TASK))
        wrong_size = np.zeros((2, 3, 16, 16), np.float32)
        expect(INVALID, r"shape \[2, 3, 16, 16\].*expects \[2, 3, 32, 32\]", client.predict_batch, TASK, wrong_size)
        expect(INVALID, r"float32 batch must have shape \[N, 3, S, S\]", client.predict_batch, TASK,
               np.zeros((3, 32, 32), np.float32))
        bad_dtype = types_pb2.Tensor(dtype=types_pb2.DTYPE_UNSPECIFIED, shape=[1, 8, 8], data=b"\0" * 64)
        expect(INVALID, r"dtype must be FLOAT32 or UINT8", raw_predict, server.target,
               inference_pb2.PredictRequest(task=TASK, batch=bad_dtype))
        short = types_pb2.Tensor(dtype=types_pb2.DTYPE_FLOAT32, shape=[1, 3, 32, 32], data=b"\0" * 100)
        expect(INVALID, r"data has 100 bytes, but shape \[1, 3, 32, 32\] of float32 needs 12288", raw_predict,
               server.target, inference_pb2.PredictRequest(task=TASK, batch=short))
        expect(INVALID, r"pixels must have shape", client.predict, TASK, [np.zeros((8, 8, 5), np.uint8)])
        expect(INVALID, r"either images or a batch", raw_predict, server.target, inference_pb2.PredictRequest(
            task=TASK, images=[types_pb2.Image(encoded=b"x")], batch=types_pb2.Tensor()))
        expect(grpc.StatusCode.RESOURCE_EXHAUSTED, r"5 images in one request; the limit is 4",
               client.predict, TASK, [image] * 5)
        # Nothing was lost: the task still answers.
        assert client.predict(TASK, [image]).version == 1


def test_message_over_the_size_limit_is_resource_exhausted(start_server, served_dir: Path) -> None:
    server = start_server(served_dir, max_message_bytes=1 << 20)
    with Client(server.target, timeout=30) as client:
        big = np.zeros((4, 3, 256, 256), np.float32)  # 3 MiB
        expect(grpc.StatusCode.RESOURCE_EXHAUSTED, r"larger than max", client.predict_batch, TASK, big)
        assert client.get_task(TASK).current_version == 1


def test_task_errors(start_server, tmp_path: Path) -> None:
    server = start_server(max_dataset_bytes=64 * 1024)
    images = [np.full((8, 8), i, np.uint8) for i in range(12)]
    labels = [i % 2 for i in range(12)]
    with Client(server.target, timeout=30) as client:
        client.register_task("t", ["a", "b"], images, labels)
        expect(grpc.StatusCode.ALREADY_EXISTS, r"task 't' already exists", client.register_task, "t", ["a", "b"],
               images, labels)
        expect(INVALID, r"labels missing", client.register_task, "u", [], images, labels)
        expect(INVALID, r"invalid task name 'bad name'", client.register_task, "bad name", ["a", "b"], images, labels)
        expect(INVALID, r"example 3: label 7 is out of range for 2 labels", client.register_task, "u", ["a", "b"],
               images[:4], [0, 1, 0, 7])
        expect(INVALID, r"example 1: cannot decode image", client.register_task, "u", ["a", "b"],
               [encode_png(images[0]), b"junk"], [0, 1])
        expect(INVALID, r"the dataset has no examples", client.register_task, "u", ["a", "b"], [], [])
        expect(INVALID, r"the test split is empty", client.register_task, "u", ["a", "b"], images[:2], [0, 1],
               splits=[1, 2])
        expect(INVALID, r"1 of the 3 labels have no training examples \(label indices 2\)", client.register_task,
               "u", ["a", "b", "c"], images, labels)
        expect(INVALID, r"task 'u' has 10001 labels; the limit is 10000", client.register_task, "u",
               [f"l{i}" for i in range(10_001)], images, labels)
        expect(grpc.StatusCode.RESOURCE_EXHAUSTED, r"over the limit of 65,536 bytes of decoded pixels",
               client.register_task, "big", ["a", "b"], [np.zeros((64, 64), np.uint8)] * 8, [0, 1] * 4)
        expect(grpc.StatusCode.FAILED_PRECONDITION, r"task 't' is not servable yet: its state is pending",
               client.predict, "t", [images[0]])
        expect(NOT_FOUND, r"task 'nope' not found", client.get_task, "nope")
        expect(NOT_FOUND, r"task 'nope' not found", client.delete_task, "nope")
        expect(NOT_FOUND, r"task 'nope' not found", client.list_versions, "nope")
        expect(NOT_FOUND, r"task 't' has no version 3", client.rollback, "t", 3)
        expect(NOT_FOUND, r"no root has been set", raw_get_root, server.target)
        assert client.get_root() is None
        # Nothing was lost: only the valid registration exists, intact.
        (task,) = client.list_tasks()
        assert task.name == "t" and task.dataset.train_examples + task.dataset.validation_examples + \
            task.dataset.test_examples == 12


def test_publish_errors(start_server, served_dir: Path, tiny_root) -> None:
    server = start_server(served_dir)
    with Client(server.target, timeout=30) as client:
        (v1,) = client.list_versions(TASK)
        body, head = v1.components[:-1], v1.components[-1]
        kwargs = dict(hparams={}, metrics=v1.metrics, input=v1.input, parent=None)
        expect(NOT_FOUND, r"component f{64} is neither stored nor uploaded", client.publish_path, TASK,
               [*body, PathComponent("head", "f" * 64)], **kwargs)
        expect(NOT_FOUND, r"task 'nope' not found", client.publish_path, "nope", v1.components, **kwargs)
        expect(INVALID, r"must start with an embedding and end with a head", client.publish_path, TASK, body, **kwargs)
        expect(INVALID, r"component names must be unique", client.publish_path, TASK,
               [*body, PathComponent(body[0].name, head.id)], **kwargs)
        real = tiny_root.artifacts[-1]  # the root's encoder_norm
        forged = ComponentArtifact(info=real.info, weights=real.weights + b" ", onnx=real.onnx)
        expect(INVALID, r"the weights hash to [0-9a-f]{64}, not to the component's id", client.upload_components,
               [forged])
        weights = serialize_weights(fresh_head(real.info.config["dim"], 10), fresh_lineage(TASK, "head"))
        broken = ComponentArtifact.create(weights, b"not onnx", 0.0)
        expect(INVALID, r"ONNX graph not loadable", client.upload_components, [broken])
        expect(INVALID, r"component [0-9a-f]{64} could not be loaded by ONNX Runtime", client.publish_path, TASK,
               [*body, PathComponent("head", broken.id)], new_components=[broken], **kwargs)
        expect(NOT_FOUND, r"the parent of the published path does not exist: task 'gone' not found",
               client.publish_path, TASK, v1.components, hparams={}, metrics=v1.metrics, input=v1.input,
               parent=PathRef("gone", 1))
        assert client.get_task(TASK).current_version == 1
        assert client.predict(TASK, [np.zeros((8, 8), np.uint8)]).version == 1


def test_a_stream_the_client_cannot_build_raises_its_own_error(start_server, served_dir: Path) -> None:
    """An argument that fails while the request stream is built (gRPC alone would say UNKNOWN "Exception iterating
    requests!") raises the client's own exception, from both clients; the call changes nothing."""
    import asyncio

    from munet_serve.clients import AsyncClient
    from munet_serve.clients.streams import TaskUpload

    server = start_server(served_dir)
    images = [np.zeros((8, 8), np.uint8), "/nonexistent/image.png"]  # a path to read the image from
    with Client(server.target, timeout=30) as client:
        (v1,) = client.list_versions(TASK)
        with pytest.raises(TypeError, match="metrics must be a Metrics, not dict"):
            client.publish_path(TASK, v1.components, hparams={}, metrics={}, input=v1.input, parent=None)
        with pytest.raises(FileNotFoundError, match="/nonexistent/image.png"):
            client.register_task("u", ["a", "b"], images, [0, 1])

        async def both() -> None:
            async with AsyncClient(server.target, timeout=30) as aclient:
                with pytest.raises(TypeError, match="metrics must be a Metrics, not dict"):
                    await aclient.publish_path(TASK, v1.components, hparams={}, metrics={}, input=v1.input,
                                               parent=None)
                with pytest.raises(FileNotFoundError, match="/nonexistent/image.png"):
                    await aclient.register(TaskUpload("u", ["a", "b"], images, [0, 1]))

        asyncio.run(both())
        assert client.get_task(TASK).current_version == 1 and [t.name for t in client.list_tasks()] == [TASK]
