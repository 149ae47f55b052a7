"""The evolver's command line and configs: flags become an EvolverConfig; presets and hparams are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from munet_serve.evolver.__main__ import build_parser, config_from_args
from munet_serve.evolver.config import BUDGET_PRESETS, ROOT_PRESETS, Hyperparameters, TrainBudget


def test_flags_make_a_config():
    args = build_parser().parse_args([
        "--server", "10.0.0.1:6000", "--root-preset", "demo", "--root-option", "depth=4",
        "--root-option", "qkv_bias=false", "--root-layers", "2", "--random-root", "--budget", "tiny",
        "--cache-dir", "/tmp/x", "--seed", "7", "--once",
    ])
    config = config_from_args(args)
    assert config.server == "10.0.0.1:6000" and config.once and config.seed == 7
    assert config.cache_dir == Path("/tmp/x") and config.budget == BUDGET_PRESETS["tiny"]
    root = config.root
    assert root.overrides == {"embed_dim": 192, "depth": 4, "num_heads": 3, "patch_size": 4, "qkv_bias": False}
    assert root.num_layers == 2 and root.random_init and not root.pretrained and root.seed == 7


def test_checkpoint_flag():
    args = build_parser().parse_args(["--root-checkpoint", "w.npz", "--root-model", "vit_base_patch16_224"])
    config = config_from_args(args)
    assert config.root.checkpoint == Path("w.npz") and config.root.model == "vit_base_patch16_224"


def test_bad_root_option_is_refused():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--root-option", "depth"])


def test_budget_k_follows_the_paper():
    chars = BUDGET_PRESETS["paper-chars"]
    assert chars.steps_between_validations(60_000) == 100 and chars.steps_between_validations(10_000) == 20
    assert chars.total_steps(60_000) == 500
    assert BUDGET_PRESETS["paper-vdd"].total_steps(10**6) == 6000
    with pytest.raises(ValueError):
        TrainBudget(batch_size=0, max_steps_between_validations=1, validations=1, max_validation_examples=1)


def test_presets_and_hparams_round_trip():
    assert set(ROOT_PRESETS) >= {"tiny-test", "demo", "munet-chars", "munet-vdd"}
    h = Hyperparameters(adapter_layers=(0, 2), opt_momentum=None)
    served = {k: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in h.to_dict().items()}
    served["adapter_layers"] = [0.0, 2.0]  # a protobuf Struct gives numbers back as floats
    assert Hyperparameters.from_dict({**served, "num_classes": 10.0}) == h
    with pytest.raises(ValueError):
        Hyperparameters(opt_lr_schedule="linear")
