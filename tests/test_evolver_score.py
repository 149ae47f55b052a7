"""Scoring (docs/evolution.md §6): shared components are accounted 1/n_c, and the score is
quality x s^(accounted / P_root)."""

from __future__ import annotations

import pytest

from munet_serve.evolver.score import accounted_params, count_users, score, size_factor


def test_count_users_counts_tasks_not_slots():
    users = count_users([["emb", "blk", "head1"], ["emb", "blk2", "head2", "emb"]])
    assert users == {"emb": 2, "blk": 1, "head1": 1, "blk2": 1, "head2": 1}


def test_a_component_shared_by_three_tasks_counts_a_third():
    # this path: "emb" (900 params) also used by 2 other tasks -> 3 tasks -> 300;
    # "blk" (3000) used by no other task -> 3000; its new head (200) -> 200
    other_users = count_users([["emb", "x"], ["emb", "blk_other"]])
    accounted = accounted_params([("emb", 900), ("blk", 3000), ("new:head", 200)], other_users)
    assert accounted == pytest.approx(3500.0)


def test_score_with_a_scale_factor_below_one():
    # 0.8 x 0.9 ^ (3500 / 10000) = 0.8 x 0.963796... = 0.771037
    assert score(0.8, 3500.0, 10_000, 0.9) == pytest.approx(0.8 * 0.9**0.35, rel=1e-12)
    assert score(0.8, 3500.0, 10_000, 0.9) == pytest.approx(0.771037, abs=1e-6)
    # a smaller path scores higher at equal quality
    assert score(0.8, 1000.0, 10_000, 0.9) > score(0.8, 3500.0, 10_000, 0.9)


def test_scale_one_means_score_is_quality():
    assert score(0.625, 123456.0, 1000, 1.0) == 0.625
    assert size_factor(5e9, 1, 1.0) == 1.0


def test_paper_constant_ti3():
    # a path using all of the Ti-3L root alone plus a 10-class head: accounted = P_root - 386 + 1930
    p_root = 1_484_162
    accounted = accounted_params([("root", p_root - 386), ("head", 192 * 10 + 10)], {})
    assert score(1.0, accounted, p_root, 0.5) == pytest.approx(0.5 ** ((p_root - 386 + 1930) / p_root))


def test_invalid_scale_factor():
    with pytest.raises(ValueError):
        score(0.5, 1.0, 10, 0.0)
    with pytest.raises(ValueError):
        score(0.5, 1.0, 10, 1.5)
