"""Bearer tokens with roles (server/auth.py), against real servers: the tokens file and its command, each role's
calls over native gRPC, KServe v2 gRPC and HTTP, UNAUTHENTICATED and PERMISSION_DENIED without echoing the token,
SIGHUP rereading the file, and the refusal to serve beyond loopback without auth."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import tritonclient.grpc as tg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.utils import InferenceServerException

from munet_serve.clients import Client
from munet_serve.clients.errors import PermissionDeniedError, UnauthenticatedError
from munet_serve.clients.up import UP_EVOLVER_TOKEN, _fresh_token
from munet_serve.server.app import create_server
from munet_serve.server.config import ServerConfig
from munet_serve.tokens import TokensFile

from serving_fixtures import TASK, Served, publish_heads

CLI = str(Path(sys.executable).with_name("munet-serve"))


def _tokens(path: Path) -> dict[str, str]:
    tokens = TokensFile(path)
    return {role: tokens.create(f"{role}-user", (role,)) for role in ("predict", "manage", "evolver", "admin")}


def test_the_tokens_command_prints_a_token_once_and_keeps_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    env = {**os.environ, "MUNET_SERVE_TOKENS_FILE": str(path)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([CLI, "tokens", *args], capture_output=True, text=True, timeout=60, env=env)

    made = cli("create", "ci", "--role", "predict", "--role", "manage")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("munet_") and len(token) > 40
    text = path.read_text()
    assert token not in text and json.loads(text)["tokens"][0]["roles"] == ["predict", "manage"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cli("list").stdout.split() == ["ci", "predict,manage"]
    again = cli("create", "ci", "--role", "admin")
    assert again.returncode != 0 and "exists already" in again.stdout
    assert "revoked" in cli("revoke", "ci").stdout
    assert cli("list").stdout == ""
    missing = cli("revoke", "ci")
    assert missing.returncode != 0 and "no token named 'ci'" in missing.stdout


def test_each_role_calls_what_it_may_and_nothing_else(start_server, served_dir: Path, served_template: Served,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens = _tokens(path)
    server = start_server(served_dir, tokens_file=path, http_port=0)
    images = served_template.test_images[:2]

    with grpc.insecure_channel(server.target) as channel:  # health stays open
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=30)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    with Client(server.target, timeout=30, token="") as anonymous:
        with pytest.raises(UnauthenticatedError, match="needs a token"):
            anonymous.predict_batch(TASK, images)
    wrong = "munet_not-a-real-token-at-all"
    with Client(server.target, timeout=30, token=wrong) as stranger:
        with pytest.raises(UnauthenticatedError, match="not valid") as info:
            stranger.list_tasks()
        assert wrong not in str(info.value)

    with Client(server.target, timeout=30, token=tokens["predict"]) as predictor:
        assert predictor.predict_batch(TASK, images).version == 1
        assert [t.name for t in predictor.list_tasks()] == [TASK]
        with pytest.raises(PermissionDeniedError, match="needs the role 'manage'") as denied:
            predictor.delete_task(TASK)
        assert tokens["predict"] not in str(denied.value)
        with pytest.raises(PermissionDeniedError, match="'evolver'"):
            predictor.get_root()
    with Client(server.target, timeout=30, token=tokens["evolver"]) as evolver:
        assert evolver.get_root() is not None
        publish_heads(evolver, 1)
        with pytest.raises(PermissionDeniedError, match="'predict'"):
            evolver.predict_batch(TASK, images)
    with Client(server.target, timeout=30, token=tokens["manage"]) as manager:
        assert manager.rollback(TASK, 1).current_version == 1
        with pytest.raises(PermissionDeniedError):
            manager.predict_batch(TASK, images)
    with Client(server.target, timeout=30, token=tokens["admin"]) as admin:
        assert admin.predict_batch(TASK, images).version == 1
        assert admin.get_root() is not None

    # KServe v2 over gRPC: the same roles, the token in the same header.
    with tg.InferenceServerClient(server.target) as triton:
        assert triton.is_server_live()  # open
        image = tg.InferInput("IMAGE", list(images.shape), "UINT8")
        image.set_data_from_numpy(images)
        with pytest.raises(InferenceServerException) as info:
            triton.infer(TASK, [image])
        assert "UNAUTHENTICATED" in str(info.value.status())
        answer = triton.infer(TASK, [image], headers={"authorization": f"Bearer {tokens['predict']}"})
        assert answer.as_numpy("LOGITS").shape == (2, 10)
        with pytest.raises(InferenceServerException) as info:
            triton.unload_model(TASK, headers={"authorization": f"Bearer {tokens['predict']}"})
        assert "PERMISSION_DENIED" in str(info.value.status())

    # ... and over HTTP.
    url = f"http://127.0.0.1:{server.http_port}"

    def status(path: str, token: str | None = None, body: bytes | None = None) -> int:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as e:
            assert (token or "missing") not in e.read().decode()
            return e.code

    infer = json.dumps({"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 2, 2],
                                    "data": [0, 1, 2, 3]}]}).encode()
    assert status("/v2/health/ready") == 200
    assert status(f"/v2/models/{TASK}/infer", body=infer) == 401
    assert status(f"/v2/models/{TASK}/infer", wrong, body=infer) == 401
    assert status(f"/v2/models/{TASK}/infer", tokens["predict"], body=infer) == 200
    assert status(f"/v2/repository/models/{TASK}/unload", tokens["predict"], body=b"") == 403
    assert status(f"/v2/repository/models/{TASK}/unload", tokens["manage"], body=b"") == 200
    assert status("/metrics", tokens["evolver"]) == 200 and status("/metrics") == 401


def test_a_revoked_token_is_refused_after_sighup(served_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    tokens = _tokens(path)
    with socket_port() as port:
        pass
    process = subprocess.Popen([sys.executable, "-m", "munet_serve.server", "--data-dir", str(served_dir), "--port",
                                str(port), "--tokens-file", str(path), "--log-level", "WARNING"])
    try:
        target = f"127.0.0.1:{port}"
        with Client(target, timeout=30, token=tokens["predict"]) as client:
            client.wait_ready(timeout=120)
            assert [t.name for t in client.list_tasks()] == [TASK]
            TokensFile(path).revoke("predict-user")
            process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.list_tasks()
                except UnauthenticatedError:
                    break
                assert time.monotonic() < deadline, "the revoked token still works after SIGHUP"
                time.sleep(0.2)
        with Client(target, timeout=30, token=tokens["admin"]) as admin:
            assert [t.name for t in admin.list_tasks()] == [TASK]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_without_tokens_the_server_binds_only_loopback_unless_insecure(tmp_path: Path) -> None:
    with pytest.raises(PermissionError, match="without authentication"):
        create_server(ServerConfig(data_dir=tmp_path / "a", host="0.0.0.0", port=0))
    server = create_server(ServerConfig(data_dir=tmp_path / "b", host="0.0.0.0", port=0, insecure=True))
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30) as client:
            assert client.list_tasks() == []
    finally:
        server.stop()
    path = tmp_path / "tokens.json"
    admin = TokensFile(path).create("admin", ("admin",))
    server = create_server(ServerConfig(data_dir=tmp_path / "c", host="0.0.0.0", port=0, tokens_file=path))
    try:
        with Client(f"127.0.0.1:{server.port}", timeout=30, token=admin) as client:
            assert client.list_tasks() == []
    finally:
        server.stop()


def test_up_gives_its_evolver_a_token_of_its_own_on_every_start(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    first = _fresh_token(path, UP_EVOLVER_TOKEN, ("evolver",))
    second = _fresh_token(path, UP_EVOLVER_TOKEN, ("evolver",))
    assert first != second
    entries = TokensFile(path).read()
    assert [(e.name, e.roles) for e in entries] == [(UP_EVOLVER_TOKEN, ("evolver",))]


class socket_port:  # noqa: N801 - a context manager used like a function
    """A free TCP port on loopback."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return int(self._socket.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self._socket.close()
