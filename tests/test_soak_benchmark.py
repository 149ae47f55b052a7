"""The soak benchmark's machinery (issue 17) for a few seconds on the tiny fixture task: a real server process under
closed-loop predicts, publishes and registrations, its memory sampled. It checks that every kind of load happened
and nothing failed, and that the report has its fields; it asserts no timing and not the memory target."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from benchmarks.soak.config import PROFILES, SoakConfig
from benchmarks.soak.memory import Sample, growth, mark_times
from benchmarks.soak.report import describe, figures, markdown, write
from benchmarks.soak.run import run
from benchmarks.soak.ticker import Ticker

from serving_fixtures import TASK

MIB = 1024 * 1024


def test_a_short_soak_loads_publishes_registers_and_samples(served_dir: Path, tmp_path: Path) -> None:
    config = SoakConfig(minutes=0.2, clients=3, publish_interval_s=0.5, heads_per_task=3, register_interval_s=3.0,
                        sample_interval_s=0.5, warmup_s=0.5)
    result = run(PROFILES["mini"], config, tmp_path / "work", source=served_dir)

    assert result.tasks == result.publishing == [TASK]
    # predicts: many, none failed
    assert result.predicts["requests"] > 50 and result.predicts["failed"] == 0, result.predicts["errors"]
    assert result.predicts["p50_ms"] <= result.predicts["p99_ms"]
    # publishes: one every 0.5 s, each made the next version current, and the server agrees at the end
    assert result.publishes["failed"] == 0, result.publishes["errors"]
    assert result.publishes["done"] == len(result.published) >= 8
    versions = [p.version for p in result.published]
    assert versions == list(range(2, 2 + len(versions)))  # version 1 came with the fixture
    assert all(p.version == p.previous + 1 and p.current for p in result.published)
    assert result.publishes["did_not_raise_version"] == 0 and result.publishes["final_versions_match"]
    assert result.publishes["answered_by_a_predict"] >= 1  # the new versions go live under load
    # registrations: one every 3 s, each deleted again
    assert result.registrations["failed"] == 0, result.registrations["errors"]
    assert result.registrations["registered"] >= 3
    assert result.registrations["deleted"] == result.registrations["registered"]
    assert result.registrations["left_registered"] == 0
    # memory: a sample at the start, every 0.5 s, and one after the load ended; a real process's RSS
    samples = result.samples
    assert samples[0].at_s < 0.1 and samples[-1].at_s >= config.duration_s and len(samples) >= 20
    assert all(s.rss_bytes > 50 * MIB for s in samples) and result.sampler_failures == 0
    assert [s.answered for s in samples] == sorted(s.answered for s in samples) and samples[-1].answered > 0
    assert not result.server_problems

    json_path, md_path = write(result, tmp_path / "results", describe("python -m benchmarks.soak --profile mini"))
    assert json_path.name == "soak-mini.json" and md_path.name == "soak-mini.md"
    data = json.loads(json_path.read_text())
    assert data["command"] == "python -m benchmarks.soak --profile mini" and data["date"]
    assert data["machine"]["cores"] >= 1
    assert {"requests", "failed", "throughput_rps", "p50_ms", "p99_ms"} <= set(data["predicts"])
    assert data["publishes"]["done"] == len(result.published) and data["registrations"]["registered"] >= 3
    assert [t["target"].split(" ")[0] for t in data["targets"]] == ["failed", "RSS", "publishes"]
    assert data["targets"][0]["measured"] == 0 and data["targets"][0]["met"]
    assert data["memory"]["growth"] > 0 and data["memory"]["reference"]["at_s"] == pytest.approx(2.4, abs=0.6)
    assert len(data["samples"]["rows"]) == len(samples) and data["samples"]["columns"][1] == "rss_mib"
    assert data["marks"][0]["at_s"] == 0 and data["marks"][-1]["at_s"] >= config.duration_s
    assert "| failed requests (predicts, publishes, registrations) | 0 | 0 | yes |" in md_path.read_text()
    assert md_path.read_text() == markdown(result, {k: data[k] for k in ("command", "date", "machine")})


def test_growth_compares_the_end_with_the_sample_at_a_fifth_of_the_run() -> None:
    samples = [Sample(float(t), (100 + t) * MIB, 10 * t, 0.1 * t) for t in range(11)]
    reference, end, ratio = growth(samples, 10.0, 0.2)
    assert (reference.at_s, end.at_s) == (2.0, 10.0) and ratio == pytest.approx(110 / 102)
    assert mark_times(600.0, 0.2) == [0.0, *(60.0 * m for m in range(1, 11))]  # minute 2 is the reference
    assert mark_times(30.0, 0.2) == [0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0]


def test_a_ticker_counts_a_raising_call_as_failed_and_goes_on() -> None:
    calls: list[int] = []

    def action(k: int) -> None:
        calls.append(k)
        if k == 2:
            raise RuntimeError("boom")

    start = time.perf_counter()
    ticker = Ticker("test", 0.05, action, start, start + 0.28)
    ticker.begin()
    ticker.join(timeout=5)
    assert calls == [1, 2, 3, 4, 5]
    assert [o.error for o in ticker.outcomes] == [None, "RuntimeError: boom", None, None, None]


def test_the_figures_flag_memory_growth_over_the_target() -> None:
    from benchmarks.soak.run import SoakRun

    config = SoakConfig(minutes=1.0)
    run_ = SoakRun(profile={"name": "x", "root": {"model": "m", "image_size": 8}}, config=asdict(config),
                   source="fleet", tasks=["t"], publishing=["t"], seconds=60.0,
                   predicts={"requests": 10, "failed": 0, "throughput_rps": 1.0, "p50_ms": 1.0, "p99_ms": 2.0,
                             "p99.9_ms": 2.0, "errors": []},
                   publishes={"done": 1, "failed": 0, "errors": [], "call_ms_p50": 1.0, "call_ms_max": 1.0,
                              "did_not_raise_version": 0, "answered_by_a_predict": 1, "final_versions_match": True},
                   registrations={"done": 1, "failed": 1, "errors": ["x"], "call_ms_p50": 1.0, "call_ms_max": 1.0,
                                  "registered": 1, "deleted": 0, "left_registered": 1},
                   samples=[Sample(0.0, 100 * MIB, 0, 0.0), Sample(12.0, 100 * MIB, 5, 1.0),
                            Sample(60.0, 106 * MIB, 10, 2.0)])
    f = figures(run_)
    failed, rss, _ = f["targets"]
    assert failed["measured"] == 1 and not failed["met"]
    assert rss["measured"] == pytest.approx(1.06) and not rss["met"] and not f["all_met"]
