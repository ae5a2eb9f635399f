"""The node-demand forecaster: causal features, baselines, persistence of models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.models.demand import (
    DemandForecaster,
    PersistenceForecaster,
    demand_features,
    horizon_rmse,
    load,
    make_forecaster,
)

SMALL = {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.1, "n_jobs": 1}


def daily_series(days: int = 8, seed: int = 0) -> pd.Series:
    """A daily cycle plus noise: a pattern persistence cannot see coming."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2021-03-01", periods=days * 144, freq="10min")
    phase = 2 * np.pi * np.arange(len(index)) / 144
    values = 100 + 40 * np.sin(phase) + rng.normal(0, 2, len(index))
    return pd.Series(np.round(values), index=index)


def test_features_use_only_the_past() -> None:
    s = daily_series(3)
    changed = s.copy()
    changed.iloc[200:] += 500
    a, b = demand_features(s), demand_features(changed)
    pd.testing.assert_frame_equal(a.iloc[:200], b.iloc[:200])


def test_predictions_at_t_ignore_data_after_t() -> None:
    s = daily_series(6)
    model = DemandForecaster(horizons=(1, 6), params=SMALL).fit(s.iloc[:576])
    future_changed = s.copy()
    future_changed.iloc[700:] = 0
    a, b = model.predict(s), model.predict(future_changed)
    pd.testing.assert_frame_equal(a.iloc[:700], b.iloc[:700])


def test_persistence_forecasts_the_current_value() -> None:
    s = daily_series(1)
    fc = PersistenceForecaster(horizons=(1, 3)).fit(s).predict(s)
    assert (fc[1] == s).all() and (fc[3] == s).all()
    expected = float(np.sqrt(np.mean((s.shift(3) - s).loc[s.index[10]:] ** 2)))
    assert horizon_rmse(fc, s, 3, s.index[10], s.index[-1]) == pytest.approx(expected)


def test_xgboost_beats_persistence_on_a_daily_cycle() -> None:
    s = daily_series(10)
    split = s.index[7 * 144]
    model = make_forecaster("xgboost", horizons=(6,))
    model.params.update(SMALL)
    model.fit(s.loc[: split - pd.Timedelta("10min")])
    xgb = horizon_rmse(model.predict(s), s, 6, split, s.index[-1])
    base = horizon_rmse(PersistenceForecaster(horizons=(6,)).predict(s), s, 6, split, s.index[-1])
    assert xgb < 0.5 * base


def test_changes_that_do_not_beat_persistence_out_of_sample_are_shrunk_to_it() -> None:
    cycle = DemandForecaster(horizons=(1, 6), params=SMALL).fit(daily_series(10))
    assert min(cycle.shrink.values()) > 0.8  # a daily cycle: the model's changes are kept
    rng = np.random.default_rng(1)  # a walk between 40 and 60 nodes: no change is predictable
    index = pd.date_range("2021-03-01", periods=14 * 144, freq="10min")
    level = [50.0]
    for step in rng.choice([-1.0, 0.0, 1.0], len(index) - 1):
        level.append(min(60.0, max(40.0, level[-1] + step)))
    walk = pd.Series(level, index=index)
    split = index[10 * 144]
    model = DemandForecaster(horizons=(1, 6), params=SMALL).fit(walk.loc[:split])
    assert max(model.shrink.values()) < 0.3
    as_fitted = DemandForecaster(horizons=(1, 6), params=SMALL).fit(walk.loc[:split], shrink=False)
    assert as_fitted.shrink == {1: 1.0, 6: 1.0}
    rmse = {name: horizon_rmse(m.predict(walk), walk, 6, split, index[-1])
            for name, m in (("shrunk", model), ("as_fitted", as_fitted),
                            ("persistence", PersistenceForecaster(horizons=(6,))))}
    assert rmse["shrunk"] < rmse["as_fitted"]
    assert rmse["shrunk"] < 1.01 * rmse["persistence"]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    s = daily_series(5)
    model = DemandForecaster(horizons=(1, 2), params=SMALL).fit(s)
    assert set(model.shrink) == {1, 2}
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.shrink == model.shrink
    pd.testing.assert_frame_equal(model.predict(s), again.predict(s))
    PersistenceForecaster().save(tmp_path / "p")
    assert isinstance(load(tmp_path / "p"), PersistenceForecaster)


def test_bad_inputs_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown forecaster"):
        make_forecaster("lstm")
    with pytest.raises(ValueError, match="not a saved demand forecaster"):
        load(tmp_path)
    with pytest.raises(ValueError, match="at least 2 days"):
        DemandForecaster().fit(daily_series(1))
    gappy = daily_series(3)
    gappy.iloc[5] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        DemandForecaster().fit(gappy)
    with pytest.raises(ValueError, match="not fitted"):
        DemandForecaster().predict(daily_series(1))


def test_peak_forecaster_is_causal_and_round_trips(tmp_path: Path) -> None:
    from predictor.models.demand import PeakForecaster

    s = daily_series(5)
    model = PeakForecaster(window=12, quantile=0.8, params=SMALL).fit(s.iloc[:600])
    changed = s.copy()
    changed.iloc[650:] = 0
    a, b = model.predict(s), model.predict(changed)
    pd.testing.assert_series_equal(a.iloc[:650], b.iloc[:650])
    assert (a >= s).all()  # a peak level, never below the current demand
    model.save(tmp_path / "peak")
    pd.testing.assert_series_equal(load(tmp_path / "peak").predict(s), a)


def test_peak_calibration_scores_the_realised_future_peak() -> None:
    from predictor.models.demand import future_peak_rise, peak_calibration

    index = pd.date_range("2021-03-01", periods=6, freq="10min")
    s = pd.Series([10.0, 12, 11, 15, 9, 9], index=index)
    assert future_peak_rise(s, 2).tolist()[:4] == [2.0, 3.0, 4.0, -6.0]
    assert np.isnan(future_peak_rise(s, 2).iloc[-1])
    level = s + 3.0  # forecast rise of 3 everywhere
    cal = peak_calibration(level, s, 2, 0.8, index[0], index[-1])
    # realised rises 2, 3, 4, -6 (last two steps lack a full window): 3 of 4 covered
    assert cal["coverage"] == 0.75
    assert cal["mean_width"] == 3.0 and cal["mean_rise"] == 0.8  # 0.75, one decimal
    # pinball at 0.8: errors -1, 0, 1, -9 -> (0.2 + 0 + 0.8 + 1.8) / 4
    assert cal["pinball"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no complete"):
        peak_calibration(level, s, 10, 0.8, index[0], index[-1])
