"""Compare peak forecasters on a validation window: calibration and what the planner makes of them.

``python -m energy.peak_study --series PATH --format philly --start 2017-11-01 --end 2017-11-30``

Every forecaster is trained on the steps before ``--start`` and scored on
``[start, end]``: coverage / mean width / pinball loss of its 12-hour peak (see
:func:`predictor.models.demand.peak_calibration`), then the Foresight replay of
the window with that peak as the keep-on floor over a small grid of
``keep_buffer`` x ``min_on_dwell_s`` (everything else at the ``PlannerConfig``
defaults), reporting the best off-share within the limits (wake-ups/day and
short-step share). ``oracle_*`` rows use the *realised* future peak: they read
the future on purpose and only show the ceiling a perfect peak forecast would
reach under this planner; they are never a candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from energy.planner import PlannerConfig
from energy.planner_study import best_feasible, study_cli
from energy.replay import default_window
from predictor.models.demand import (
    PeakForecaster,
    demand_features,
    future_peak_rise,
    make_forecaster,
    peak_calibration,
)

KEEP_BUFFERS = (0, 5, 10, 15)
DWELLS_S = (12 * 3600, 24 * 3600)
DAY = 144


def rise_features(demand: pd.Series) -> pd.DataFrame:
    """``demand_features`` plus past rises: the rise over the same window a day / a week ago.

    ``yday_rise_W`` at ``t`` is ``max(demand[t-144+1 .. t-144+W]) - demand[t]`` (all in
    the past for ``W <= 144``); ``week_rise_W`` the same a week back; plus the 3-day
    trailing maximum and the summed absolute change over 6 h (volatility).
    """
    s = demand.astype("float64")
    f = demand_features(s)
    for w in (6, 18, 36, 72, 144):
        f[f"yday_rise_{w}"] = s.shift(DAY - w).rolling(w).max() - s
        f[f"week_rise_{w}"] = s.shift(7 * DAY - w).rolling(w).max() - s
    f["max_432"] = s.rolling(3 * DAY, min_periods=1).max() - s
    f["absdiff_36"] = s.diff().abs().rolling(36, min_periods=1).sum()
    return f


def _quantile_rise(
    demand: pd.Series, fit_until: int, window: int, quantile: float,
    features: Callable[[pd.Series], pd.DataFrame], params: dict[str, Any],
) -> np.ndarray:
    """Forecast rise per step from a quantile XGBoost fit on the first ``fit_until`` steps.

    Only rows whose whole label window lies inside them are used (no label leaks past).
    """
    from xgboost import XGBRegressor

    x, y = features(demand), future_peak_rise(demand, window)
    ok = y.notna().to_numpy() & (np.arange(len(demand)) < fit_until - window)
    model = XGBRegressor(objective="reg:quantileerror", quantile_alpha=quantile, **params)
    model.fit(x[ok], y[ok])
    return np.maximum(model.predict(x), 0.0)


def candidates(
    demand: pd.Series, n_train: int, window: int, params: dict[str, Any] | None = None
) -> dict[str, tuple[np.ndarray, float]]:
    """Peak levels per step (``demand + forecast rise``) and the nominal quantile of each.

    Fitted on the first ``n_train`` steps only (labels inside them); ``params`` are
    the XGBoost settings (default: :class:`PeakForecaster`'s).
    """
    params = params or PeakForecaster().params
    s = demand.astype("float64")
    level = s.to_numpy()
    train = s.iloc[:n_train]
    out: dict[str, tuple[np.ndarray, float]] = {}
    for q in (0.6, 0.7, 0.8, 0.9):
        out[f"peak_q{q}"] = (PeakForecaster(window, q, params).fit(train).predict(s).to_numpy(), q)
        out[f"rise_features_q{q}"] = (level + _quantile_rise(s, n_train, window, q,
                                                             rise_features, params), q)
    short = {(w, q): PeakForecaster(w, q, params).fit(train).predict(s).to_numpy()
             for w, q in ((window // 4, 0.9), (window // 2, 0.8), (window, 0.6), (window, 0.7))}
    q9, q8 = short[(window // 4, 0.9)], short[(window // 2, 0.8)]
    out["multi_h_q0.9_q0.6"] = (np.maximum(q9, short[(window, 0.6)]), 0.6)
    out["multi_h_q0.9_q0.7"] = (np.maximum(q9, short[(window, 0.7)]), 0.7)
    out["multi_h_q0.9_q0.8_q0.6"] = (np.maximum.reduce([q9, q8, short[(window, 0.6)]]), 0.6)
    cal = n_train - 7 * DAY  # split conformal: fit before the last training week, calibrate on it
    for q in (0.7, 0.8):
        rise = _quantile_rise(s, cal, window, q, demand_features, params)
        truth = future_peak_rise(s, window).to_numpy()[cal:n_train - window]
        shift = float(np.quantile(truth - rise[cal:n_train - window], q))
        out[f"conformal_q{q}"] = (level + np.maximum(rise + shift, 0.0), q)
    # online conformal: shift a median forecast by the quantile of the residuals of the
    # last 7 days of windows that have *completed* by t (causal; follows a drifting level)
    median = PeakForecaster(window, 0.5, params).fit(train).predict(s).to_numpy() - level
    resid = pd.Series(future_peak_rise(s, window).to_numpy() - median, index=s.index)
    for q in (0.8, 0.9):
        shift = resid.shift(window).rolling(7 * DAY, min_periods=DAY).quantile(q).fillna(0.0)
        out[f"online_conformal_q{q}"] = (level + np.maximum(median + shift.to_numpy(), 0.0), q)
    for w in (window, 2 * window, 4 * window):  # reads the future: the ceiling only
        ahead = pd.concat([s.shift(-k) for k in range(1, w + 1)], axis=1).max(axis=1)
        out[f"oracle_{w}"] = (np.maximum(level, ahead.fillna(s).to_numpy()), 1.0)
    return out


def study(
    steps: pd.DataFrame, start: str, end: str, *, max_wakeups_per_day: float = 0.45,
    max_short_share: float = 0.0025, progress: Callable[[str], None] | None = None,
    base: PlannerConfig | None = None, params: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per candidate: calibration on ``[start, end]`` and the best feasible replay."""
    say = progress or (lambda _msg: None)
    base = base or PlannerConfig()
    win = default_window(steps, start, end)
    history = steps.loc[: win.test_end]
    demand = history["demand"]
    n_train = int((history.index < win.test_start).sum())
    train = demand.iloc[:n_train]
    say(f"short-horizon forecaster on {n_train} steps before {win.test_start}")
    forecasts = make_forecaster("xgboost", tuple(range(1, base.horizon_steps + 1))).fit(
        train).predict(demand)
    say("peak forecasters")
    cands = candidates(demand, n_train, base.peak_window, params)
    configs = [replace(base, keep_buffer=kb, min_on_dwell_s=dwell)
               for kb in KEEP_BUFFERS for dwell in DWELLS_S]
    rows = []
    for name, (level, q) in cands.items():
        say(f"replaying {name}")
        row: dict[str, Any] = {"forecaster": name, **peak_calibration(
            pd.Series(level, index=history.index), demand, base.peak_window, q,
            win.test_start, win.test_end)}
        (best,) = best_feasible(history, forecasts, level, configs, win.test_start,
                                train.to_numpy(), [(max_wakeups_per_day, max_short_share)])
        if best is None:
            row["off_share"] = None
        else:
            cfg = best.pop("config")
            row.update({"keep_buffer": cfg.keep_buffer, "min_on_dwell_s": cfg.min_on_dwell_s,
                        **best})
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    study_cli(argv, __doc__.split("\n\n")[0], study,
              "{name}: peak forecasters, trained before {start}, scored {start} .. {end}")


if __name__ == "__main__":
    main()
