"""TLS and bearer-token auth for both transports: TF Serving's SSLConfig as an SSL context, the token check.

`--ssl_config_file` (TF Serving's SSLConfig text proto: `server_key`, `server_cert`,
`custom_ca`, `client_verify`) secures gRPC as in TF Serving and, beyond it, REST; with
`client_verify` both require a client certificate signed by `custom_ca` (mutual TLS).
`--auth_token_file` (not a TF Serving flag; off by default) makes both transports require
`Authorization: Bearer <token>` (REST header, gRPC metadata `authorization`), compared in
constant time; a missing or wrong token is 401 / UNAUTHENTICATED. Health endpoints stay open
for probes. The token is never logged or echoed.
"""

from __future__ import annotations

import hmac
import ssl
import tempfile
from pathlib import Path
from typing import Any

import grpc

# gRPC methods that answer without a token: the standard health service, for probes.
_OPEN_GRPC_PREFIX = "/grpc.health.v1.Health/"
UNAUTHENTICATED_MESSAGE = "missing or invalid bearer token: send 'Authorization: Bearer <token>'"


def read_pem(value: str) -> bytes:
    """SSLConfig fields hold PEM text in TF Serving; a path is accepted too, for convenience."""
    if "-----BEGIN" in value:
        return value.encode()
    return Path(value).read_bytes()


def rest_ssl_context(server_key: str, server_cert: str, custom_ca: str = "", client_verify: bool = False) -> ssl.SSLContext:
    """A server SSL context from SSLConfig's fields; mutual TLS when `client_verify`.

    Raises ValueError naming what is wrong (a key that does not match, client_verify without a CA).
    """
    if client_verify and not custom_ca:
        raise ValueError("SSLConfig.client_verify needs custom_ca: the CA that signs client certificates")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # load_cert_chain reads files only: the PEM goes through a private (0700) temporary directory.
    with tempfile.TemporaryDirectory(prefix="tls-") as scratch:
        key_path, cert_path = Path(scratch, "key.pem"), Path(scratch, "cert.pem")
        key_path.write_bytes(read_pem(server_key))
        cert_path.write_bytes(read_pem(server_cert))
        try:
            context.load_cert_chain(str(cert_path), str(key_path))
        except ssl.SSLError as error:
            raise ValueError(f"SSLConfig server_cert/server_key cannot be used: {error.reason or error}") from None
    if custom_ca:
        try:
            context.load_verify_locations(cadata=read_pem(custom_ca).decode())
        except ssl.SSLError as error:
            raise ValueError(f"SSLConfig custom_ca cannot be used: {error.reason or error}") from None
    context.verify_mode = ssl.CERT_REQUIRED if client_verify else ssl.CERT_NONE
    return context


def read_auth_token(path: str) -> str:
    """The token in `--auth_token_file` (surrounding white space dropped); ValueError if empty."""
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"--auth_token_file {path}: cannot read it ({error})") from None
    if not token:
        raise ValueError(f"--auth_token_file {path} is empty: expected the bearer token clients must send")
    return token


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization value is `Bearer <token>`, compared in constant time."""
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for every call without the token in its `authorization` metadata."""

    def __init__(self, token: str) -> None:
        self._token = token

        async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

        self._refusal = grpc.unary_unary_rpc_method_handler(refuse)

    async def intercept_service(self, continuation, handler_call_details):
        if handler_call_details.method.startswith(_OPEN_GRPC_PREFIX):
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if token_matches(metadata.get("authorization"), self._token):
            return await continuation(handler_call_details)
        return self._refusal
