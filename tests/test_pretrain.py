"""The offline pretrained root: a short real pretraining run on the CJK source, loaded by the real root builder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from munet_serve.builtin import load
from munet_serve.evolver.config import ROOT_PRESETS, RootConfig
from munet_serve.evolver.pretrain import CHARS_ROOT, PretrainConfig, cjk_checkpoint, main, pretrain_root
from munet_serve.evolver.root import build_root

TINY = RootConfig(
    model="vit_tiny_patch16_224",
    image_size=32,
    overrides={"embed_dim": 64, "depth": 2, "num_heads": 2, "patch_size": 8},
)


def test_source_task_shares_no_class_with_any_benchmark_task() -> None:
    from munet_serve.builtin import names

    source = set(load("source/cjk").label_names)
    assert len(source) >= 100
    for name in names():
        if name.startswith(("chars/", "scans/")):
            try:
                labels = set(load(name).label_names)
            except Exception:  # a dataset whose package is absent here has no labels to compare
                continue
            assert not source & labels, name


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    torch.set_num_threads(2)
    config = PretrainConfig(root=TINY, classes=20, steps=100, batch_size=64, warmup_steps=10)
    out = tmp_path_factory.mktemp("pretrain") / "root.safetensors"
    return out, pretrain_root(config, out, log_every=0)


def test_pretraining_learns_the_source_and_writes_a_loadable_backbone(pretrained) -> None:  # type: ignore[no-untyped-def]
    out, result = pretrained
    assert result.path == out and out.is_file() and result.classes == 20 and result.steps == 100
    # 20 classes: chance is 0.05; 100 steps already learn the glyphs, also in fonts training never saw
    assert result.validation_accuracy > 0.3
    assert result.test_accuracy > 0.15
    with safe_open(str(out), "pt") as f:
        keys = set(f.keys())
        meta = f.metadata()
    assert not any(k.startswith("head") for k in keys) and "cls_token" in keys and "blocks.1.mlp.fc2.weight" in keys
    assert meta["source"] == "source/cjk"
    assert float(meta["test_accuracy"]) == pytest.approx(result.test_accuracy, abs=1e-4)

    root = build_root(dataclasses.replace(TINY, checkpoint=out))
    random = build_root(dataclasses.replace(TINY, random_init=True))
    assert "checkpoint=root.safetensors" in root.source
    with safe_open(str(out), "pt") as f:
        assert torch.equal(dict(root.components)["cls"].cls_token, f.get_tensor("cls_token"))
    assert not torch.equal(dict(root.components)["cls"].cls_token, dict(random.components)["cls"].cls_token)


def test_pretraining_is_deterministic(tmp_path: Path, pretrained) -> None:  # type: ignore[no-untyped-def]
    out, _ = pretrained
    config = PretrainConfig(root=TINY, classes=20, steps=100, batch_size=64, warmup_steps=10)
    again = pretrain_root(config, tmp_path / "again.safetensors", log_every=0)
    with safe_open(str(out), "pt") as a, safe_open(str(again.path), "pt") as b:
        for key in a.keys():
            assert np.array_equal(a.get_tensor(key).numpy(), b.get_tensor(key).numpy()), key


def test_cached_checkpoint_is_reused_and_keyed_by_config(tmp_path: Path, pretrained) -> None:  # type: ignore[no-untyped-def]
    config = PretrainConfig(root=TINY, classes=20, steps=5, batch_size=16, warmup_steps=1)
    first = cjk_checkpoint(tmp_path, config)
    stamp = first.stat().st_mtime_ns
    assert cjk_checkpoint(tmp_path, config) == first and first.stat().st_mtime_ns == stamp
    other = cjk_checkpoint(tmp_path, dataclasses.replace(config, seed=1))
    assert other != first and other.is_file()


def test_chars_preset_is_the_pretrained_architecture() -> None:
    preset = ROOT_PRESETS["chars-cjk"]
    assert preset.weights == "cjk-glyphs" and CHARS_ROOT.weights is None
    assert dataclasses.replace(CHARS_ROOT, weights="cjk-glyphs") == preset


def test_cli_writes_the_checkpoint(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "cli.safetensors"
    assert main(["--out", str(out), "--steps", "2", "--batch-size", "8", "--classes", "5", "--threads", "2"]) == 0
    assert out.is_file() and '"steps": 2' in capsys.readouterr().out
