"""Channel construction for RnnClient: plain or TLS (optionally mutual), and a bearer token on every call."""

from __future__ import annotations

import collections
from pathlib import Path

import grpc

from .errors import InvalidArgument


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                    "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                  grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call (the server's auth interceptor reads it)."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(d.metadata or ()), self._header]
        return _Details(d.method, d.timeout, metadata, d.credentials, getattr(d, "wait_for_ready", None),
                        getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def _read(what: str, path: str | None) -> bytes | None:
    if path is None:
        return None
    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"{what}: expected a PEM file, got {str(path)!r} (no such file)")
    return file.read_bytes()


def make_channel(address: str, options: list[tuple[str, int]], *, token: str | None = None, tls: bool = False,
                 ca_file: str | None = None, cert_file: str | None = None,
                 key_file: str | None = None) -> grpc.Channel:
    """An insecure channel, or a TLS one when `tls` or any PEM file is given; with `token`, authenticated."""
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise InvalidArgument("token: expected a non-empty str (the value is not shown)")
    if (cert_file is None) != (key_file is None):
        raise InvalidArgument("cert_file, key_file: expected both (mutual TLS) or neither")
    if tls or ca_file or cert_file:
        creds = grpc.ssl_channel_credentials(root_certificates=_read("ca_file", ca_file),
                                             private_key=_read("key_file", key_file),
                                             certificate_chain=_read("cert_file", cert_file))
        channel = grpc.secure_channel(address, creds, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    if token is not None:
        channel = grpc.intercept_channel(channel, BearerToken(token.strip()))
    return channel
