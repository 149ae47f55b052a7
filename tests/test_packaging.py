"""Packaging and import boundaries: one top-level package, and a server import tree without torch."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        check=True, capture_output=True, text=True, cwd="/",
    ).stdout
    return set(out.split())


def test_server_imports_no_torch() -> None:
    modules = _modules_after("import munet_serve.server.app, munet_serve.server.__main__")
    assert "munet_serve.server.service" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "timm", "torchvision")}


def test_cli_for_clients_imports_no_torch() -> None:
    modules = _modules_after("import munet_serve.clients.cli, munet_serve.clients.datasets")
    assert "munet_serve.clients.client" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "timm", "torchvision")}


def test_wheel_holds_one_top_level_package(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("munet_serve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"munet_serve", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in ("munet_serve/server/app.py", "munet_serve/evolver/__init__.py", "munet_serve/clients/cli.py",
                     "munet_serve/proto/v1/tasks_pb2_grpc.py", "munet_serve/proto/v1/tasks.proto",
                     "munet_serve/imaging.py"):
        assert expected in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "munet-serve = munet_serve.clients.cli:main" in entry_points

    # A regular (non-editable) install of that wheel imports from where it was installed.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    assert sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info")) == ["bin", "munet_serve"]
    probe = (
        "import munet_serve.server.app as app, munet_serve.clients.cli, munet_serve.proto.v1.tasks_pb2 as t;"
        "print(app.__file__); print(t.DESCRIPTOR.package)"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": str(target)}).stdout.split()
    assert out == [str(target / "munet_serve" / "server" / "app.py"), "munet_serve.v1"]
