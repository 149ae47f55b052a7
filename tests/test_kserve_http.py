"""KServe v2 over HTTP/REST (`http_port`), driven by Triton's own client (tritonclient.http) and by raw requests:
health, metadata, per-version readiness, config, inference as JSON and with the binary tensor data extension (the
answers agreeing with native Predict), statistics, the repository, errors with their statuses, and /metrics."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as th
from tritonclient.utils import InferenceServerException

from munet_serve.clients import Client
from munet_serve.imaging import to_model_input

from kserve_fixtures import assert_agrees, image_client_view, native_logits, parse_classes, png
from serving_fixtures import TASK, Served, publish_heads, register_dataset


def _input(x: np.ndarray, datatype: str = "UINT8", binary: bool = True) -> th.InferInput:
    tensor = th.InferInput("IMAGE", list(x.shape), datatype)
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def _fails(call, status: int, *fragments: str) -> None:  # noqa: ANN001
    with pytest.raises(InferenceServerException) as info:
        call()
    assert info.value.status() == str(status), info.value
    for fragment in fragments:
        assert fragment in info.value.message(), info.value.message()


def _raw(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    method = "POST" if body is not None else "GET"
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


@pytest.fixture
def http(start_server, served_dir: Path):  # noqa: ANN201
    server = start_server(served_dir, http_port=0)
    url = f"127.0.0.1:{server.http_port}"
    with Client(server.target, timeout=60) as native:
        yield server, th.InferenceServerClient(url, network_timeout=60), native, f"http://{url}"


def test_the_endpoint_is_off_unless_asked(start_server, served_dir: Path) -> None:
    assert start_server(served_dir).http_port is None


def test_health_metadata_config_and_ready_per_version(http) -> None:  # noqa: ANN001
    server, triton, native, url = http
    assert triton.is_server_live() and triton.is_server_ready()
    metadata = triton.get_server_metadata()
    assert metadata["name"] == "munet-serve" and "binary_tensor_data" in metadata["extensions"]
    assert not set(metadata["extensions"]) & {"system_shared_memory", "cuda_shared_memory", "trace", "logging"}
    model = triton.get_model_metadata(TASK)
    config = triton.get_model_config(TASK)
    image_client_view(config, model)
    assert model["inputs"][0]["name"] == "IMAGE" and model["outputs"][0] == {
        "name": "LOGITS", "datatype": "FP32", "shape": [-1, 10]}
    publish_heads(native, 1)
    assert triton.get_model_metadata(TASK, "1")["versions"] == ["1", "2"]
    assert triton.get_model_config(TASK, "1")["parameters"]["version"]["string_value"] == "1"
    assert triton.is_model_ready(TASK) and triton.is_model_ready(TASK, "1") and triton.is_model_ready(TASK, "2")
    assert not triton.is_model_ready(TASK, "3") and not triton.is_model_ready("no-such-task")
    _fails(lambda: triton.get_model_metadata("no-such-task"), 404, "'no-such-task'")
    _fails(lambda: triton.get_model_config(TASK, "3"), 404, "no version 3")
    _fails(lambda: triton.get_system_shared_memory_status(), 501, "munet-serve does not serve")
    _fails(lambda: triton.get_trace_settings(), 501, "munet-serve does not serve")
    _fails(lambda: triton.get_log_settings(), 501, "munet-serve does not serve")
    status, _, body = _raw(f"{url}/v2/no/such/path")
    assert status == 404 and "error" in json.loads(body)


def test_infer_as_json_and_binary_agrees_with_native_predict(http, served_template: Served) -> None:  # noqa: ANN001
    server, triton, native, url = http
    images = served_template.test_images[:4]
    reference = native_logits(native, TASK, images)
    for binary_in in (True, False):
        for binary_out in (True, False):
            result = triton.infer(TASK, [_input(images, binary=binary_in)], request_id=f"r-{binary_in}-{binary_out}",
                                  outputs=[th.InferRequestedOutput("LOGITS", binary_data=binary_out)])
            response = result.get_response()
            assert response["id"] == f"r-{binary_in}-{binary_out}" and response["model_version"] == "1"
            assert ("parameters" in response["outputs"][0]) == binary_out
            assert_agrees(result.as_numpy("LOGITS").astype(np.float32), reference)
    assert_agrees(triton.infer(TASK, [_input(images)]).as_numpy("LOGITS"), reference)  # no outputs asked: binary
    spec = native.list_versions(TASK)[0].input
    preprocessed = to_model_input(list(images), spec)
    assert_agrees(triton.infer(TASK, [_input(preprocessed, "FP32")]).as_numpy("LOGITS"), reference)
    encoded = np.array([png(im) for im in images], dtype=np.object_)
    assert_agrees(triton.infer(TASK, [_input(encoded, "BYTES")]).as_numpy("LOGITS"), reference)
    assert_agrees(triton.infer(TASK, [_input(images[:, :, :, 0], binary=False)]).as_numpy("LOGITS"), reference)
    for binary in (True, False):
        classes = parse_classes(triton.infer(TASK, [_input(images)], outputs=[
            th.InferRequestedOutput("LOGITS", binary_data=binary, class_count=2)]).as_numpy("LOGITS"))
        assert [[i for _, i, _ in row] for row in classes] == np.argsort(-reference, kind="stable")[:, :2].tolist()

    # The binary extension by hand: JSON header, then the input's bytes; the answer's header, then the logits.
    header = json.dumps({"id": "raw", "inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": list(images.shape),
                                                  "parameters": {"binary_data_size": images.nbytes}}],
                         "outputs": [{"name": "LOGITS", "parameters": {"binary_data": True}}]}).encode()
    status, headers, body = _raw(f"{url}/v2/models/{TASK}/versions/1/infer", header + images.tobytes(),
                                 {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200
    size = int(headers["inference-header-content-length"])
    answer = json.loads(body[:size])
    assert answer["id"] == "raw" and answer["outputs"][0]["parameters"]["binary_data_size"] == 4 * 4 * 10
    assert_agrees(np.frombuffer(body[size:], dtype="<f4").reshape(4, 10), reference)
    # BYTES in binary: each element a 4-byte little-endian length, then its bytes.
    raw = b"".join(struct.pack("<I", len(e)) + e for e in encoded)
    header = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "BYTES", "shape": [4],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    status, _, body = _raw(f"{url}/v2/models/{TASK}/infer", header + raw,
                           {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200
    assert_agrees(np.array(json.loads(body)["outputs"][0]["data"], np.float32).reshape(4, 10), reference)


def test_bad_requests_get_statuses_that_say_what_was_wrong(http, served_template: Served, digits) -> None:  # noqa: ANN001
    server, triton, native, url = http
    images = served_template.test_images[:2]
    _fails(lambda: triton.infer("no-such-task", [_input(images)]), 404, "'no-such-task'")
    _fails(lambda: triton.infer(TASK, [_input(images)], model_version="4"), 404, "no version 4")
    _fails(lambda: triton.infer(TASK, [_input(images.astype(np.float64), "FP64")]), 400, "FP64")
    _fails(lambda: triton.infer(TASK, [_input(images)], outputs=[th.InferRequestedOutput("X")]), 400, "'X'")
    register_dataset(native, "pending-task", digits)
    _fails(lambda: triton.infer("pending-task", [_input(images)]), 503, "pending")
    infer = f"{url}/v2/models/{TASK}/infer"
    cases = [
        (b"{not json", {}, "not JSON"),
        (b"[1, 2]", {}, "JSON object"),
        (json.dumps({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2], "data": [1, 2, 3]}]})
         .encode(), {}, "needs 4 elements"),
        (json.dumps({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2],
                                 "parameters": {"binary_data_size": 99}}]}).encode(), {}, "binary_data_size 99"),
        (b'{"inputs": []}xxxx', {"Inference-Header-Content-Length": "14"}, "4 binary bytes follow"),
        (b"{}", {"Inference-Header-Content-Length": "x"}, "byte count"),
        (json.dumps({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": "2"}]}).encode(), {},
         "shape must be a list"),
        (json.dumps({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 1, 1], "data": ["a"]}]}).encode(),
         {}, "not UINT8 values"),
    ]
    for body, headers, fragment in cases:
        status, _, answer = _raw(infer, body, headers)
        assert status == 400, (body, answer)
        assert fragment in json.loads(answer)["error"], (body, answer)
    assert_agrees(triton.infer(TASK, [_input(images)]).as_numpy("LOGITS"), native_logits(native, TASK, images))


def test_statistics_repository_and_metrics(http, served_template: Served) -> None:  # noqa: ANN001
    server, triton, native, url = http
    images = served_template.test_images[:3]
    before = native_logits(native, TASK, images)
    for _ in range(3):
        triton.infer(TASK, [_input(images)])
    (stats,) = triton.get_inference_statistics(TASK)["model_stats"]
    assert stats["version"] == "1" and stats["inference_count"] == 12  # 3 here, 1 native: 4 requests of 3 images
    assert stats["inference_stats"]["success"]["count"] == 4 and stats["inference_stats"]["queue"]["ns"] > 0
    assert [s["name"] for s in triton.get_inference_statistics()["model_stats"]] == [TASK]
    _fails(lambda: triton.get_inference_statistics("no-such-task"), 404, "'no-such-task'")

    assert triton.get_model_repository_index() == [{"name": TASK, "version": "1", "state": "READY", "reason": ""}]
    triton.unload_model(TASK)
    assert triton.get_model_repository_index()[0]["state"] == "UNAVAILABLE"
    status, _, body = _raw(f"{url}/v2/repository/index", json.dumps({"ready": True}).encode())
    assert status == 200 and json.loads(body) == []
    _fails(lambda: triton.infer(TASK, [_input(images)]), 503, "unloaded")
    _fails(lambda: triton.load_model("no-such-task"), 404, "'no-such-task'")
    _fails(lambda: triton.load_model(TASK, config='{"max_batch_size": 8}'), 400, "takes no parameters")
    triton.load_model(TASK)
    np.testing.assert_array_equal(triton.infer(TASK, [_input(images)]).as_numpy("LOGITS"), before)

    status, _, body = _raw(f"{url}/metrics")
    assert status == 200
    assert f'munet_predict_requests_total{{code="OK",task="{TASK}"}}' in body.decode()


def test_the_docs_copy_paste_example_runs(start_server, served_dir: Path) -> None:
    """docs/kserve.md's Python example, against a real server (its ports replaced by the ones bound here)."""
    import subprocess
    import sys

    server = start_server(served_dir, http_port=0)
    text = (Path(__file__).resolve().parents[1] / "docs" / "kserve.md").read_text()
    example = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert "127.0.0.1:50051" in example and "127.0.0.1:8000" in example
    code = example.replace("127.0.0.1:50051", server.target).replace("127.0.0.1:8000", f"127.0.0.1:{server.http_port}")
    code += "\nassert logits.shape == (2, 10), logits.shape\nprint('example ok')\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "example ok" in done.stdout and "digits" in done.stdout
