"""A miniature run of benchmarks/quality: two built-in tasks, the tiny root, a few steps, through the real server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.quality import profile, run_quality
from benchmarks.quality.__main__ import main
from benchmarks.quality.report import write_report


def test_mini_quality_run_writes_json_table_and_plot(tmp_path: Path) -> None:
    mini = profile("mini")
    lines: list[str] = []
    report = run_quality(mini, tmp_path / "work", dataset_cache=tmp_path / "datasets", progress=lines.append)
    paths = write_report(report, tmp_path / "results", "quality-mini")

    # every system ran every task on every seed, in order: both variants at s=1, the better one at s<1, the
    # baselines of docs/evolution.md §8.6 (freeze-bottom:L resolved to the root's 2 blocks), the long fine-tune,
    # the ablations
    better = report.better_variant
    assert better in ("munet", "mu2net")
    label = {"munet": "muNet", "mu2net": "mu2Net"}
    names = [s.system for s in report.systems]
    assert names == ["muNet s=1", "mu2Net s=1", f"{label[better]} s=0.5", "finetune-all", "freeze-bottom:2",
                     "adapters:4", "finetune-all, one long run", f"{label[better]} s=1, mu = 0.5",
                     f"{label[better]} s=1, 2 validation examples per class"]
    for system in report.systems:
        assert system.seeds == ([0] if system.kind == "ablation" else [0, 1])
        for run in system.runs:
            assert [t.builtin for t in run.tasks] == list(mini.tasks)
            for t in run.tasks:
                assert 0.0 <= t.test_accuracy <= 1.0
                assert t.test_examples == t.classes * mini.sizes.test  # type: ignore[union-attr]
                assert t.steps > 0 and t.params > 0 and t.train_seconds > 0 and t.candidates > 0
            assert run.params_per_task > 0
        assert 0 <= system.accuracy_spread <= 0.5

    # equal steps: every evolution and every baseline spent the evolution's budget of steps on each task, and a
    # replica of §8.6 the steps of the longest lineage (one candidate per generation)
    by_name = {s.system: s for s in report.systems}
    for system in report.systems:
        for run in system.runs:
            for t in run.tasks:
                expected = mini.search.task_iterations * mini.search.samples_per_task * mini.train.total_steps(
                    t.train_examples
                )
                assert t.steps == expected, (system.system, t.task)
    replica = by_name["finetune-all"].runs[0].tasks[0]
    assert replica.candidates == mini.search.children_per_generation
    assert by_name["finetune-all, one long run"].runs[0].tasks[0].candidates == 1

    # the ablation of the validation size registered fewer validation examples; the others did not change them
    ablation = by_name[f"{label[better]} s=1, 2 validation examples per class"]
    assert ablation.kind == "ablation"

    # after the second task, the first one answered bit-identically
    for system in report.systems:
        for run in system.runs:
            if system.kind in ("munet", "ablation"):
                assert [c.after_task for c in run.forgetting_checks] == ["chars-digits", "scans-digits"]
                assert run.forgetting_checks[0].checked == []
                assert run.forgetting_checks[1].checked == ["chars-digits"]
                assert all(c.identical for c in run.forgetting_checks)
    assert report.no_forgetting

    # finetune-all trains the whole root per task, so it costs more parameters per task than adapters
    assert by_name["finetune-all"].params_per_task > by_name["adapters:4"].params_per_task

    data = json.loads(paths["json"].read_text())
    assert data["name"] == "mini" and data["profile"]["name"] == "mini" and data["no_forgetting"] is True
    assert [s["system"] for s in data["systems"]] == names
    for s in data["systems"]:
        assert {"system", "kind", "average_accuracy", "params_per_task", "steps_per_task", "accuracy_spread",
                "seeds", "candidate_seconds_per_task"} <= set(s)
    targets = {row["target"]: row for row in data["targets"]["rows"]}
    assert any(t.startswith(f"{label[better]} s=1 >= finetune-all (§8.6) + 2 points") for t in targets)
    assert any("one long run" in t for t in targets)
    assert "every earlier task bit-identical after each new task" in targets
    assert all(row["met"] in (True, False, None) for row in targets.values())
    table = paths["markdown"].read_text()
    assert "| system |" in table and "average test accuracy" in table and "parameters per task" in table
    assert "candidate-seconds per task" in table and "| target | measured | met |" in table
    for name in names:
        assert name in table
    with Image.open(paths["plot"]) as png:
        assert png.format == "PNG" and png.width > 300 and png.height > 200
    assert any("muNet s=1" in line for line in lines)


def test_the_baseline_frontier_is_interpolated_in_log_parameters() -> None:
    from benchmarks.quality.targets import frontier_accuracy

    points = [(1e4, 0.3), (1e6, 0.5)]
    assert frontier_accuracy(points, 1e5) == pytest.approx(0.4)  # half way in log10
    assert frontier_accuracy(points, 1e4) == pytest.approx(0.3)
    assert frontier_accuracy(points, 1e3) is None and frontier_accuracy(points, 1e7) is None  # no baseline that size
    assert frontier_accuracy([], 1e5) is None


def test_keep_validation_keeps_the_first_examples_of_each_class() -> None:
    from benchmarks.quality.run import keep_validation
    from munet_serve.artifacts import Split
    from munet_serve.builtin import SplitSizes, load

    ds = load("scans/digits", sizes=SplitSizes(train=3, validation=4, test=2))
    kept = keep_validation(ds, 1)
    assert len(kept.split(Split.VALIDATION)[1]) == ds.num_classes
    assert np.array_equal(kept.split(Split.TRAIN)[0], ds.split(Split.TRAIN)[0])
    assert np.array_equal(kept.split(Split.TEST)[0], ds.split(Split.TEST)[0])


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
