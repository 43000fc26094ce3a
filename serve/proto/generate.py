"""Regenerate the Python stubs of ``serve/proto/lsr/v1/lsr.proto`` (needs grpcio-tools, the dev extra).

The proto is compiled with the repository root as its import root, so the stubs import each other as
``serve.proto.lsr.v1`` and never collide with the ``lsr`` package. Run ``python -m serve.proto.generate``
after editing the proto; ``tests/test_serve_proto.py`` fails while the checked-in stubs are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("serve/proto/lsr/v1/lsr.proto")
OUTPUTS = ("lsr_pb2.py", "lsr_pb2.pyi", "lsr_pb2_grpc.py")


def generate(out_dir: Path = ROOT) -> list[Path]:
    """Compile the proto into ``out_dir`` (mirroring its path) and return the generated files."""
    from importlib.resources import files

    from grpc_tools import protoc

    include = str(files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out_dir / PROTO.parent / name for name in OUTPUTS]


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path, file=sys.stderr)
