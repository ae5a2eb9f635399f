"""Replay of a series under the three policies, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from energy.planner import PlannerConfig
from energy.replay import (
    public_json,
    replay,
    simulate_foresight,
    simulate_idle_timeout,
)
from predictor.cli import app
from predictor.models.demand import PersistenceForecaster


def steps_frame(demand: list[int] | np.ndarray, total: int = 20) -> pd.DataFrame:
    index = pd.date_range("2022-01-01", periods=len(demand), freq="10min")
    return pd.DataFrame({"demand": np.asarray(demand, dtype=np.int64), "total": total,
                         "missing": False}, index=index)


def test_idle_timeout_wakes_on_demand_and_powers_down_after_timeout() -> None:
    demand = [2] * 10 + [8] * 3 + [2] * 10
    run = simulate_idle_timeout(steps_frame(demand, 10), 3, 1, 0, len(demand) - 1)
    assert run["powered"][0] == 10 and run["powered"][9] == 2  # idle nodes timed out
    assert run["woke"][10] and run["available"][10] < 8  # demand arrived: wake, short
    assert run["woke"].sum() == 1  # one batch, one wake-up event
    assert run["available"][11] >= 8  # a boot shorter than a step serves the next step
    assert run["powered"][-1] == 2


def test_idle_timeout_powers_down_once_idle_time_exceeds_the_timeout() -> None:
    # 6 nodes busy at step 0 only: idle from step 1; after 3 idle steps (= 30 min) a
    # node is still on, it goes down at the end of the 4th idle step (Slurm's strict >).
    demand = [6] + [0] * 8
    run = simulate_idle_timeout(steps_frame(demand, 6), 3, 1, 0, len(demand) - 1)
    assert run["powered"].tolist() == [6, 6, 6, 6, 6, 0, 0, 0, 0]
    slow = simulate_idle_timeout(steps_frame([0] * 3 + [4] + [0] * 3, 4), 1, 2, 0, 6)
    assert slow["woke"][3] and slow["available"][4] == 0 and slow["available"][5] == 4


def test_boot_latency_sets_when_a_woken_node_takes_work() -> None:
    assert PlannerConfig(boot_s=0).ready_steps == 1
    assert PlannerConfig(boot_s=300).ready_steps == 1  # boot completes within step t+1
    assert PlannerConfig(boot_s=600).ready_steps == 2  # completes at the start of t+2
    assert PlannerConfig(boot_s=900, step_s=600).ready_steps == 2


def test_foresight_is_causal_future_changes_do_not_alter_the_past() -> None:
    rng = np.random.default_rng(1)
    demand = (10 + rng.integers(0, 4, 300)).tolist()
    base = steps_frame(demand)
    changed = base.copy()
    changed.iloc[200:, 0] = 19
    cfg = PlannerConfig(min_on_dwell_s=0, lookback_steps=6, keep_buffer=2, wake_margin=4,
                        reference_swing=0)
    fc = PersistenceForecaster()
    a = simulate_foresight(base, fc.predict(base["demand"]), cfg, 0, 299)
    b = simulate_foresight(changed, fc.predict(changed["demand"]), cfg, 0, 299)
    for key in ("powered", "available"):  # step 200's own value acts from step 201
        assert (a[key][:201] == b[key][:201]).all()
    assert (a["woke"][:200] == b["woke"][:200]).all()  # decisions of steps before 200
    assert a["powered"][150] < 20  # it did power nodes down


def test_forecast_peak_holds_nodes_on_above_the_lookback() -> None:
    demand = [10] * 200
    frame = steps_frame(demand, 40)
    cfg = PlannerConfig(min_on_dwell_s=0, lookback_steps=1, keep_buffer=0, max_down_per_step=40,
                        reference_swing=0)
    fc = PersistenceForecaster().predict(frame["demand"])
    plain = simulate_foresight(frame, fc, cfg, 0, 199)
    held = simulate_foresight(frame, fc, cfg, 0, 199, keep_peak=np.full(200, 25.0))
    assert plain["powered"][-1] == 10 and held["powered"][-1] == 25


def test_a_change_of_cluster_size_gives_no_policy_nodes_off_for_free() -> None:
    # 10 busy of 20; at step 50 the cluster reads 12 for one step (a telemetry
    # glitch), and from step 100 it has 30 nodes (10 joined).
    demand = [10] * 150
    frame = steps_frame(demand, 20)
    frame.iloc[50, frame.columns.get_loc("total")] = 12
    frame.iloc[100:, frame.columns.get_loc("total")] = 30
    cfg = PlannerConfig(min_on_dwell_s=0, lookback_steps=1, keep_buffer=2, max_down_per_step=2,
                        reference_swing=0)
    fc = PersistenceForecaster().predict(frame["demand"])
    run = simulate_foresight(frame, fc, cfg, 0, 149)
    assert run["powered"][49] == 12  # it powered 8 of the 20 nodes down
    # the glitch takes the 8 nodes that were off; they come back on and go down again
    assert run["powered"][50:53].tolist() == [12, 20, 18] and run["powered"][55] == 12
    assert run["powered"][100] == 22  # the 10 nodes that joined arrive on, then go down
    assert run["powered"][-1] == 12 and not run["woke"].any()
    idle = simulate_idle_timeout(frame, 3, 1, 0, 149)
    assert idle["powered"][49] == 10 and idle["powered"][50] == 10
    assert idle["powered"][51] == 18 and idle["powered"][55] == 10  # 8 of its 10 off came back on
    assert idle["powered"][100] == 20 and idle["powered"][105] == 10  # joined idle, timed out
    assert not idle["woke"].any()


def test_replay_reports_the_issue_json_shape() -> None:
    rng = np.random.default_rng(2)
    demand = np.clip(50 + np.cumsum(rng.integers(-1, 2, 6 * 144)), 0, 90)
    result = replay(steps_frame(demand, 100), "synthetic", forecaster="persistence",
                    test_start="2022-01-05", test_end="2022-01-06")
    out = public_json(result)
    assert set(out) == {"series", "test_start", "test_end", "nodes", "forecast", "policies"}
    assert set(out["forecast"]) == {"rmse_1h", "baseline_rmse_1h"}
    assert set(out["forecast"]["baseline_rmse_1h"]) == {"persistence_1h"}
    assert set(out["policies"]) == {"foresight", "idle_timeout_30m", "always_on"}
    for metrics in out["policies"].values():
        assert set(metrics) == {"off_share", "wakeups_per_day", "short_step_share",
                                "short_node_steps", "node_hours_off", "kwh_saved"}
    assert out["policies"]["always_on"]["off_share"] == 0.0
    assert out["policies"]["foresight"]["off_share"] > 0.2
    assert out["test_end"] == "2022-01-06 23:50:00"
    json.dumps(out)


def test_default_window_is_last_14_days_or_last_third_of_a_short_series() -> None:
    from energy.replay import default_window

    long = steps_frame([5] * (30 * 144))
    win = default_window(long)
    assert win.test_end == long.index[-1]
    assert win.test_start == long.index[-1] - pd.Timedelta(days=14) + pd.Timedelta("10min")
    short = steps_frame([5] * (9 * 144))
    win = default_window(short)
    assert win.test_start == short.index[-1] - pd.Timedelta(days=3) + pd.Timedelta("20min")


def test_bad_window_is_refused() -> None:
    frame = steps_frame([5] * 500)
    with pytest.raises(ValueError, match="must lie after"):
        replay(frame, "x", test_start="2030-01-01", forecaster="persistence")


def test_cli_replay_json_and_report(tmp_path: Path) -> None:
    index = pd.date_range("2022-01-01", periods=5 * 1440, freq="1min")
    rng = np.random.default_rng(3)
    active = np.clip(30 + np.cumsum(rng.integers(-1, 2, len(index))) // 10, 0, 60)
    path = tmp_path / "philly.csv"
    pd.DataFrame({"time": index, "active": active, "total": 60}).to_csv(path, index=False)
    out = CliRunner().invoke(app, [
        "energy", "replay", "--series", str(path), "--format", "philly", "--json",
        "--forecaster", "persistence", "--test-start", "2022-01-04", "--report",
        str(tmp_path / "rep"), "--boot-s", "900",
    ])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout[out.stdout.index("{"):])
    assert payload["nodes"] == 60 and payload["test_start"] == "2022-01-04 00:00:00"
    assert (tmp_path / "rep" / "replay.png").stat().st_size > 0
    saved = json.loads((tmp_path / "rep" / "replay.json").read_text())
    assert saved["settings"]["planner"]["boot_s"] == 900  # the explicit boot latency
    bad = tmp_path / "bad.csv"
    bad.write_text("time,active,total\n2022-01-01 00:00:00,1,2\n2022-01-01 00:00:00,3,2\n")
    res = CliRunner().invoke(app, ["energy", "replay", "--series", str(bad)])
    assert res.exit_code == 1 and "conflicting" in res.output


@pytest.mark.slow
def test_philly_december_replay_beats_idle_timeout_on_wakeups_and_shortfall(data: Path) -> None:
    from energy.series import load_steps

    steps, _, name = load_steps(data / "utilization" / "philly_node_sequence.csv")
    cfg = PlannerConfig(lookback_steps=144, wake_buffer=3, wake_margin=20, keep_buffer=5)
    result = replay(steps, name, test_start="2017-12-01", test_end="2017-12-14",
                    forecaster="persistence", config=cfg)
    fs, idle = result["policies"]["foresight"], result["policies"]["idle_timeout_30m"]
    persistence = result["forecast"]["baseline_rmse_1h"]["persistence_1h"]
    assert persistence == pytest.approx(18.07, abs=0.01)  # the issue's 18.1
    assert fs["wakeups_per_day"] <= 0.5 and fs["short_step_share"] <= 0.003
    assert fs["off_share"] > 0.2
    # the issue's reference measurement of Slurm's 30-minute idle timeout on this
    # window: about 30% off, 25 wake-ups/day, 17.5% of steps short
    assert idle["off_share"] == pytest.approx(0.30, abs=0.005)
    assert idle["wakeups_per_day"] == pytest.approx(25.0, abs=0.3)
    assert idle["short_step_share"] == pytest.approx(0.175, abs=0.002)
    assert idle["wakeups_per_day"] > 10 * fs["wakeups_per_day"]
    assert idle["short_step_share"] > 10 * fs["short_step_share"]
