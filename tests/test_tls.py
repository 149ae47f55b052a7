"""TLS on the gRPC and HTTP ports (server/app.py, server/kserve/rest.py), with certificates these tests make with
`cryptography`: a private CA, a server certificate for 127.0.0.1 and localhost, and client certificates from that CA
and from a stranger's; the SDK, the CLI and tritonclient connect with the CA; mutual TLS refuses clients without a
certificate the client CA signed."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import tritonclient.grpc as tg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from munet_serve.clients import Client
from munet_serve.clients.errors import UnavailableError
from munet_serve.server.config import ServerConfig

from serving_fixtures import TASK, Served

CLI = str(Path(sys.executable).with_name("munet-serve"))


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA that signed the server's and the client's certificates
    server: Pair
    client: Pair
    stranger: Pair  # a client certificate from another CA


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write(folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    pair = Pair(folder / f"{stem}.pem", folder / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return pair


def _authority(common: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(common: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], *,
          server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca[0].subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                     else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca = _authority("munet-serve test CA")
    other = _authority("someone else's CA")
    (folder / "ca.pem").write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    return Certificates(
        ca=folder / "ca.pem",
        server=_write(folder, "server", *_leaf("127.0.0.1", ca, server=True)),
        client=_write(folder, "client", *_leaf("a client", ca, server=False)),
        stranger=_write(folder, "stranger", *_leaf("a stranger", other, server=False)),
    )


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
