"""Container health probe: `python -m server.healthcheck [--address HOST:PORT] [--service NAME]`.

Exits 0 when grpc.health.v1 reports SERVING for the service ("" = the whole server), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def check(address: str, service: str = "", timeout: float = 3.0) -> bool:
    """True when the server at `address` reports SERVING for `service`."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
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
    args = parser.parse_args(argv)
    return 0 if check(args.address, args.service, args.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
