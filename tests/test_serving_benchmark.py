"""The serving benchmark's parts (issue 5): per-task baselines matching the server, and the load generator."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from benchmarks.serving.fleet import top_block
from benchmarks.serving.headroom import BatchCost, compute_ceiling
from benchmarks.serving.kserve import markdown as kserve_markdown
from benchmarks.serving.kserve import run_kserve
from benchmarks.serving.kserve import write as kserve_write
from benchmarks.serving.load import PROTOCOLS, closed_loop, zipf_weights
from benchmarks.serving.models import current_version, eager_path_module, whole_path_graph
from munet_serve.clients import Client
from munet_serve.clients.errors import NotFoundError
from munet_serve.evolver.export import cpu_session
from munet_serve.imaging import to_model_input

from serving_fixtures import TASK, Served, register_dataset


def test_whole_graph_and_eager_model_match_the_served_chain(
    start_server, served_dir: Path, served_template: Served
) -> None:
    server = start_server(served_dir)
    images = served_template.test_images[:16]
    with Client(server.target, timeout=120) as client:
        served = client.predict_batch(TASK, images, include_logits=True)
        expected = np.stack([p.logits for p in served.predictions])
        version = current_version(client, TASK)
        assert version.version == served.version

        graph = whole_path_graph(client, TASK)
        module = eager_path_module(client, TASK)

    # one graph holding every component of the path, its names prefixed per component
    assert len(graph.graph.input) == 1 and len(graph.graph.output) == 1
    assert graph.doc_string == f"{TASK} v{version.version}"
    onnx.checker.check_model(graph)
    x = to_model_input(list(images), version.input)
    session = cpu_session(graph.SerializeToString())
    (whole,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    assert np.array_equal(whole.argmax(1), expected.argmax(1))

    with torch.inference_mode():
        eager = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(eager, expected, atol=1e-4)
    assert not any(p.requires_grad for p in module.parameters())


def test_a_task_without_a_current_version_is_refused(start_server, tmp_path: Path, digits) -> None:
    server = start_server(tmp_path / "empty")
    with Client(server.target, timeout=30) as client:
        with pytest.raises(NotFoundError, match="nope"):
            current_version(client, "nope")
        register_dataset(client, "pending", digits)  # registered, never evolved: no version yet
        with pytest.raises(LookupError, match="task 'pending' has no current version"):
            whole_path_graph(client, "pending")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_closed_loop_load_over_grpc_counts_every_request(
    start_server, served_dir: Path, served_template: Served, protocol: str
) -> None:
    server = start_server(served_dir)
    pool = served_template.test_images[:8]
    result = closed_loop(server.target, [TASK, "missing"], lambda task: pool, concurrency=3, duration_s=1.5,
                         batch=2, zipf_exponent=1.0, protocol=protocol)
    # every request is either answered or counted as failed; the unknown task's requests all fail with NOT_FOUND
    assert result.requests == len(result.latencies_ms) + result.failed
    assert result.per_task[TASK] == len(result.latencies_ms) > 0 and result.per_task["missing"] == 0
    assert result.failed > 0 and all(e.startswith("missing:") for e in result.errors)
    summary = result.summary()
    assert summary["throughput_rps"] > 0 and summary["p50_ms"] <= summary["p99_ms"] <= summary["p99.9_ms"]


def test_batch_cost_interpolates_and_bounds_the_gain() -> None:
    # a run costs 8 ms + 2 ms per image: 10 ms/image alone, 2.125 ms/image at 64
    sizes = (1, 2, 4, 8, 16, 32, 64)
    cost = BatchCost(sizes, tuple(8.0 + 2.0 * b for b in sizes), threads=1)
    assert cost.ms_per_image(1) == pytest.approx(10.0)
    assert cost.ms_per_image(3) == pytest.approx((8 + 6) / 3)  # between measured sizes, exact for an affine cost
    assert cost.best(64) == (64, pytest.approx(2.125)) and cost.best(16) == (16, pytest.approx(2.5))
    # A at a mean batch of 4 costs 4 ms/image; the best batch 2.125: at most 1.88x from batching
    assert compute_ceiling(cost, 4.0, 64) == pytest.approx(4.0 / 2.125)
    assert compute_ceiling(cost, 0.5, 64) == pytest.approx(10.0 / 2.125)  # below the smallest size: batch 1
    # both also pay 2 ms per request outside the model: (2 + 4) / (2 + 2.125)
    assert compute_ceiling(cost, 4.0, 64, overhead_ms=2.0) == pytest.approx(6.0 / 4.125)
    with pytest.raises(ValueError, match="outside"):
        cost.ms_per_image(100)


def test_the_fleet_clones_the_last_block_in_execution_order() -> None:
    names = ["embedding", "cls", "posembed_input", *(f"encoderblock_{i}" for i in range(12)), "encoder_norm"]
    assert top_block(names) == "encoderblock_11"  # not encoderblock_9, the largest name as a string
    with pytest.raises(ValueError, match="no encoder block"):
        top_block(["embedding", "head"])


def test_zipf_weights() -> None:
    w = zipf_weights(4, 1.0)
    np.testing.assert_allclose(w, np.array([1, 1 / 2, 1 / 3, 1 / 4]) / (25 / 12))
    np.testing.assert_allclose(zipf_weights(3, 0.0), [1 / 3] * 3)
    with pytest.raises(ValueError):
        zipf_weights(0)


def test_mini_benchmark_runs_every_system_and_no_request_fails(tmp_path: Path) -> None:
    """The whole serving benchmark in miniature (3 tasks on the tiny root, second-long runs): every system answers,
    nothing fails, memory is measured at each task count, versions go live under load. No timing is asserted."""
    import json

    from benchmarks.serving.report import write
    from benchmarks.serving.run import PROFILES, run

    profile = dataclasses.replace(PROFILES["mini"], duration_s=1.0, warmup_s=0.3, swap_duration_s=2.0,
                                  small_swap_root=PROFILES["mini"].root)
    report = run(profile, tmp_path / "work")
    json_path, md_path = write(report, tmp_path / "results", "mini")

    systems = {(r.system, r.workload.split(" ")[0]) for r in report.runs}
    assert {("munet", "closed"), ("munet", "open"), ("munet", "single"), ("munet", "hot"),
            ("onnx", "closed"), ("onnx", "open"), ("torch", "closed"), ("torch", "open"),
            ("munet_unfused", "closed"), ("onnx", "single")} <= systems
    for r in report.runs:
        assert r.failed == 0 and r.requests > 0, r
    assert set(report.memory["munet"]) == set(report.memory["onnx"]) == {1, 2, 4}
    assert all(v > 50 * 2**20 for m in report.memory.values() for v in m.values())  # a real process's RSS
    assert report.own_bytes[1] < report.own_bytes[2] < report.own_bytes[4]
    # with every task of the memory measurement (more than the 3 of the main comparison), after memory is read:
    # both servers under the same load
    many = {r.system: r for r in report.runs if r.workload == "closed loop, 4 tasks"}
    assert set(many) == {"munet", "onnx"} and all(r.tasks == 4 and r.server_cpu_ms for r in many.values())
    # the 3 tasks' traffic again with another number of clients, for munet-serve and A
    fewer = {r.system: r for r in report.runs if r.workload == "closed loop, 2 clients"}
    assert set(fewer) == {"munet", "onnx"} and all(r.tasks == 3 and r.server_cpu_ms for r in fewer.values())
    assert report.swap["failed"] == 0 and report.swap["published"] >= 2
    assert report.swap["answered_new_version"] >= 1
    small = report.small_swap  # measured again in a server of its own
    assert small["failed"] == 0 and small["answered_new_version"] >= 1 and small["root"] == profile.root.model
    assert {"steady between swaps", "hot swap every 0.5 s", "small root, steady between swaps",
            "small root, hot swap every 0.5 s"} <= {r.workload for r in report.runs}
    assert report.swap["p99_swapping_ms"] > 0 and report.swap["p99_steady_ms"] > 0
    closed = {r.system: r for r in report.runs if r.workload == "closed loop"}
    # Runs are counted by the kind of a segment's first component: the shared body starts at the embedding, each
    # task's own tail at its cloned block.
    assert closed["munet"].images_per_run("embedding") >= 1 and closed["munet"].images_per_run("encoder_block") >= 1
    assert closed["onnx"].images_per_run("whole_path") >= 1 and "embedding" not in closed["onnx"].batches
    assert set(closed["munet_unfused"].batches) > set(closed["munet"].batches)  # each component runs on its own
    runs, images = closed["munet"].batches["embedding"]
    assert images == closed["munet"].requests  # one image per request, each through the embedding once
    cost = report.batch_cost
    assert cost is not None and cost.batch_sizes[0] == 1 and all(ms > 0 for ms in cost.ms_per_run)
    data = json.loads(json_path.read_text())
    assert set(data["ratios"]) >= {"throughput_vs_A", "throughput_vs_single_task", "memory_added_vs_own_bytes",
                                   "A_images_per_run", "compute_ceiling_vs_A", "throughput_vs_A_4_tasks",
                                   "ceiling_vs_A_with_overhead_4_tasks", "throughput_vs_A_2_clients",
                                   "ceiling_vs_A_with_overhead_2_clients"}
    assert data["ratios"]["compute_ceiling_vs_A"] >= data["ratios"]["ceiling_vs_A_with_overhead"] > 0
    assert all(r.server_cpu_ms and r.server_cpu_ms > 0 for r in closed.values())
    assert "| munet-serve | closed loop | 3 |" in md_path.read_text()


def test_the_kserve_mode_measures_both_protocols_on_one_server(tmp_path: Path) -> None:
    """The KServe v2 mode in miniature (3 tasks on the tiny root, second-long rounds): both protocols answer every
    request, and the report has each one's throughput and their ratio."""
    from benchmarks.serving.run import PROFILES

    profile = dataclasses.replace(PROFILES["mini"], duration_s=1.0, warmup_s=0.3)
    report = run_kserve(profile, rounds=1, workdir=tmp_path / "work")
    for protocol in ("native", "kserve"):
        assert report[protocol]["failed"] == 0, report[protocol]["errors"]
        assert report[protocol]["requests"] > 0 and report[protocol]["throughput_rps"] > 0
    assert report["ratio"] == pytest.approx(report["kserve"]["throughput_rps"] / report["native"]["throughput_rps"])
    json_path, md_path = kserve_write(report, tmp_path / "results", "mini")
    assert json.loads(json_path.read_text())["target_ratio"] == 0.9
    assert md_path.read_text() == kserve_markdown(report) + "\n"
    assert "KServe v2 ModelInfer" in md_path.read_text()


def test_most_clients_counts_every_closed_loop_run_of_a_profile() -> None:
    from benchmarks.serving.run import PROFILES

    assert PROFILES["quick"].concurrencies == () and PROFILES["quick"].most_clients == 32
    assert PROFILES["clients"].most_clients == 64 > PROFILES["clients"].concurrency
