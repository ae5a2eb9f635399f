"""Receding-horizon keep-on level: the ceiling's optimiser run on a forecast scenario.

At step ``t`` the scenario is an *envelope*: for windows ``W_1 < ... < W_m``
steps, an upper-quantile forecast ``E_i`` of ``max(demand[t+1 .. t+W_i])``
(:class:`~predictor.models.demand.PeakForecaster`, one per window), made
monotone (``E_i = max(E_1..E_i, demand[t])``). Between two wake-ups the best
plan keeps the highest demand still to come on (:mod:`energy.ceiling`); on a
monotone envelope, a segment of blocks ``a..b`` (steps ``W_{a-1}+1 .. W_b``)
keeps ``E_b``. The plan minimises node-steps on plus a price per wake-up,

    cost = sum over segments E_b x (W_b - W_{a-1})  +  price x (segments - 1),

by dynamic programming over the block boundaries (``m`` is small, the DP is
vectorised over all steps), and only its first decision is applied: the
level of its first segment, a candidate keep-on floor for the planner. ``price``
(in node-steps per wake-up) is the Lagrange multiplier of the wake-up budget.
Studied on the validation window by :mod:`energy.mpc_study`; not adopted (it
did not beat the default keep-on floor, see ``docs/energy.md``), so the replay
and the live controller do not use it.

:func:`budget_levels` does the same with a hard count instead of a price: the
first level of the cheapest plan with at most ``k`` wake-ups in the horizon,
for each ``k`` (a token bucket then picks the column per step).

:func:`newsvendor_levels` is the one-window form of the same trade-off: keep
the level ``Q_q`` (a quantile forecast of the peak of the next ``W`` steps) that
minimises ``Q_q x W + price x (1 - q)``, i.e. node-steps on plus the price of
the wake-up needed with probability ``1 - q``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from predictor.models.demand import PeakForecaster


def envelope(demand: pd.Series, train: pd.Series, windows: Sequence[int], quantile: float,
             params: dict[str, Any] | None = None) -> np.ndarray:
    """``(n, m)`` monotone upper-quantile forecast of the running max, one column per window.

    Each column is a :class:`PeakForecaster` (XGBoost ``params``, default its own)
    fitted on ``train`` only; the result is causal (row ``t`` uses steps ``<= t``)
    and non-decreasing along the windows.
    """
    _check_windows(windows)
    params = params or PeakForecaster().params
    cols = [PeakForecaster(w, quantile, params).fit(train).predict(demand).to_numpy()
            for w in windows]
    env = np.column_stack([demand.to_numpy(dtype=np.float64), *cols])
    return np.maximum.accumulate(env, axis=1)[:, 1:]


def _check_windows(windows: Sequence[int]) -> None:
    if not windows or any(b <= a for a, b in zip([0, *windows], windows, strict=False)):
        raise ValueError(f"windows must be positive and increasing, got {list(windows)}")


def _checked(env: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    _check_windows(windows)
    env = np.asarray(env, dtype=np.float64)
    if env.ndim != 2 or env.shape[1] != len(windows):
        raise ValueError(f"envelope must be (steps, {len(windows)}), got {env.shape}")
    return env


def first_levels(env: np.ndarray, windows: Sequence[int], price: float) -> np.ndarray:
    """Per step: the first segment's level of the cheapest plan at ``price`` per wake-up."""
    env = _checked(env, windows)
    if price < 0:
        raise ValueError(f"price must be >= 0, not {price}")
    bounds = np.array([0, *windows], dtype=np.float64)
    m = len(windows)
    value = [np.zeros(len(env))] * (m + 1)  # value[i]: cost of blocks i+1..m after a wake at W_i
    for i in range(m - 1, 0, -1):
        value[i] = np.min([env[:, j - 1] * (bounds[j] - bounds[i]) + price + value[j]
                           for j in range(i + 1, m + 1)], axis=0)
    first = np.column_stack([env[:, j - 1] * bounds[j] + value[j] for j in range(1, m + 1)])
    return env[np.arange(len(env)), np.argmin(first, axis=1)]


def budget_levels(env: np.ndarray, windows: Sequence[int], max_wakes: int) -> np.ndarray:
    """``(n, max_wakes + 1)``: the first level of the cheapest plan with at most ``k`` wake-ups."""
    env = _checked(env, windows)
    if max_wakes < 0:
        raise ValueError(f"max_wakes must be >= 0, not {max_wakes}")
    bounds = np.array([0, *windows], dtype=np.float64)
    m, n = len(windows), len(env)
    # best[k][i]: cost of blocks i+1..m after a wake at W_i, with at most k more wake-ups
    best = [[np.zeros(n) if i == m else env[:, m - 1] * (bounds[m] - bounds[i])
             for i in range(m + 1)]]
    for k in range(1, max_wakes + 1):
        row = [np.zeros(n)] * (m + 1)
        for i in range(m - 1, 0, -1):
            row[i] = np.min([env[:, j - 1] * (bounds[j] - bounds[i])
                             + (best[k - 1][j] if j < m else 0.0)
                             for j in range(i + 1, m + 1)], axis=0)
        best.append(row)
    out = np.empty((n, max_wakes + 1))
    for k in range(max_wakes + 1):
        first = np.column_stack([
            env[:, j - 1] * bounds[j] + (best[k - 1][j] if k > 0 and j < m else 0.0)
            + (np.inf if k == 0 and j < m else 0.0)
            for j in range(1, m + 1)])
        out[:, k] = env[np.arange(n), np.argmin(first, axis=1)]
    return out


def newsvendor_levels(levels: np.ndarray, quantiles: Sequence[float], window: int,
                      price: float) -> np.ndarray:
    """Per step: the level of ``levels`` (``(n, k)``, the peak of the next ``window`` steps
    at each of ``quantiles``) minimising ``level x window + price x (1 - q)``.

    Levels are made non-decreasing in ``q`` first (quantile crossing is repaired).
    """
    q = np.asarray(quantiles, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    if levels.ndim != 2 or levels.shape[1] != len(q) or np.any(np.diff(q) <= 0):
        raise ValueError(f"levels must be (steps, {len(q)}) for increasing quantiles, "
                         f"got {levels.shape} for {list(q)}")
    if price < 0 or window <= 0:
        raise ValueError(f"price must be >= 0 and window > 0, not {price}, {window}")
    levels = np.maximum.accumulate(levels, axis=1)
    cost = levels * window + price * (1.0 - q)
    return levels[np.arange(len(levels)), np.argmin(cost, axis=1)]
