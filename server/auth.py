"""Bearer-token authentication and role checks for every RPC, as one grpc.aio server interceptor.

Two roles: `inference` may call the read and predict methods; `admin` may call everything. Health checks
and server reflection stay open so load balancers and grpcurl work. Tokens are compared in constant time
and never logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

ROLES = ("inference", "admin")

# Methods the `inference` role may call; every other rnn.v1 method needs `admin`.
INFERENCE_METHODS = frozenset(
    {
        "/rnn.v1.InferenceService/Predict",
        "/rnn.v1.InferenceService/PredictStream",
        "/rnn.v1.InferenceService/StreamGenerate",
        "/rnn.v1.ModelService/ListModels",
        "/rnn.v1.ModelService/GetModel",
    }
)
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/",
                 "/grpc.reflection.v1.ServerReflection/")


@dataclass(frozen=True)
class TokenTable:
    """Configured tokens as (role, token) pairs; looked up without early exit."""

    entries: tuple[tuple[str, bytes], ...]

    def role_of(self, token: str) -> str | None:
        candidate = token.encode("utf-8", "surrogatepass")
        found = None
        for role, secret in self.entries:  # compare with every entry, so timing does not reveal which matched
            if hmac.compare_digest(candidate, secret) and found is None:
                found = role
        return found


def parse_tokens(text: str, source: str) -> TokenTable:
    """Parse `role:token` entries separated by newlines or commas; '#' starts a comment line."""
    entries = []
    for n, raw in enumerate(text.replace(",", "\n").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        role, sep, token = line.partition(":")
        role, token = role.strip(), token.strip()
        if not sep or role not in ROLES or len(token) < 16:
            raise ValueError(
                f"{source}: entry {n}: expected 'ROLE:TOKEN' with ROLE in {ROLES} and a token of at least "
                f"16 characters (the token itself is not shown)"
            )
        entries.append((role, token.encode()))
    if not entries:
        raise ValueError(f"{source}: no tokens configured")
    return TokenTable(tuple(entries))


def load_tokens(tokens_file: str | None, tokens_env: str | None = None) -> TokenTable | None:
    """Tokens from a file (`--auth-tokens-file`) or the RNN_AUTH_TOKENS value; None when neither is set."""
    if tokens_file:
        path = Path(tokens_file)
        if not path.is_file():
            raise ValueError(f"--auth-tokens-file: no such file {path}")
        return parse_tokens(path.read_text(), str(path))
    tokens_env = tokens_env if tokens_env is not None else os.environ.get("RNN_AUTH_TOKENS")
    if tokens_env:
        return parse_tokens(tokens_env, "RNN_AUTH_TOKENS")
    return None


def required_role(method: str) -> str | None:
    """The role a method needs, or None for open methods."""
    if method.startswith(OPEN_PREFIXES):
        return None
    return "inference" if method in INFERENCE_METHODS else "admin"


def _bearer(metadata) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token:
                return token.strip()
    return None


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as `handler` that aborts with `code`."""

    async def abort(_request, context):
        await context.abort(code, message)

    async def abort_stream(_request, context):  # an async generator, like the handlers it stands in for
        await context.abort(code, message)
        yield  # never reached

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED for a token without the role."""

    def __init__(self, tokens: TokenTable) -> None:
        self.tokens = tokens

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        role = required_role(handler_call_details.method)
        if handler is None or role is None:
            return handler
        token = _bearer(handler_call_details.invocation_metadata)
        if token is None:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED,
                         "missing credentials: send metadata 'authorization: Bearer <token>'")
        have = self.tokens.role_of(token)
        if have is None:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED, "unknown bearer token")
        if role == "admin" and have != "admin":
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED,
                         f"{handler_call_details.method} needs the 'admin' role; this token has '{have}'")
        return handler


def server_credentials(cert_file: str | None, key_file: str | None,
                       client_ca_file: str | None = None) -> grpc.ServerCredentials | None:
    """TLS credentials from PEM files; with `client_ca_file`, clients must present a certificate it signed."""
    if not cert_file and not key_file:
        if client_ca_file:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        return None
    if not (cert_file and key_file):
        raise ValueError("--tls-cert and --tls-key go together: give both files")
    files = {"--tls-cert": cert_file, "--tls-key": key_file, "--tls-client-ca": client_ca_file}
    for flag, path in files.items():
        if path and not Path(path).is_file():
            raise ValueError(f"{flag}: no such file {path}")
    root = Path(client_ca_file).read_bytes() if client_ca_file else None
    return grpc.ssl_server_credentials(
        [(Path(key_file).read_bytes(), Path(cert_file).read_bytes())],
        root_certificates=root,
        require_client_auth=root is not None,
    )


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals (127.0.0.0/8, ::1); a DNS name 127.x.example is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, has_auth: bool, has_tls: bool, allow_insecure: bool) -> None:
    """Refuse to listen beyond loopback without auth and TLS unless explicitly allowed."""
    if is_loopback(host) or allow_insecure or (has_auth and has_tls):
        return
    missing = " and ".join(x for x, ok in (("authentication", has_auth), ("TLS", has_tls)) if not ok)
    raise ValueError(
        f"refusing to listen on {host} without {missing}: configure --auth-tokens-file and "
        f"--tls-cert/--tls-key, or pass --allow-insecure (RNN_ALLOW_INSECURE=1) if the network is private"
    )
