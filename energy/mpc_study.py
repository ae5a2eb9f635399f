"""Receding-horizon (model-predictive) keep-on levels on a validation window.

``python -m energy.mpc_study --series PATH --format philly --start 2017-11-01 --end 2017-11-30``

Envelopes (:func:`energy.mpc.envelope`) are fitted on the steps before
``--start``; for each quantile x horizon ``D`` x price per wake-up, the first
level of the receding-horizon plan (:func:`energy.mpc.first_levels`) is the
keep-on floor of the real planner, replayed on ``[start, end]`` over a grid of
``keep_buffer x wake_margin x min_on_dwell_s x release_quiet_steps``
(:func:`energy.planner_study.best_feasible`). Rows of kind ``newsvendor`` do
the same with :func:`energy.mpc.newsvendor_levels` (one peak window, the
quantile chosen per step by price). Per setting: the best off-share within the
limits (<= 0.45 wake-ups/day, <= 0.25% short), at the exact limits (<= 0.5/day,
<= 0.3%) and with twice the wake-up budget (<= 1/day, <= 0.3%).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import product
from typing import Any

import numpy as np

from energy.mpc import envelope, first_levels, newsvendor_levels
from energy.planner import PlannerConfig
from energy.planner_study import best_feasible, study_cli
from energy.replay import default_window
from predictor.models.demand import PeakForecaster, make_forecaster

WINDOWS = (6, 18, 36, 72, 144, 288, 432)  # 1 h .. 72 h
QUANTILES = (0.7, 0.8, 0.9)
HORIZONS = (144, 288, 432)  # D = 24 / 48 / 72 h
PRICES = (500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0, 32000.0, 64000.0)
NEWSVENDOR_QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
NEWSVENDOR_WINDOWS = (72, 144, 288)  # 12 / 24 / 48 h
GRID = {
    "keep_buffer": (0, 5, 10),
    "wake_margin": (25, 40),
    "min_on_dwell_s": (6 * 3600, 24 * 3600),
    "release_quiet_steps": (0, 36),
}


def study(
    steps: Any, start: str, end: str, *, max_wakeups_per_day: float = 0.45,
    max_short_share: float = 0.0025, progress: Callable[[str], None] | None = None,
    base: PlannerConfig | None = None, grid: dict[str, tuple[Any, ...]] | None = None,
    windows: tuple[int, ...] = WINDOWS, quantiles: tuple[float, ...] = QUANTILES,
    horizons: tuple[int, ...] = HORIZONS, prices: tuple[float, ...] = PRICES,
    newsvendor_windows: tuple[int, ...] = NEWSVENDOR_WINDOWS,
) -> list[dict[str, Any]]:
    """One row per (kind, quantile, horizon, price): the best replays within the limits."""
    say = progress or (lambda _msg: None)
    base, grid = base or PlannerConfig(), grid or GRID
    win = default_window(steps, start, end)
    history = steps.loc[: win.test_end]
    demand = history["demand"].astype("float64")
    n_train = int((history.index < win.test_start).sum())
    train = demand.iloc[:n_train]
    say(f"forecasters on {n_train} steps before {win.test_start}")
    forecasts = make_forecaster("xgboost", tuple(range(1, base.horizon_steps + 1))).fit(
        train).predict(demand)
    configs = [replace(base, **dict(zip(grid, values, strict=True)))
               for values in product(*grid.values())]
    limits = [(max_wakeups_per_day, max_short_share), (0.5, 0.003), (1.0, 0.003)]
    level_sets: list[tuple[dict[str, Any], np.ndarray]] = []
    for q in quantiles:
        say(f"envelope q{q} over {len(windows)} windows")
        env = envelope(demand, train, windows, q)
        for horizon, price in product(horizons, prices):
            cols = [i for i, w in enumerate(windows) if w <= horizon]
            level_sets.append(({"kind": "receding_horizon", "quantile": q,
                                "horizon_steps": horizon, "price": price},
                               first_levels(env[:, cols], [windows[i] for i in cols], price)))
    for horizon in newsvendor_windows:
        say(f"newsvendor: {len(NEWSVENDOR_QUANTILES)} quantiles of the {horizon}-step peak")
        peaks = np.column_stack([PeakForecaster(horizon, q).fit(train).predict(demand).to_numpy()
                                 for q in NEWSVENDOR_QUANTILES])
        level_sets += [({"kind": "newsvendor", "quantile": None, "horizon_steps": horizon,
                         "price": price},
                        newsvendor_levels(peaks, NEWSVENDOR_QUANTILES, horizon, price))
                       for price in prices]
    rows = []
    for row, level in level_sets:
        say(f"{row}: {len(configs)} settings")
        found = best_feasible(history, forecasts, level, configs, win.test_start,
                              train.to_numpy(), limits)
        row["mean_level_minus_demand"] = round(float(np.mean(
            (level - demand.to_numpy())[n_train:])), 1)
        for tag, hit in zip(("margin", "exact", "budget_1/day"), found, strict=True):
            if hit is None:
                row[f"{tag}_off_share"] = None
                continue
            cfg = hit.pop("config")
            row.update({f"{tag}_{k}": v for k, v in hit.items()})
            if tag == "margin":
                row["margin_setting"] = {k: getattr(cfg, k) for k in grid}
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    study_cli(argv, __doc__.split("\n\n")[0], study,
              "{name}: receding-horizon keep-on, trained before {start}, replayed {start} .. {end}")


if __name__ == "__main__":
    main()
