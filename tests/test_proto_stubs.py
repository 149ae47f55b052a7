"""The checked-in stubs must equal a fresh generation from proto/v1/*.proto (run `python proto/generate.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("proto_generate", ROOT / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generator = _load_generator()
    fresh = generator.generate(tmp_path)
    assert {p.name for p in fresh} >= {"inference_pb2.py", "tasks_pb2_grpc.py", "evolution_pb2.pyi", "types_pb2.py"}
    checked_in = {
        p.name for p in (ROOT / "proto" / "v1").iterdir() if p.name.endswith(generator.GENERATED_SUFFIXES)
    }
    assert checked_in == {p.name for p in fresh}, "stale or missing generated files: run python proto/generate.py"
    for path in fresh:
        current = (ROOT / "proto" / "v1" / path.name).read_text()
        if current != path.read_text():
            pytest.fail(f"proto/v1/{path.name} differs from a fresh generation: run python proto/generate.py")


def test_generated_modules_import_under_the_package_name() -> None:
    from munet_serve.proto.v1 import evolution_pb2_grpc, inference_pb2, tasks_pb2

    assert inference_pb2.DESCRIPTOR.package == "munet_serve.v1"
    assert tasks_pb2.DESCRIPTOR.services_by_name["Tasks"].full_name == "munet_serve.v1.Tasks"
    assert hasattr(evolution_pb2_grpc, "EvolutionStub")
