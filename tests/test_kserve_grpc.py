"""KServe v2 over gRPC, driven by Triton's own client (tritonclient.grpc) against a real server on the native port:
every RPC the issue names, with its error cases; answers that agree with native Predict (same top-1, logits within
1e-5) for every tensor form; versions served on demand; the repository's unload and load, across a restart."""

from __future__ import annotations

import base64
import queue
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tg
from tritonclient.grpc import model_config_pb2 as triton_config_pb2
from tritonclient.grpc import service_pb2 as triton_pb2
from tritonclient.grpc import service_pb2_grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from munet_serve.clients import Client
from munet_serve.clients.errors import UnavailableError
from munet_serve.imaging import to_model_input
from munet_serve.proto import kserve as kserve_proto

from kserve_fixtures import assert_agrees, image_client_view, native_logits, parse_classes, png
from serving_fixtures import TASK, Served, publish_heads, register_dataset


def _status(error: InferenceServerException) -> str:
    return str(error.status()).removeprefix("StatusCode.")


def _fails(call, code: str, *fragments: str) -> str:  # noqa: ANN001
    with pytest.raises(InferenceServerException) as info:
        call()
    assert _status(info.value) == code, info.value
    message = info.value.message()
    for fragment in fragments:
        assert fragment in message, message
    return message


def _image_input(x: np.ndarray, datatype: str = "UINT8", name: str = "IMAGE") -> tg.InferInput:
    tensor = tg.InferInput(name, list(x.shape), datatype)
    tensor.set_data_from_numpy(x)
    return tensor


def _logits(result: tg.InferResult) -> np.ndarray:
    return result.as_numpy("LOGITS")


def _ready_models(target: str) -> list[str]:
    """RepositoryIndex with ready=true (tritonclient's call does not send it)."""
    with grpc.insecure_channel(target) as channel:
        index = triton_grpc.GRPCInferenceServiceStub(channel).RepositoryIndex(
            triton_pb2.RepositoryIndexRequest(ready=True), timeout=60)
    return [m.name for m in index.models]


@pytest.fixture
def kserve(start_server, served_dir: Path):  # noqa: ANN201
    server = start_server(served_dir)
    with tg.InferenceServerClient(server.target) as triton, Client(server.target, timeout=60) as native:
        yield server, triton, native


def test_the_protocols_files_match_tritonclients_field_for_field() -> None:
    """Our .proto files are written from the specification; on the wire they must be Triton's: same message and
    field names, numbers, types and cardinality, same service methods (model_config.proto declares a subset)."""
    ours = kserve_proto.pool()

    def fields(descriptor) -> dict[str, tuple]:  # noqa: ANN001
        return {f.name: (f.number, f.type, f.is_repeated, f.message_type.full_name if f.message_type else None,
                         f.enum_type.full_name if f.enum_type else None) for f in descriptor.fields}

    def compare(mine, theirs, subset: bool) -> None:  # noqa: ANN001
        a, b = fields(mine), fields(theirs)
        if subset:
            assert set(a) <= set(b), (mine.full_name, set(a) - set(b))
            b = {k: b[k] for k in a}
        assert a == b, mine.full_name
        for nested in mine.nested_types:
            compare(nested, theirs.nested_types_by_name[nested.name], subset)
        for enum in mine.enum_types:
            assert {v.name: v.number for v in enum.values} == {
                v.name: v.number for v in theirs.enum_types_by_name[enum.name].values}

    for triton_file, subset in ((triton_pb2.DESCRIPTOR, False), (triton_config_pb2.DESCRIPTOR, True)):
        name = "grpc_service.proto" if not subset else "model_config.proto"
        mine = ours.FindFileByName(f"munet_serve/proto/kserve/{name}")
        assert mine.package == triton_file.package == "inference"
        if not subset:
            assert set(mine.message_types_by_name) == set(triton_file.message_types_by_name)
        for message_name, descriptor in mine.message_types_by_name.items():
            compare(descriptor, triton_file.message_types_by_name[message_name], subset)
        for enum_name, enum in mine.enum_types_by_name.items():
            assert {v.name: v.number for v in enum.values} == {
                v.name: v.number for v in triton_file.enum_types_by_name[enum_name].values}
    service, theirs = kserve_proto.service(), triton_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert {m.name: (m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming)
            for m in service.methods} == {
        m.name: (m.input_type.full_name, m.output_type.full_name, m.client_streaming, m.server_streaming)
        for m in theirs.methods}


