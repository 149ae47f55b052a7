"""A miniature run of benchmarks/quality: two built-in tasks, the tiny root, a few steps, through the real server."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from benchmarks.quality import profile, run_quality
from benchmarks.quality.__main__ import main
from benchmarks.quality.report import write_report


def test_mini_quality_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    mini = profile("mini")
    lines: list[str] = []
    report = run_quality(mini, tmp_path / "work", dataset_cache=tmp_path / "datasets", progress=lines.append)
    paths = write_report(report, tmp_path / "results", "quality-mini")

    # every system ran every task, in order
    names = [s.system for s in report.systems]
    assert names == [f"muNet s={s:g}" for s in mini.scale_factors] + list(mini.baselines)
    for system in report.systems:
        assert [t.builtin for t in system.tasks] == list(mini.tasks)
        for t in system.tasks:
            assert 0.0 <= t.test_accuracy <= 1.0
            assert t.test_examples == t.classes * mini.sizes.test  # type: ignore[union-attr]
            assert t.steps > 0 and t.params > 0
        assert system.params_per_task > 0

    # equal compute: muNet and every baseline spent the evolution's budget of steps on each task
    for system in report.systems:
        for t in system.tasks:
            expected = mini.search.task_iterations * mini.search.samples_per_task * mini.train.total_steps(
                t.train_examples
            )
            assert t.steps == expected, (system.system, t.task)

    # muNet: after the second task, the first one answered bit-identically
    for system in report.systems:
        if system.kind == "munet":
            assert [c.after_task for c in system.forgetting_checks] == ["chars-digits", "scans-digits"]
            assert system.forgetting_checks[0].checked == []
            assert system.forgetting_checks[1].checked == ["chars-digits"]
            assert all(c.identical for c in system.forgetting_checks)
    assert report.no_forgetting

    # finetune-all trains the whole root per task, so it costs more parameters per task than adapters
    by_name = {s.system: s for s in report.systems}
    assert by_name["finetune-all"].params_per_task > by_name["adapters:4"].params_per_task

    data = json.loads(paths["json"].read_text())
    assert data["profile"]["name"] == "mini" and data["no_forgetting"] is True
    assert [s["system"] for s in data["systems"]] == names
    assert all("average_accuracy" in s for s in data["systems"])
    table = paths["markdown"].read_text()
    assert "| task |" in table and "average test accuracy" in table and "parameters per task" in table
    for name in names:
        assert name in table
    with Image.open(paths["plot"]) as png:
        assert png.format == "PNG" and png.width > 300 and png.height > 200
    assert any("muNet s=1" in line for line in lines)


def test_cli_rejects_unknown_profile(capsys) -> None:  # type: ignore[no-untyped-def]
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["--profile", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_roots_comparison_runs_and_writes_its_table(tmp_path: Path) -> None:
    from benchmarks.roots.__main__ import main as roots_main

    code = roots_main(["--roots", "chars-random", "--profile", "mini", "--protocols", "freeze-bottom:L,finetune-all",
                       "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "roots.json").read_text())
    (result,) = data["results"]
    assert result["root"] == "chars-random" and "random-init" in result["source"]
    assert set(result["accuracy"]) == {"freeze-bottom:L", "finetune-all"}
    for protocol in ("freeze-bottom:L", "finetune-all"):
        assert set(result["accuracy"][protocol]) == {"chars/digits", "scans/digits"}
        assert all(0.0 <= a <= 1.0 for a in result["accuracy"][protocol].values())
    assert data["search"]["samples_per_task"] == 4
    assert "| **average** |" in (tmp_path / "roots.md").read_text()
