"""Regenerate the Python stubs of ``serve/proto/lsr/v1/lsr.proto`` (needs grpcio-tools, the dev extra).

The package installs ``serve/`` as ``lsr.serve``, so the proto is compiled as ``lsr/serve/proto/lsr/v1/lsr.proto``
under a staging root: the stubs then import each other as ``lsr.serve.proto.lsr.v1``, the name they are installed
under. Run ``python -m lsr.serve.proto.generate`` after editing the proto; ``tests/test_serve_proto.py`` fails
while the checked-in stubs are stale.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("serve/proto/lsr/v1/lsr.proto")
COMPILED_AS = Path("lsr") / PROTO
OUTPUTS = ("lsr_pb2.py", "lsr_pb2.pyi", "lsr_pb2_grpc.py")


def generate(out_dir: Path = ROOT / PROTO.parent) -> list[Path]:
    """Compile the proto and write its stubs into ``out_dir``; returns the generated files."""
    from importlib.resources import files

    from grpc_tools import protoc

    include = str(files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as staging:
        source = Path(staging) / COMPILED_AS
        source.parent.mkdir(parents=True)
        shutil.copyfile(ROOT / PROTO, source)
        args = [
            "grpc_tools.protoc",
            f"-I{staging}",
            f"-I{include}",
            f"--python_out={staging}",
            f"--pyi_out={staging}",
            f"--grpc_python_out={staging}",
            str(source),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed on {PROTO}")
        out_dir.mkdir(parents=True, exist_ok=True)
        return [Path(shutil.copyfile(source.parent / name, out_dir / name)) for name in OUTPUTS]


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path, file=sys.stderr)