@pytest.mark.parametrize("first", ["tritonclient", "munet_serve"])
def test_one_process_imports_tritonclient_and_the_server_in_either_order(first: str) -> None:
    imports = ["import tritonclient.grpc.service_pb2 as t", "from munet_serve.server import app"]
    if first == "munet_serve":
        imports.reverse()
    code = "; ".join([*imports, "from munet_serve.proto import kserve",
                      "m = kserve.message('ModelInferRequest')(model_name='x', id='7')",
                      "assert t.ModelInferRequest.FromString(m.SerializeToString()).id == '7'", "print('ok')"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_health_metadata_and_the_rpcs_not_served(kserve) -> None:  # noqa: ANN001
    server, triton, _ = kserve
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata(as_json=True)
    assert metadata["name"] == "munet-serve"
    extensions = set(metadata["extensions"])
    assert {"classification", "model_repository", "model_configuration", "statistics"} <= extensions
    assert not extensions & {"system_shared_memory", "cuda_shared_memory", "trace", "logging"}
    for call in (
        triton.get_system_shared_memory_status,
        lambda: triton.register_system_shared_memory("region", "/key", 64),
        triton.unregister_system_shared_memory,
        triton.get_cuda_shared_memory_status,
        lambda: triton.register_cuda_shared_memory("region", base64.b64encode(b"handle"), 0, 64),
        triton.unregister_cuda_shared_memory,
        triton.get_trace_settings,
        lambda: triton.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]}),
        triton.get_log_settings,
        lambda: triton.update_log_settings(settings={"log_verbose_level": 1}),
    ):
        _fails(call, "UNIMPLEMENTED", "munet-serve does not serve")
    assert triton.is_server_live()


def test_model_metadata_and_config_satisfy_tritons_image_client(kserve, served_template: Served) -> None:  # noqa: ANN001
    _, triton, native = kserve
    metadata = triton.get_model_metadata(TASK, as_json=True)
    assert metadata["name"] == TASK and metadata["versions"] == ["1"]
    config = triton.get_model_config(TASK, as_json=True)["config"]
    assert config["name"] == TASK
    max_batch, input_name, output_name, c, h, w, fmt, datatype = image_client_view(config, metadata)
    spec = native.list_versions(TASK)[0].input
    assert (input_name, output_name, c, h, w, fmt, datatype) == ("IMAGE", "LOGITS", 3, spec.image_size,
                                                                 spec.image_size, "FORMAT_NHWC", "UINT8")
    assert max_batch == 256
    labels = config["parameters"]["labels"]["string_value"]
    assert labels == '["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]'
    # What the image client then sends: the image resized to the config's size, as its datatype, with class_count.
    images = served_template.test_images[:3]
    resized = np.stack([np.repeat(np.asarray(
        __import__("PIL.Image", fromlist=["Image"]).fromarray(im[:, :, 0]).resize((w, h)))[:, :, None], 3, axis=2)
        for im in images]).astype(np.uint8)
    result = triton.infer(TASK, [_image_input(resized)], outputs=[tg.InferRequestedOutput("LOGITS", class_count=1)])
    best = [row[0] for row in parse_classes(result.as_numpy("LOGITS"))]
    reference = native_logits(native, TASK, resized)
    assert [i for _, i, _ in best] == reference.argmax(axis=1).tolist()
    assert [label for _, _, label in best] == [str(i) for i in reference.argmax(axis=1)]
    _fails(lambda: triton.get_model_metadata("no-such-task"), "NOT_FOUND", "'no-such-task'")
    _fails(lambda: triton.get_model_config(TASK, "7"), "NOT_FOUND", "no version 7")
    _fails(lambda: triton.get_model_config(TASK, "latest"), "INVALID_ARGUMENT", "'latest'", "decimal")


