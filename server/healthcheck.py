"""Container health probe: `python -m server.healthcheck [--address HOST:PORT] [--service NAME] [TLS flags]`.

Exits 0 when grpc.health.v1 reports SERVING for the service ("" = the whole server), 1 otherwise. Against a
TLS server give the CA to trust (`--tls-ca` / RNN_HEALTHCHECK_TLS_CA), with mutual TLS also a client
certificate and key (`--tls-cert`, `--tls-key` / RNN_HEALTHCHECK_TLS_CERT, RNN_HEALTHCHECK_TLS_KEY), and when
the certificate does not name the probed address, the name it does carry (`--server-name`). Health needs no
token.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def channel(address: str, ca: str | None = None, cert: str | None = None, key: str | None = None,
            server_name: str | None = None) -> grpc.Channel:
    """A plain channel, or a TLS one when a CA or client certificate is given (files are PEM)."""
    if not (ca or cert or key):
        return grpc.insecure_channel(address)
    if bool(cert) != bool(key):
        raise ValueError("--tls-cert and --tls-key go together")
    pem = {name: Path(path).read_bytes() if path else None for name, path in (("ca", ca), ("cert", cert),
                                                                              ("key", key))}
    creds = grpc.ssl_channel_credentials(pem["ca"], pem["key"], pem["cert"])
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return grpc.secure_channel(address, creds, options=options)


def check(address: str, service: str = "", timeout: float = 3.0, **tls: str | None) -> bool:
    """True when the server at `address` reports SERVING for `service` (`tls`: see `channel`)."""
    with channel(address, **tls) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as exc:
            print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return False
    ok = reply.status == health_pb2.HealthCheckResponse.SERVING
    print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
    return ok


def main(argv: list[str] | None = None) -> int:
    default = f"127.0.0.1:{os.environ.get('RNN_PORT', '50051')}"
    parser = argparse.ArgumentParser(prog="python -m server.healthcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=default, help=f"server address (default {default})")
    parser.add_argument("--service", default="", help="service name ('' = overall)")
    parser.add_argument("--timeout", type=float, default=3.0)
    for flag in ("--tls-ca", "--tls-cert", "--tls-key", "--server-name"):
        env = "RNN_HEALTHCHECK_" + flag[2:].upper().replace("-", "_")
        parser.add_argument(flag, default=os.environ.get(env) or None, help=f"(env {env})")
    args = parser.parse_args(argv)
    try:
        healthy = check(args.address, args.service, args.timeout, ca=args.tls_ca, cert=args.tls_cert,
                        key=args.tls_key, server_name=args.server_name)
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
