"""TLS on REST and gRPC (`--ssl_config_file`), mutual TLS, and bearer-token auth (`--auth_token_file`).

The tests make a self-signed CA, a server certificate for 127.0.0.1 and a client certificate
with `cryptography`, and talk to a real server process over loopback.
"""

from __future__ import annotations

import datetime
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.server import config_protos, security

REPO = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-token-for-tests"


@dataclass(frozen=True)
class Pki:
    ca_cert: bytes
    server_key: bytes
    server_cert: bytes
    client_key: bytes
    client_cert: bytes
    ca_file: Path
    client_cert_file: Path
    client_key_file: Path


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, server: bool):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    elif not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    from cryptography.hazmat.primitives.serialization import Encoding

    return builder.sign(issuer_key or key, hashes.SHA256()).public_bytes(Encoding.PEM)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    directory = tmp_path_factory.mktemp("pki")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_cert = _certificate("test CA", ca_key, None, None, ca=True, server=False)
    ca_name = x509.load_pem_x509_certificate(ca_cert).subject
    server_cert = _certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False, server=True)
    client_cert = _certificate("client", client_key, ca_name, ca_key, ca=False, server=False)
    files = {"ca.pem": ca_cert, "client.pem": client_cert, "client.key": _pem_key(client_key)}
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return Pki(ca_cert, _pem_key(server_key), server_cert, _pem_key(client_key), client_cert,
               directory / "ca.pem", directory / "client.pem", directory / "client.key")


def _ssl_config_file(path: Path, pki: Pki, client_verify: bool) -> Path:
    config = config_protos.SSLConfig(
        server_key=pki.server_key.decode(), server_cert=pki.server_cert.decode(),
        custom_ca=pki.ca_cert.decode(), client_verify=client_verify,
    )
    path.write_text(text_format.MessageToString(config))
    return path


def _grpc_predict(channel: grpc.Channel, metadata=()) -> list[float]:
    x = tf.make_tensor_proto(np.array([2.0], np.float32))
    request = predict_pb2.PredictRequest(model_spec={"name": "half_plus_two"}, inputs={"x": x})
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return list(stub.Predict(request, timeout=20, metadata=metadata).outputs["y"].float_val)


def _https(server) -> str:
    return f"https://127.0.0.1:{server.rest_port}/v1/models/half_plus_two:predict"


BODY = {"instances": [2.0]}