def test_every_tensor_form_agrees_with_native_predict(kserve, served_template: Served) -> None:  # noqa: ANN001
    server, triton, native = kserve
    images = served_template.test_images[:4]  # uint8 [4, 8, 8, 1]
    reference = native_logits(native, TASK, images)

    nhwc = triton.infer(TASK, [_image_input(images)], request_id="req-1")
    assert nhwc.get_response().id == "req-1"
    assert nhwc.get_response().model_version == "1"
    assert_agrees(_logits(nhwc), reference)
    assert_agrees(_logits(triton.infer(TASK, [_image_input(images[:, :, :, 0])])), reference)  # [N, H, W]

    spec = native.list_versions(TASK)[0].input
    preprocessed = to_model_input(list(images), spec)
    assert_agrees(_logits(triton.infer(TASK, [_image_input(preprocessed, "FP32")])), reference)

    encoded = np.array([png(im) for im in images], dtype=np.object_)
    assert_agrees(_logits(triton.infer(TASK, [_image_input(encoded, "BYTES")])), reference)  # raw_input_contents

    with grpc.insecure_channel(server.target) as channel:  # BYTES as bytes_contents, which tritonclient never sends
        request = triton_pb2.ModelInferRequest(model_name=TASK, id="typed")
        tensor = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[len(images)])
        tensor.contents.bytes_contents.extend(encoded.tolist())
        request.outputs.add(name="LOGITS")
        response = triton_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert response.id == "typed"
    (output,) = response.outputs
    assert output.datatype == "FP32" and list(output.shape) == [4, 10]
    assert_agrees(np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(4, 10), reference)

    classes = parse_classes(triton.infer(TASK, [_image_input(images)], outputs=[
        tg.InferRequestedOutput("LOGITS", class_count=3)]).as_numpy("LOGITS"))
    for row, logits in zip(classes, reference, strict=True):
        assert [i for _, i, _ in row] == np.argsort(-logits, kind="stable")[:3].tolist()
        assert [label for _, _, label in row] == [str(i) for _, i, _ in row]
        np.testing.assert_allclose([v for v, _, _ in row], logits[[i for _, i, _ in row]], atol=1e-5)


def test_malformed_requests_get_the_status_and_message_that_say_what_was_wrong(  # noqa: ANN001
    kserve, served_template: Served, digits
) -> None:
    _, triton, native = kserve
    images = served_template.test_images[:2]
    _fails(lambda: triton.infer("no-such-task", [_image_input(images)]), "NOT_FOUND", "'no-such-task'")
    _fails(lambda: triton.infer(TASK, [_image_input(images)], model_version="9"), "NOT_FOUND", "no version 9")
    _fails(lambda: triton.infer(TASK, [_image_input(images)], model_version="v1"), "INVALID_ARGUMENT", "'v1'")
    _fails(lambda: triton.infer(TASK, [_image_input(images, name="INPUT0")]), "INVALID_ARGUMENT", "'INPUT0'",
           "'IMAGE'")
    _fails(lambda: triton.infer(TASK, [_image_input(images.astype(np.int32), "INT32")]), "INVALID_ARGUMENT",
           "INT32", "UINT8")
    _fails(lambda: triton.infer(TASK, [_image_input(images), _image_input(images)]), "INVALID_ARGUMENT",
           "one input")
    _fails(lambda: triton.infer(TASK, [_image_input(images)], outputs=[tg.InferRequestedOutput("PROBS")]),
           "INVALID_ARGUMENT", "'PROBS'", "'LOGITS'")
    _fails(lambda: triton.infer(TASK, [_image_input(np.zeros((2, 3, 5, 5), np.float32), "FP32")]),
           "INVALID_ARGUMENT", "[2, 3, 5, 5]")
    _fails(lambda: triton.infer(TASK, [_image_input(np.zeros((257, 8, 8), np.uint8))]), "INVALID_ARGUMENT",
           "257 images", "limit is 256")
    _fails(lambda: triton.infer(TASK, [_image_input(np.array([b"not an image"], dtype=np.object_), "BYTES")]),
           "INVALID_ARGUMENT", "cannot decode")
    lying = _image_input(images)
    lying.set_shape([3, 8, 8, 1])  # more elements than the raw bytes hold
    _fails(lambda: triton.infer(TASK, [lying]), "INVALID_ARGUMENT", "[3, 8, 8, 1]", "bytes")
    register_dataset(native, "pending-task", digits)
    _fails(lambda: triton.infer("pending-task", [_image_input(images)]), "UNAVAILABLE", "pending")
    assert not triton.is_model_ready("pending-task")
    assert_agrees(_logits(triton.infer(TASK, [_image_input(images)])), native_logits(native, TASK, images))


