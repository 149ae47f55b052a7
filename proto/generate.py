"""Generates, with grpcio-tools, the Python gRPC stubs of munet_serve.v1 from proto/v1/*.proto and the descriptor
set of the KServe v2 protocol from proto/kserve/*.proto.

Run ``python proto/generate.py`` after editing a .proto file; never edit the generated files by hand.
The .proto files are compiled under the virtual path ``munet_serve/proto/`` so that the generated modules import
each other as ``munet_serve.proto.v1.*``, the package this folder is installed as.

The KServe v2 messages are not compiled to Python modules: those register their names (package ``inference``) in
protobuf's default pool, where tritonclient registers the same names from other files, and the second to arrive
would fail to import. They are compiled to one descriptor set (``kserve/kserve.binpb``) that
``munet_serve.proto.kserve`` loads into a pool of its own.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
VIRTUAL_ROOT = "munet_serve/proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
KSERVE_SET = PROTO_DIR / "kserve" / "kserve.binpb"


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "v1").glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Compiles every .proto into out_dir (flat) and returns the generated files."""
    from grpc_tools import protoc

    well_known = str(resources.files("grpc_tools") / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{VIRTUAL_ROOT}={PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(f"{VIRTUAL_ROOT}/v1/{p.name}" for p in proto_files()),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed: " + " ".join(args))
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for src in sorted((Path(tmp) / VIRTUAL_ROOT / "v1").iterdir()):
            dst = out_dir / src.name
            shutil.copyfile(src, dst)
            written.append(dst)
        return written


def generate_kserve(out: Path) -> Path:
    """Compiles proto/kserve/*.proto into one descriptor set (their imports included) at `out`."""
    from grpc_tools import protoc

    sources = sorted((PROTO_DIR / "kserve").glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{VIRTUAL_ROOT}={PROTO_DIR}",
        "--include_imports",
        f"--descriptor_set_out={out}",
        *(f"{VIRTUAL_ROOT}/kserve/{p.name}" for p in sources),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    return out


def main() -> int:
    for old in (PROTO_DIR / "v1").iterdir():
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    for path in generate(PROTO_DIR / "v1"):
        print(path.relative_to(PROTO_DIR.parent))
    print(generate_kserve(KSERVE_SET).relative_to(PROTO_DIR.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
