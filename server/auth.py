"""Bearer-token authentication and role checks for every RPC; one client identity for per-client limits.

Two roles: `inference` may call the read and predict methods; `admin` may call everything. Health checks
and server reflection stay open so load balancers and grpcurl work. Tokens are compared in constant time
and never logged. The server checks credentials in its CallInterceptor (server/interceptor.py) through
`authenticate`, on the call's HEADERS; `AuthInterceptor` does the same as a stand-alone grpc.aio interceptor.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc

from .errors import ServiceError

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


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: no space, CR, LF, NUL or other control


def bearer_token(metadata) -> str | None:
    """The token of the call's one `authorization: Bearer <token>` header, None when it has none.

    Raises UNAUTHENTICATED for a header that is repeated, not exactly `Bearer` (any case, RFC 7235),
    one space and the token, or that holds CR, LF, NUL, spaces or other control characters (RFC 9113
    8.2.1), so one token has one spelling and so one identity."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise _unauthenticated(f"send one 'authorization' header, got {len(values)}")
    value = values[0]
    if isinstance(value, bytes):
        raise _unauthenticated("expected 'authorization: Bearer <token>' (text, not binary metadata)")
    scheme, sep, token = value.partition(" ")
    if scheme.lower() != "bearer" or not sep or not _TOKEN_CHARS.fullmatch(token):
        raise _unauthenticated("expected 'authorization: Bearer <token>' (one space, no other whitespace "
                               "or control characters)")
    return token


def _unauthenticated(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, message)


def authenticate(tokens: TokenTable | None, method: str, metadata) -> str | None:
    """The authenticated token of a call (None when auth is off or the method is open); raises
    UNAUTHENTICATED for missing, malformed or unknown credentials, PERMISSION_DENIED without the role."""
    role = required_role(method)
    if tokens is None or role is None:
        return None
    token = bearer_token(metadata)
    if token is None:
        raise _unauthenticated("missing credentials: send metadata 'authorization: Bearer <token>'")
    have = tokens.role_of(token)
    if have is None:
        raise _unauthenticated("unknown bearer token")
    if role == "admin" and have != "admin":
        raise ServiceError(grpc.StatusCode.PERMISSION_DENIED,
                           f"{method} needs the 'admin' role; this token has '{have}'")
    return token


def client_identity(token: str | None, peer: str) -> str:
    """The one identity per-client limits key on: the authenticated token (hashed, never kept), else the
    peer's host (its address without the port)."""
    if token:
        return "token:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    peer = peer or ""
    return "peer:" + (peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer)


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
        if handler is None:
            return handler
        try:
            authenticate(self.tokens, handler_call_details.method, handler_call_details.invocation_metadata)
        except ServiceError as err:
            return _deny(handler, err.code, err.message)
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