def test_stream_infer_answers_each_request_and_reports_a_failed_one_on_the_stream(  # noqa: ANN001
    kserve, served_template: Served
) -> None:
    _, triton, native = kserve
    images = served_template.test_images[:2]
    answers: queue.Queue = queue.Queue()
    triton.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        triton.async_stream_infer(TASK, [_image_input(images)], request_id="a")
        triton.async_stream_infer(TASK, [_image_input(images)], request_id="b", model_version="5")
        triton.async_stream_infer(TASK, [_image_input(images[:1])], request_id="c")
        got = [answers.get(timeout=60) for _ in range(3)]
    finally:
        triton.stop_stream()
    (ok_a, none_a), (none_b, error_b), (ok_c, none_c) = got
    assert none_a is none_c is None and none_b is None
    assert "no version 5" in error_b.message()
    assert ok_a.get_response().id == "a" and ok_c.get_response().id == "c"
    reference = native_logits(native, TASK, images)
    assert_agrees(_logits(ok_a), reference)
    assert_agrees(_logits(ok_c), reference[:1])


def test_explicit_versions_are_served_on_demand_sharing_the_loaded_components(  # noqa: ANN001
    start_server, served_dir: Path, served_template: Served
) -> None:
    server = start_server(served_dir, max_loaded_versions=1)
    images = served_template.test_images[:3]
    with tg.InferenceServerClient(server.target) as triton, Client(server.target, timeout=60) as native:
        v1_logits = native_logits(native, TASK, images)
        v2, v3 = publish_heads(native, 2)
        assert (v2.version, v3.version) == (2, 3)
        current = triton.infer(TASK, [_image_input(images)])
        assert current.get_response().model_version == "3"
        assert_agrees(_logits(current), native_logits(native, TASK, images))
        sessions = len(native.serving_info().sessions)

        old = triton.infer(TASK, [_image_input(images)], model_version="1")
        assert old.get_response().model_version == "1"
        assert_agrees(_logits(old), v1_logits)
        assert_agrees(native_logits(native, TASK, images, version=1), v1_logits)  # the native Predict's version
        info = native.serving_info()
        assert len(info.sessions) == sessions + 1  # version 1's own head; its body is the live route's session
        assert [(r.task, r.version) for r in info.routes] == [(TASK, 3)]
        v1_head = native.list_versions(TASK)[0].components[-1].id
        assert v1_head in {cid for s in info.sessions for cid in s.component_ids}

        assert triton.is_model_ready(TASK, "1") and triton.is_model_ready(TASK, "2")
        assert triton.is_model_ready(TASK, "3") and triton.is_model_ready(TASK)
        assert not triton.is_model_ready(TASK, "4") and not triton.is_model_ready(TASK, "x")

        # The limit of one non-current version: asking for version 2 releases version 1's head.
        assert triton.infer(TASK, [_image_input(images)], model_version="2").get_response().model_version == "2"
        info = native.serving_info()
        assert v1_head not in {cid for s in info.sessions for cid in s.component_ids}
        assert len(info.sessions) == sessions + 1
        assert_agrees(_logits(triton.infer(TASK, [_image_input(images)], model_version="1")), v1_logits)

        native.rollback(TASK, 1)  # "" follows the rollback
        rolled = triton.infer(TASK, [_image_input(images)])
        assert rolled.get_response().model_version == "1"
        assert_agrees(_logits(rolled), v1_logits)


def test_statistics_count_per_model_and_version(kserve, served_template: Served) -> None:  # noqa: ANN001
    _, triton, native = kserve
    images = served_template.test_images[:2]
    for _ in range(5):
        triton.infer(TASK, [_image_input(images)])
    native.predict_batch(TASK, images)  # native Predict counts too: the statistics are the batcher's
    with pytest.raises(InferenceServerException):
        triton.infer(TASK, [_image_input(np.zeros((1, 3, 5, 5), np.float32), "FP32")])
    publish_heads(native, 1)
    triton.infer(TASK, [_image_input(images[:1])], model_version="2")
    stats = triton.get_inference_statistics(TASK, as_json=True)["model_stats"]
    by_version = {s["version"]: s for s in stats}
    assert set(by_version) == {"1", "2"}
    one = by_version["1"]
    assert int(one["inference_count"]) == 12
    assert 1 <= int(one["execution_count"]) <= 6
    inference = one["inference_stats"]
    assert int(inference["success"]["count"]) == 6 and int(inference["fail"]["count"]) == 1
    for part in ("success", "queue", "compute_infer", "compute_input"):
        assert int(inference[part]["ns"]) > 0, part
    assert int(inference["compute_infer"]["ns"]) < int(inference["success"]["ns"])
    assert int(one["last_inference"]) > 1.7e12  # milliseconds since the epoch
    assert int(by_version["2"]["inference_count"]) == 1
    only = triton.get_inference_statistics(TASK, "1", as_json=True)["model_stats"]
    assert [s["version"] for s in only] == ["1"]
    assert {s["name"] for s in triton.get_inference_statistics(as_json=True)["model_stats"]} == {TASK}
    _fails(lambda: triton.get_inference_statistics("no-such-task"), "NOT_FOUND", "'no-such-task'")


