"""A miniature `benchmarks/evolver` run: every workload timed for every system, the bare loop trains the very model
the evolver's path is, the ratios and the bf16 check come out, and the table and JSON are written."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.evolver.__main__ import main
from benchmarks.evolver.run import CHILDREN, GENERATIONS


def test_mini_evolver_benchmark_measures_every_workload(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--profile", "mini", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evolver-mini.json").read_text())
    measured = {(m["workload"], m["system"]) for m in report["measurements"]}
    for workload in CHILDREN:
        assert {(workload, s) for s in ("evolver", "evolver, bf16 prefix", "bare PyTorch loop")} <= measured
    for workload in GENERATIONS:
        assert {(workload, s) for s in ("evolver", "evolver, each alone", "evolver, bf16 prefix")} <= measured
    assert all(m["candidate_steps_per_second"] > 0 and len(m["seconds"]) == 1 for m in report["measurements"])
    ratios = report["ratios"]
    assert "generation of 4 alike / one child (cost)" in ratios
    assert all(f"{w} vs bare loop" in ratios for w in CHILDREN)
    accuracy = report["accuracy"]
    assert len(accuracy["validation_accuracy_fp32"]) == len(accuracy["validation_accuracy_bf16"]) == 4
    table = (tmp_path / "evolver-mini.md").read_text()
    assert "bare PyTorch loop" in table and "bf16 accuracy check" in table
    assert "candidate" in capsys.readouterr().out.lower()
