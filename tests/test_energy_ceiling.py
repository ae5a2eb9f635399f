"""The clairvoyant ceiling under a wake-up budget, checked against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from energy.ceiling import budget_ceiling, plan_levels, shortfall_ceiling


def share_of(demand: np.ndarray, total: np.ndarray, wakes: list[int]) -> float:
    """Off-share of the plan that wakes at the end of ``wakes`` and keeps the future max on."""
    powered = np.zeros(len(demand))
    bounds = [-1, *sorted(wakes), len(demand) - 1]
    for a, b in itertools.pairwise(bounds):
        for t in range(a + 1, b + 1):
            powered[t] = demand[t : b + 1].max()
    return float(np.mean((total - powered) / total))


def test_matches_brute_force_over_every_wake_up_placement() -> None:
    rng = np.random.default_rng(0)
    for _ in range(60):
        n = int(rng.integers(2, 9))
        demand, total = rng.integers(0, 10, n).astype(float), np.full(n, 10.0)
        result = budget_ceiling(demand, total, 3)
        for k in range(4):
            best = max(share_of(demand, total, list(c))
                       for j in range(k + 1) for c in itertools.combinations(range(n - 1), j))
            assert result["off_share"][k] == pytest.approx(best, abs=1e-5)
        assert share_of(demand, total, result["wake_steps"]) == pytest.approx(
            result["off_share"][3], abs=1e-5)
        levels = plan_levels(demand, result["wake_steps"])
        assert (levels >= demand).all()  # never short
        assert np.mean((total - levels) / total) == pytest.approx(result["off_share"][3],
                                                                  abs=1e-5)


def test_one_wake_up_splits_a_drop_then_rise() -> None:
    demand, total = np.array([8.0, 2, 2, 2, 9]), np.full(5, 10.0)
    result = budget_ceiling(demand, total, 1)
    assert result["off_share"][0] == pytest.approx(0.1)  # all kept at 9
    assert result["wake_steps"] == [3] and result["off_share"][1] == pytest.approx(0.54)


def test_bad_input_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="equal in length"):
        budget_ceiling(np.ones(3), np.ones(2), 1)
    with pytest.raises(ValueError, match="max_wakes"):
        budget_ceiling(np.ones(3), np.ones(3), -1)


def test_shortfall_budget_shaves_a_one_step_spike() -> None:
    demand, total = np.array([2.0, 2, 9, 2, 2]), np.full(5, 10.0)
    result = shortfall_ceiling(demand, total, 0, 1)
    assert result["off_share"][0] == pytest.approx(0.38)  # 9 kept on until the spike
    assert result["off_share"][1] == pytest.approx(0.8) and result["short_steps"] == [2]


def test_shortfall_plans_are_feasible_and_never_worse() -> None:
    rng = np.random.default_rng(1)
    for _ in range(30):
        n = int(rng.integers(3, 40))
        demand, total = rng.integers(0, 10, n).astype(float), np.full(n, 10.0)
        plain = budget_ceiling(demand, total, 2)
        result = shortfall_ceiling(demand, total, 2, 3)
        shares = [result["off_share"][s] for s in range(4)]
        assert shares[0] == pytest.approx(plain["off_share"][2])
        assert all(b >= a for a, b in itertools.pairwise(shares))
        levels = result["levels"]
        short = np.flatnonzero(demand > levels).tolist()
        assert short == result["short_steps"] and len(short) <= 3
        assert len(result["wake_steps"]) <= 2
        assert np.mean((total - levels) / total) == pytest.approx(shares[3], abs=1e-5)
    with pytest.raises(ValueError, match="max_short"):
        shortfall_ceiling(np.ones(3), np.ones(3), 1, -1)