def test_unload_and_load_survive_a_restart_and_free_the_sessions(  # noqa: ANN001
    start_server, served_dir: Path, served_template: Served, digits
) -> None:
    images = served_template.test_images[:3]
    server = start_server(served_dir)
    with tg.InferenceServerClient(server.target) as triton, Client(server.target, timeout=60) as native:
        before = native_logits(native, TASK, images)
        register_dataset(native, "pending-task", digits)
        index = {m["name"]: m for m in triton.get_model_repository_index(as_json=True)["models"]}
        assert index[TASK]["state"] == "READY" and index[TASK]["version"] == "1"
        assert index["pending-task"]["state"] == "UNAVAILABLE" and "pending" in index["pending-task"]["reason"]
        assert [m["name"] for m in triton.get_model_repository_index(as_json=True)["models"]] == [TASK, "pending-task"]
        assert _ready_models(server.target) == [TASK]

        triton.unload_model(TASK)
        assert native.serving_info().sessions == []
        assert not triton.is_model_ready(TASK)
        _fails(lambda: triton.infer(TASK, [_image_input(images)]), "UNAVAILABLE", "unloaded")
        with pytest.raises(UnavailableError, match="unloaded"):
            native.predict_batch(TASK, images)
        _fails(lambda: triton.load_model("no-such-task"), "NOT_FOUND", "'no-such-task'")
        _fails(lambda: triton.unload_model("no-such-task"), "NOT_FOUND", "'no-such-task'")
        assert native.get_task(TASK).current_version == 1  # nothing deleted
    server.stop()

    server = start_server(served_dir)  # unloaded stays unloaded
    with tg.InferenceServerClient(server.target) as triton, Client(server.target, timeout=60) as native:
        index = {m["name"]: m for m in triton.get_model_repository_index(as_json=True)["models"]}
        assert (index[TASK]["state"], index[TASK]["reason"]) == ("UNAVAILABLE", "unloaded")
        assert _ready_models(server.target) == []
        assert native.serving_info().sessions == []
        triton.load_model(TASK)
        assert triton.is_model_ready(TASK)
        np.testing.assert_array_equal(native_logits(native, TASK, images), before)
    server.stop()

    server = start_server(served_dir)  # loaded stays loaded
    with tg.InferenceServerClient(server.target) as triton:
        assert triton.is_model_ready(TASK)
        np.testing.assert_array_equal(_logits(triton.infer(TASK, [_image_input(images)])), before)


def test_a_version_published_while_unloaded_is_recorded_and_served_once_loaded(  # noqa: ANN001
    start_server, served_dir: Path, served_template: Served
) -> None:
    images = served_template.test_images[:2]
    server = start_server(served_dir)
    with tg.InferenceServerClient(server.target) as triton, Client(server.target, timeout=60) as native:
        triton.unload_model(TASK)
        (v2,) = publish_heads(native, 1)  # the evolver goes on while the task is out of service
        assert native.get_task(TASK).current_version == 2
        assert native.serving_info().sessions == [] and not triton.is_model_ready(TASK)
        triton.load_model(TASK)
        answer = triton.infer(TASK, [_image_input(images)])
        assert answer.get_response().model_version == "2"
        assert_agrees(_logits(answer), native_logits(native, TASK, images, version=2))


def test_reflection_describes_the_native_and_the_kserve_services(kserve) -> None:  # noqa: ANN001
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    server, _, _ = kserve
    with grpc.insecure_channel(server.target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"inference.GRPCInferenceService", "munet_serve.v1.Inference", "grpc.health.v1.Health"} <= services
        pool = DescriptorPool(database)
        infer = pool.FindServiceByName("inference.GRPCInferenceService").methods_by_name["ModelInfer"]
        assert infer.input_type.fields_by_name["raw_input_contents"].number == 7
        assert pool.FindServiceByName("munet_serve.v1.Inference").methods_by_name["Predict"].input_type.name == (
            "PredictRequest")
