"""The receding-horizon keep-on level: DP against brute force, causality, the study."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from energy_support import steps_frame

from energy.ceiling import budget_ceiling
from energy.mpc import budget_levels, envelope, first_levels, newsvendor_levels
from energy.mpc_study import study
from energy.planner import PlannerConfig

WINDOWS = [2, 5, 9, 14, 20]


def brute_first_levels(env: np.ndarray, price: float, max_wakes: int | None = None) -> set[float]:
    """First levels of every cheapest plan, enumerating all sets of wake-up boundaries."""
    bounds = [0, *WINDOWS]
    plans = []
    for cuts in itertools.product((0, 1), repeat=len(WINDOWS) - 1):
        ends = [i + 1 for i, c in enumerate(cuts) if c] + [len(WINDOWS)]
        if max_wakes is not None and len(ends) - 1 > max_wakes:
            continue
        cost = price * (len(ends) - 1) + sum(
            env[j - 1] * (bounds[j] - bounds[i]) for i, j in itertools.pairwise([0, *ends]))
        plans.append((cost, env[ends[0] - 1]))
    best = min(cost for cost, _ in plans)
    return {level for cost, level in plans if cost <= best + 1e-9}


def random_envelopes(n: int = 80) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.maximum.accumulate(rng.integers(0, 50, (n, len(WINDOWS))).astype(float), axis=1)


@pytest.mark.parametrize("price", [0.0, 10.0, 100.0, 1000.0])
def test_first_levels_match_brute_force(price: float) -> None:
    env = random_envelopes()
    for e, got in zip(env, first_levels(env, WINDOWS, price), strict=True):
        assert got in brute_first_levels(e, price)


def test_budget_levels_match_brute_force_and_loosen_with_the_budget() -> None:
    env = random_envelopes()
    levels = budget_levels(env, WINDOWS, 4)
    for k in range(5):
        for e, got in zip(env, levels[:, k], strict=True):
            assert got in brute_first_levels(e, 0.0, k)
    assert (np.diff(levels, axis=1) <= 0).all()  # more wake-ups allowed: a lower first level
    np.testing.assert_array_equal(levels[:, 0], env[:, -1])  # none left: hold the horizon max


def block_plan_share(env: np.ndarray, ends: list[int], total: float) -> float:
    """Off-share over the scenario of a plan whose segments end at blocks ``ends``."""
    bounds = [0, *WINDOWS]
    powered = [env[min(j for j in ends if j > i) - 1] for i in range(len(WINDOWS))
               for _ in range(bounds[i + 1] - bounds[i])]
    return float(np.mean((total - np.array(powered)) / total))


def test_block_plan_is_the_ceiling_on_the_envelope_scenario() -> None:
    """On the step scenario an envelope describes, waking at block ends loses nothing."""
    bounds = [0, *WINDOWS]
    for env in random_envelopes(20):
        scenario = np.repeat(env, np.diff(bounds))
        ceiling = budget_ceiling(scenario, np.full(len(scenario), 100.0), 2)["off_share"][2]
        best = max(block_plan_share(env, [*cuts, len(WINDOWS)], 100.0)
                   for k in range(3) for cuts in itertools.combinations(range(1, len(WINDOWS)), k))
        assert best == pytest.approx(ceiling, abs=1e-6)


def test_newsvendor_picks_the_quantile_whose_saving_beats_the_wake_up_price() -> None:
    levels = np.array([[10.0, 12.0, 30.0], [10.0, 11.0, 12.0]])  # q 0.5 / 0.8 / 0.95
    qs = (0.5, 0.8, 0.95)
    np.testing.assert_array_equal(newsvendor_levels(levels, qs, 10, 0.0), [10.0, 10.0])
    # price 100: q0.5 -> q0.8 costs 20 node-steps and saves 0.3 x 100 = 30 -> q0.8
    np.testing.assert_array_equal(newsvendor_levels(levels, qs, 10, 100.0), [12.0, 12.0])
    np.testing.assert_array_equal(newsvendor_levels(levels, qs, 10, 10_000.0), [30.0, 12.0])
    with pytest.raises(ValueError, match="increasing quantiles"):
        newsvendor_levels(levels, (0.8, 0.5, 0.95), 10, 1.0)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="increasing"):
        first_levels(np.zeros((3, 2)), [5, 5], 1.0)
    with pytest.raises(ValueError, match="envelope must be"):
        first_levels(np.zeros((3, 2)), [1, 2, 3], 1.0)
    with pytest.raises(ValueError, match="price"):
        first_levels(np.zeros((3, 3)), [1, 2, 3], -1.0)


def test_envelope_is_causal_and_monotone() -> None:
    demand = steps_frame(6)["demand"].astype(float)
    changed = demand.copy()
    changed.iloc[600:] += 30
    small = {"n_estimators": 20, "max_depth": 2, "n_jobs": 1, "random_state": 0}
    a = envelope(demand, demand.iloc[:500], (3, 6, 12), 0.8, small)
    b = envelope(changed, changed.iloc[:500], (3, 6, 12), 0.8, small)
    np.testing.assert_array_equal(a[:600], b[:600])
    assert (np.diff(a, axis=1) >= 0).all() and (a[:, 0] >= demand.to_numpy()).all()


def test_study_reports_a_feasible_setting_per_price() -> None:
    rows = study(steps_frame(6), "2021-03-05", "2021-03-06", max_wakeups_per_day=99,
                 max_short_share=1.0, base=PlannerConfig(peak_window=12, horizon_steps=3),
                 grid={"keep_buffer": (0, 10)}, windows=(3, 6, 12), quantiles=(0.8,),
                 horizons=(12,), prices=(10.0, 1000.0), newsvendor_windows=(6,))
    assert [(r["kind"], r["price"]) for r in rows] == [
        ("receding_horizon", 10.0), ("receding_horizon", 1000.0),
        ("newsvendor", 10.0), ("newsvendor", 1000.0)]
    assert all(r["margin_off_share"] is not None for r in rows)
    for cheap, dear in (rows[:2], rows[2:]):  # a dearer wake-up keeps more nodes on
        assert cheap["mean_level_minus_demand"] <= dear["mean_level_minus_demand"]
