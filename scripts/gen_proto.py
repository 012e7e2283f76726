"""Regenerate the Python protobuf/gRPC modules (package `rnn.v1`) from proto/rnn/v1/*.proto.

Usage: python scripts/gen_proto.py [--out DIR]   (default: the repository root, so files land in rnn/v1/)

The generated modules import each other as `rnn.v1.xxx_pb2`, so they live in a top-level package `rnn/v1/`
that is never edited by hand; `make proto` runs this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("rnn") / "v1"
INIT_TEXT = '"""Generated protobuf and gRPC code for the rnn.v1 API (see proto/rnn/v1/); do not edit."""\n'


def proto_files() -> list[Path]:
    """The .proto files of the API, sorted, relative to proto/."""
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))


def generate(out: Path) -> list[Path]:
    """Write the generated modules and package __init__ files under `out`; return the written paths."""
    import grpc_tools
    from grpc_tools import protoc  # grpcio-tools is a build/test dependency only

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--pyi_out={out}",
        *[str(p) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    for pkg in (Path("rnn"), PACKAGE_DIR):
        (out / pkg / "__init__.py").write_text(INIT_TEXT)
    return sorted(p for p in (out / PACKAGE_DIR).iterdir() if p.is_file()) + [out / "rnn" / "__init__.py"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: repository root)")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