def test_tls_secures_rest_and_grpc(tmp_path: Path, pki: Pki, half_plus_two_dir: Path, serve):
    config = _ssl_config_file(tmp_path / "ssl.config", pki, client_verify=False)
    with serve(half_plus_two_dir, args=[f"--ssl_config_file={config}"]) as server:
        response = requests.post(_https(server), json=BODY, verify=str(pki.ca_file), timeout=20)
        assert response.status_code == 200 and response.json() == {"predictions": [3.0]}
        # The certificate is checked by the client: without the CA the handshake fails.
        with pytest.raises(requests.exceptions.SSLError):
            requests.post(_https(server), json=BODY, timeout=20)
        # Plain HTTP on the TLS port gets no answer.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(f"http://127.0.0.1:{server.rest_port}/v1/models/half_plus_two:predict", json=BODY, timeout=20)

        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert)
        with grpc.secure_channel(server.grpc_endpoint, credentials) as channel:
            assert _grpc_predict(channel) == [3.0]
        with grpc.insecure_channel(server.grpc_endpoint) as channel, pytest.raises(grpc.RpcError) as raised:
            _grpc_predict(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.is_alive()


def test_mutual_tls_needs_a_client_certificate_on_both(tmp_path: Path, pki: Pki, half_plus_two_dir: Path, serve):
    config = _ssl_config_file(tmp_path / "ssl.config", pki, client_verify=True)
    with serve(half_plus_two_dir, args=[f"--ssl_config_file={config}"]) as server:
        client = (str(pki.client_cert_file), str(pki.client_key_file))
        response = requests.post(_https(server), json=BODY, verify=str(pki.ca_file), cert=client, timeout=20)
        assert response.status_code == 200 and response.json() == {"predictions": [3.0]}
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.post(_https(server), json=BODY, verify=str(pki.ca_file), timeout=20)

        mutual = grpc.ssl_channel_credentials(pki.ca_cert, pki.client_key, pki.client_cert)
        with grpc.secure_channel(server.grpc_endpoint, mutual) as channel:
            assert _grpc_predict(channel) == [3.0]
        server_only = grpc.ssl_channel_credentials(root_certificates=pki.ca_cert)
        with grpc.secure_channel(server.grpc_endpoint, server_only) as channel, pytest.raises(grpc.RpcError) as raised:
            _grpc_predict(channel)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        assert server.is_alive()


def test_bearer_token_on_both_protocols_health_stays_open(tmp_path: Path, half_plus_two_dir: Path, serve):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    url = "/v1/models/half_plus_two:predict"
    with serve(half_plus_two_dir, args=[f"--auth_token_file={token_file}", "--enable_grpc_healthcheck_service"]) as server:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"}):
            response = requests.post(f"{server.rest_endpoint}{url}", json=BODY, headers=headers, timeout=20)
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "bearer token" in response.json()["error"] and TOKEN not in response.text
        for path in ("/v1/models/half_plus_two", "/monitoring/prometheus/metrics"):
            assert requests.get(f"{server.rest_endpoint}{path}", timeout=20).status_code == 401
        response = requests.post(f"{server.rest_endpoint}{url}", json=BODY, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=20)
        assert response.status_code == 200 and response.json() == {"predictions": [3.0]}
        assert requests.get(f"{server.rest_endpoint}/healthz", timeout=20).status_code == 200
        assert requests.get(f"{server.rest_endpoint}/readyz", timeout=20).status_code == 200

        with grpc.insecure_channel(server.grpc_endpoint) as channel:
            for metadata in ((), (("authorization", "Bearer wrong"),)):
                with pytest.raises(grpc.RpcError) as raised:
                    _grpc_predict(channel, metadata)
                assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert TOKEN not in raised.value.details()
            assert _grpc_predict(channel, (("authorization", f"Bearer {TOKEN}"),)) == [3.0]
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=20)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert TOKEN not in server.logs()


@pytest.mark.parametrize(
    "flag_text, problem",
    [
        ("--auth_token_file={empty}", "is empty: expected the bearer token"),
        ("--auth_token_file={missing}", "cannot read it"),
        ("--ssl_config_file={verify_without_ca}", "client_verify needs custom_ca"),
        ("--ssl_config_file={wrong_key}", "server_cert/server_key cannot be used"),
    ],
)
def test_bad_security_settings_are_one_line_and_exit_2(tmp_path: Path, pki: Pki, half_plus_two_dir: Path,
                                                       flag_text: str, problem: str):
    (tmp_path / "empty").write_text("  \n")
    (tmp_path / "verify_without_ca").write_text(text_format.MessageToString(config_protos.SSLConfig(
        server_key=pki.server_key.decode(), server_cert=pki.server_cert.decode(), client_verify=True)))
    (tmp_path / "wrong_key").write_text(text_format.MessageToString(config_protos.SSLConfig(
        server_key=pki.client_key.decode(), server_cert=pki.server_cert.decode())))
    paths = {name: tmp_path / name for name in ("empty", "missing", "verify_without_ca", "wrong_key")}
    done = subprocess.run(
        [sys.executable, "-m", "serving.server", "--pick_unused_ports", "--model_name=half_plus_two",
         f"--model_base_path={half_plus_two_dir}", flag_text.format(**paths)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and problem in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_token_matches_only_the_bearer_token():
    assert security.token_matches(f"Bearer {TOKEN}", TOKEN)
    assert security.token_matches(f"bearer {TOKEN}", TOKEN)
    for value in (None, "", TOKEN, f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Token {TOKEN}"):
        assert not security.token_matches(value, TOKEN), value


def test_rest_ssl_context_requires_client_certificates_with_client_verify(pki: Pki):
    context = security.rest_ssl_context(pki.server_key.decode(), pki.server_cert.decode(), pki.ca_cert.decode(), True)
    assert context.verify_mode == ssl.CERT_REQUIRED
    context = security.rest_ssl_context(pki.server_key.decode(), pki.server_cert.decode())
    assert context.verify_mode == ssl.CERT_NONE
