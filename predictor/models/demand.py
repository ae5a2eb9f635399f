"""Node-demand forecaster: busy nodes per 10-minute step, ``h`` steps ahead.

Every feature of step ``t`` is computed from steps ``<= t`` only (lags, trailing
rolling statistics, calendar of ``t``), and the model for horizon ``h`` learns the
change ``demand[t + h] - demand[t]``. So a forecast for ``t + h`` uses data up to
``t`` and nothing later, whatever the caller passes in. One XGBoost regressor per
horizon (direct strategy); a pseudo-Huber loss keeps the telemetry glitches of
real clusters (whole-cluster drops to zero for a step) from steering the fit.
Each horizon's forecast change is then scaled by a factor in [0, 1] fitted on
rolling-origin folds of the training data (:func:`shrink_factors`): where the
model's changes do not beat "no change" out of sample (small, jumpy clusters)
the forecast falls back towards persistence instead of adding noise.

:class:`PersistenceForecaster` (forecast = last value) shares the interface, so
the evaluation and the controller run baselines through the same code path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

KINDS = ("xgboost", "persistence")
DEFAULT_HORIZONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
_ROLL_WINDOWS = (6, 36, 144)
# Rolling-origin folds for the shrink factors: fit on the first a, score on a..b.
SHRINK_FOLDS: tuple[tuple[float, float], ...] = ((0.5, 0.75), (0.75, 1.0))
_MIN_TRAIN = 2 * 144  # two days of 10-minute steps
DEFAULT_PARAMS: dict[str, Any] = {
    "n_estimators": 300,
    "max_depth": 3,
    "learning_rate": 0.02,
    "subsample": 0.7,
    "colsample_bytree": 0.7,
    "min_child_weight": 50,
    "objective": "reg:pseudohubererror",
    "huber_slope": 10.0,
    "n_jobs": 2,
    "random_state": 0,
}


class Forecaster(Protocol):
    """What the controller and the evaluation need from a demand forecaster."""

    kind: str
    horizons: tuple[int, ...]

    def fit(self, demand: pd.Series) -> Forecaster: ...

    def predict(self, demand: pd.Series) -> pd.DataFrame: ...


def demand_features(demand: pd.Series) -> pd.DataFrame:
    """Features of each step from that step and earlier ones only (no centred windows)."""
    s = demand.astype("float64")
    feats: dict[str, pd.Series] = {"level": s}
    for k in (1, 2, 3, 6):
        feats[f"diff_{k}"] = s - s.shift(k)
    for w in _ROLL_WINDOWS:
        roll = s.rolling(w, min_periods=1)
        feats[f"mean_{w}"] = roll.mean() - s
        feats[f"max_{w}"] = roll.max() - s
        feats[f"min_{w}"] = roll.min() - s
        feats[f"std_{w}"] = roll.std()
    feats["day_ago"] = s.shift(144) - s
    index = pd.DatetimeIndex(s.index)
    feats["hour"] = pd.Series(index.hour + index.minute / 60.0, index=s.index)
    feats["weekday"] = pd.Series(index.day_of_week, index=s.index)
    return pd.DataFrame(feats)


def _check(demand: pd.Series) -> pd.Series:
    if not isinstance(demand.index, pd.DatetimeIndex):
        raise ValueError("demand must be indexed by time (a DatetimeIndex)")
    if demand.isna().any():
        raise ValueError("demand has missing values: fill gaps (energy.series.to_steps) first")
    return demand


@dataclass
class PersistenceForecaster:
    """Baseline: the demand ``h`` steps ahead equals the demand now."""

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    kind: str = "persistence"

    def fit(self, demand: pd.Series) -> PersistenceForecaster:
        return self

    def predict(self, demand: pd.Series) -> pd.DataFrame:
        """Row ``t``, column ``h``: the forecast for step ``t + h`` made at ``t``."""
        s = _check(demand).astype("float64")
        return pd.DataFrame({h: s.to_numpy() for h in self.horizons}, index=s.index)

    def save(self, path: str | Path) -> None:
        _write_meta(Path(path), {"kind": self.kind, "horizons": list(self.horizons)})


@dataclass
class DemandForecaster:
    """XGBoost, one model per horizon, on the change from the current demand."""

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    params: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_PARAMS))
    kind: str = "xgboost"
    models: dict[int, Any] = field(default_factory=dict, repr=False)
    trained_until: str | None = None
    shrink: dict[int, float] = field(default_factory=dict)
    """Per horizon, the factor on the model's forecast change (1.0 = as fitted)."""

    def fit(self, demand: pd.Series, *, shrink: bool = True) -> DemandForecaster:
        """Train on a demand series (one row per step, no gaps); ``shrink=False``
        keeps every horizon's change as fitted (factor 1)."""
        s = _check(demand).astype("float64")
        if len(s) < _MIN_TRAIN:
            raise ValueError(f"need at least 2 days of steps to train, got {len(s)}")
        self.shrink = shrink_factors(self, s) if shrink else {h: 1.0 for h in self.horizons}
        self.models = self._fit_models(s)
        self.trained_until = str(s.index[-1])
        return self

    def _fit_models(self, s: pd.Series) -> dict[int, Any]:
        from xgboost import XGBRegressor

        x = demand_features(s)
        models = {}
        for h in self.horizons:
            y = s.shift(-h) - s
            ok = y.notna().to_numpy()
            models[h] = XGBRegressor(**self.params).fit(x[ok], y[ok])
        return models

    def predicted_change(self, demand: pd.Series) -> pd.DataFrame:
        """Row ``t``, column ``h``: the model's change ``demand[t + h] - demand[t]``, unscaled."""
        if not self.models:
            raise ValueError("DemandForecaster is not fitted")
        x = demand_features(_check(demand).astype("float64"))
        return pd.DataFrame({h: self.models[h].predict(x) for h in self.horizons}, index=x.index)

    def predict(self, demand: pd.Series) -> pd.DataFrame:
        """Row ``t``, column ``h``: the forecast for step ``t + h`` made at ``t`` (clipped >= 0)."""
        change = self.predicted_change(demand)
        level = demand.astype("float64").to_numpy()
        out = {h: np.maximum(level + self.shrink.get(h, 1.0) * change[h].to_numpy(), 0.0)
               for h in self.horizons}
        return pd.DataFrame(out, index=change.index)

    def save(self, path: str | Path) -> None:
        """Write the models (XGBoost JSON) and metadata into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for h, model in self.models.items():
            model.save_model(path / f"h{h}.json")
        meta = {
            "kind": self.kind,
            "horizons": list(self.horizons),
            "params": self.params,
            "trained_until": self.trained_until,
            "shrink": {str(h): w for h, w in self.shrink.items()},
        }
        _write_meta(path, meta)


def shrink_factors(model: DemandForecaster, demand: pd.Series) -> dict[int, float]:
    """Per horizon, the least-squares factor in [0, 1] on the forecast change, out of sample.

    For each fold ``(a, b)`` of :data:`SHRINK_FOLDS` a copy of ``model`` is trained
    on the first share ``a`` of ``demand`` and predicts the changes of the steps in
    ``a .. b``; the factor minimises the squared error of ``level + factor x change``
    over all folds (0 = persistence, 1 = the model as fitted). Folds too short to
    train (2 days) or to score (1 day) are skipped; with none left the factor is 1.
    """
    s = demand.to_numpy(dtype="float64")
    n = len(s)
    pred: dict[int, list[np.ndarray]] = {h: [] for h in model.horizons}
    real: dict[int, list[np.ndarray]] = {h: [] for h in model.horizons}
    for a, b in SHRINK_FOLDS:
        lo, hi = max(_MIN_TRAIN, int(n * a)), int(n * b)
        if hi - lo < 144:
            continue
        fold = DemandForecaster(horizons=model.horizons, params=model.params)
        fold.models = fold._fit_models(demand.iloc[:lo])
        change = fold.predicted_change(demand.iloc[:hi])
        for h in model.horizons:
            pred[h].append(change[h].to_numpy()[lo:hi - h])
            real[h].append(s[lo + h:hi] - s[lo:hi - h])
    factors = {}
    for h in model.horizons:
        p = np.concatenate(pred[h]) if pred[h] else np.empty(0)
        y = np.concatenate(real[h]) if real[h] else np.empty(0)
        denom = float(p @ p)
        factors[h] = 1.0 if denom <= 0 else float(np.clip(float(p @ y) / denom, 0.0, 1.0))
    return factors


@dataclass
class PeakForecaster:
    """A high quantile of the peak demand over the next ``window`` steps.

    Learns ``max(demand[t+1 .. t+window]) - demand[t]`` with XGBoost's quantile
    loss; ``predict`` returns the peak *level* per step. The planner keeps this
    many nodes (plus a buffer) on, so it powers down only as far as the coming
    hours are likely to allow. Training rows are those whose whole window lies
    inside the training series (no label reaches past it).
    """

    window: int = 36
    quantile: float = 0.8
    params: dict[str, Any] = field(default_factory=lambda: {
        "n_estimators": 200, "max_depth": 3, "learning_rate": 0.03, "min_child_weight": 50,
        "subsample": 0.8, "n_jobs": 2, "random_state": 0,
    })
    kind: str = "peak"
    model: Any = field(default=None, repr=False)

    def fit(self, demand: pd.Series) -> PeakForecaster:
        from xgboost import XGBRegressor

        s = _check(demand).astype("float64")
        if len(s) < 2 * 144 + self.window:
            raise ValueError(f"need at least 2 days plus {self.window} steps to train")
        y = future_peak_rise(s, self.window)
        ok = y.notna().to_numpy()
        self.model = XGBRegressor(objective="reg:quantileerror", quantile_alpha=self.quantile,
                                  **self.params)
        self.model.fit(demand_features(s)[ok], y[ok])
        return self

    def predict(self, demand: pd.Series) -> pd.Series:
        """Per step ``t``: the forecast peak level of ``t+1 .. t+window``, made at ``t``."""
        if self.model is None:
            raise ValueError("PeakForecaster is not fitted")
        s = _check(demand).astype("float64")
        rise = np.maximum(self.model.predict(demand_features(s)), 0.0)
        return pd.Series(s.to_numpy() + rise, index=s.index)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_model(path / "peak.json")
        _write_meta(path, {"kind": self.kind, "window": self.window, "quantile": self.quantile,
                           "params": self.params})


def future_peak_rise(demand: pd.Series, window: int) -> pd.Series:
    """Per step ``t``: ``max(demand[t+1 .. t+window]) - demand[t]`` (NaN past the end).

    The target of :class:`PeakForecaster`, and the truth its forecasts are scored on.
    """
    s = demand.astype("float64")
    future = pd.concat([s.shift(-k) for k in range(1, window + 1)], axis=1)
    return future.max(axis=1, skipna=False) - s


def peak_calibration(
    peak_level: pd.Series,
    demand: pd.Series,
    window: int,
    quantile: float,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> dict[str, float]:
    """How a forecast peak level over the next ``window`` steps fared in ``[start, end]``.

    ``coverage``: share of steps whose realised peak stayed at or below the forecast
    (a calibrated ``quantile`` forecast covers that share); ``mean_width``: mean
    forecast rise above the current demand; ``mean_rise``: mean realised rise;
    ``pinball``: quantile loss at ``quantile`` (lower is better). Steps whose window
    runs past the series end are not scored.
    """
    s = demand.astype("float64")
    truth = future_peak_rise(s, window).loc[start:end]
    width = (peak_level.astype("float64") - s).loc[start:end]
    ok = truth.notna().to_numpy()
    if not ok.any():
        raise ValueError(f"no complete {window}-step windows between {start} and {end}")
    y, p = truth.to_numpy()[ok], width.to_numpy()[ok]
    err = y - p
    return {
        "coverage": round(float(np.mean(y <= p)), 3),
        "mean_width": round(float(np.mean(p)), 1),
        "mean_rise": round(float(np.mean(y)), 1),
        "pinball": round(float(np.mean(np.maximum(quantile * err, (quantile - 1) * err))), 2),
    }


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    from predictor.state import atomic_write_json

    path.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path / "demand.json", meta)


def load(path: str | Path) -> DemandForecaster | PersistenceForecaster | PeakForecaster:
    """Load a forecaster written by ``save``; ValueError naming what is wrong."""
    path = Path(path)
    try:
        meta = json.loads((path / "demand.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a saved demand forecaster ({exc})") from exc
    if meta.get("kind") == "peak":
        from xgboost import XGBRegressor

        peak = PeakForecaster(window=int(meta["window"]), quantile=float(meta["quantile"]),
                              params=meta["params"])
        peak.model = XGBRegressor()
        peak.model.load_model(path / "peak.json")
        return peak
    horizons = tuple(int(h) for h in meta.get("horizons", DEFAULT_HORIZONS))
    if meta.get("kind") == "persistence":
        return PersistenceForecaster(horizons=horizons)
    if meta.get("kind") != "xgboost":
        raise ValueError(f"{path}: unknown forecaster kind {meta.get('kind')!r}")
    from xgboost import XGBRegressor

    models = {}
    for h in horizons:
        model = XGBRegressor()
        model.load_model(path / f"h{h}.json")
        models[h] = model
    return DemandForecaster(
        horizons=horizons,
        params=meta.get("params", dict(DEFAULT_PARAMS)),
        models=models,
        trained_until=meta.get("trained_until"),
        shrink={int(h): float(w) for h, w in meta.get("shrink", {}).items()},
    )


def make_forecaster(
    kind: str = "xgboost", horizons: tuple[int, ...] = DEFAULT_HORIZONS
) -> DemandForecaster | PersistenceForecaster:
    """A fresh forecaster of ``kind`` (``xgboost`` or ``persistence``)."""
    if kind == "xgboost":
        return DemandForecaster(horizons=horizons)
    if kind == "persistence":
        return PersistenceForecaster(horizons=horizons)
    raise ValueError(f"unknown forecaster {kind!r}; known: {', '.join(KINDS)}")


def horizon_rmse(
    forecasts: pd.DataFrame,
    demand: pd.Series,
    horizon: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
    scored: pd.Series | None = None,
) -> float:
    """RMSE of the ``horizon``-step forecasts whose *target* step lies in ``[start, end]``.

    ``forecasts`` comes from ``predict`` on a series covering at least
    ``start - horizon`` .. ``end``; ``scored`` (bool per step) drops missing steps.
    """
    made_for = forecasts[horizon].shift(horizon)  # row = target step, value made h steps before
    err = (made_for - demand.astype("float64")).loc[start:end]
    if scored is not None:
        err = err[scored.loc[start:end].to_numpy()]
    err = err.dropna()
    if err.empty:
        raise ValueError(f"no {horizon}-step forecasts to score between {start} and {end}")
    return float(np.sqrt(np.mean(err.to_numpy() ** 2)))
