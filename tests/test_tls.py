"""TLS on the gRPC and HTTP ports (server/app.py, server/kserve/rest.py), with the certificates of
tls_fixtures.py; the SDK, the CLI and tritonclient connect with the CA; mutual TLS refuses clients without a
certificate the client CA signed."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tritonclient.grpc as tg

from munet_serve.clients import Client
from munet_serve.clients.errors import UnavailableError
from munet_serve.server.config import ServerConfig

from serving_fixtures import TASK, Served
from tls_fixtures import Certificates

CLI = str(Path(sys.executable).with_name("munet-serve"))


def test_grpc_and_http_speak_tls_and_the_clients_connect_with_the_ca(start_server, served_dir: Path,
                                                                    served_template: Served,
                                                                    certificates: Certificates) -> None:
    server = start_server(served_dir, tls_cert=certificates.server.cert, tls_key=certificates.server.key, http_port=0)
    images = served_template.test_images[:2]
    with Client(server.target, timeout=30, tls_ca=certificates.ca) as client:
        answer = client.predict_batch(TASK, images)
        assert answer.version == 1 and len(answer.predictions) == 2
    with Client(server.target, timeout=5) as plaintext:  # a plaintext client cannot talk to a TLS port
        with pytest.raises(UnavailableError):
            plaintext.list_tasks()

    # The CLI, with --tls-ca, and with the CA in $MUNET_SERVE_TLS_CA.
    shown = subprocess.run([CLI, "tasks", "list", "--server", server.target, "--tls-ca", str(certificates.ca)],
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and TASK in shown.stdout, shown.stdout + shown.stderr
    env = {**os.environ, "MUNET_SERVE_TLS_CA": str(certificates.ca)}
    shown = subprocess.run([CLI, "tasks", "list", "--server", server.target], capture_output=True, text=True,
                           timeout=120, env=env)
    assert shown.returncode == 0 and TASK in shown.stdout, shown.stdout + shown.stderr

    # tritonclient over gRPC with TLS.
    with tg.InferenceServerClient(server.target, ssl=True, root_certificates=str(certificates.ca)) as triton:
        assert triton.is_model_ready(TASK)
        image = tg.InferInput("IMAGE", list(images.shape), "UINT8")
        image.set_data_from_numpy(images)
        assert triton.infer(TASK, [image]).as_numpy("LOGITS").shape == (2, 10)

    # HTTPS, verified against the CA; plain HTTP gets no answer.
    context = ssl.create_default_context(cafile=str(certificates.ca))
    url = f"https://127.0.0.1:{server.http_port}/v2/models/{TASK}"
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        assert json.loads(response.read())["name"] == TASK
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/v2/health/ready", timeout=10).read()


def test_mutual_tls_refuses_a_client_without_a_certificate_from_the_client_ca(start_server, served_dir: Path,
                                                                              certificates: Certificates) -> None:
    server = start_server(served_dir, tls_cert=certificates.server.cert, tls_key=certificates.server.key,
                          tls_client_ca=certificates.ca, http_port=0)
    with Client(server.target, timeout=30, tls_ca=certificates.ca, tls_cert=certificates.client.cert,
                tls_key=certificates.client.key) as client:
        assert [t.name for t in client.list_tasks()] == [TASK]
    with Client(server.target, timeout=5, tls_ca=certificates.ca) as anonymous:
        with pytest.raises(UnavailableError):
            anonymous.list_tasks()
    with Client(server.target, timeout=5, tls_ca=certificates.ca, tls_cert=certificates.stranger.cert,
                tls_key=certificates.stranger.key) as stranger:
        with pytest.raises(UnavailableError):
            stranger.list_tasks()

    url = f"https://127.0.0.1:{server.http_port}/v2/health/ready"
    context = ssl.create_default_context(cafile=str(certificates.ca))
    context.load_cert_chain(certificates.client.cert, certificates.client.key)
    with urllib.request.urlopen(url, timeout=30, context=context) as response:
        assert response.status == 200
    bare = ssl.create_default_context(cafile=str(certificates.ca))
    with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
        urllib.request.urlopen(url, timeout=10, context=bare).read()


def test_tls_settings_are_checked(tmp_path: Path, certificates: Certificates) -> None:
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        ServerConfig(data_dir=tmp_path, tls_cert=certificates.server.cert)
    with pytest.raises(ValueError, match="needs tls_cert"):
        ServerConfig(data_dir=tmp_path, tls_client_ca=certificates.ca)
    with pytest.raises(ValueError, match="both tls_cert and tls_key"):
        Client("127.0.0.1:1", tls_ca=certificates.ca, tls_cert=certificates.client.cert)


def test_an_unreadable_certificate_stops_the_server_at_start_with_the_reason(served_dir: Path,
                                                                            certificates: Certificates) -> None:
    done = subprocess.run([sys.executable, "-m", "munet_serve.server", "--data-dir", str(served_dir), "--port", "0",
                           "--tls-cert", str(certificates.server.cert), "--tls-key", str(served_dir / "no-such.key")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cannot serve" in done.stderr and "no-such.key" in done.stderr, done.stderr
