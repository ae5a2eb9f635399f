"""Replay a utilisation series under a power policy and measure the outcome.

Causality: the forecaster is trained on steps before ``test_start`` only; at
step ``t`` the Foresight policy sees demand up to ``t`` (its forecasts come from
:func:`~predictor.models.demand.demand_features`, trailing windows only). A
decision taken at the end of step ``t`` acts from step ``t + 1``: powered-down
nodes are off from ``t + 1``; woken nodes draw power from ``t + 1`` and count as
on from the step in which their boot completes, ``t + 1 + boot_s // step_s``
(:attr:`PlannerConfig.ready_steps`; with the default 300 s boot, step ``t + 1``).
The same boot rule applies to every policy. Every policy starts ``warmup`` before the
test window (on earlier data) so the scored window does not begin "all on".

Metrics over the scored steps of ``[test_start, test_end]`` (steps with no data
are not scored):

* ``off_share``: mean over steps of (nodes - powered) / nodes, where powered
  counts nodes on or booting.
* ``wakeups_per_day``: wake-up events / days in the window; a wake-up event is a
  step at which the policy powers up one or more nodes (a batch is one event).
* ``short_step_share``: share of steps whose demand (10-minute max of busy
  nodes) exceeds the nodes that are on and booted; ``short_node_steps`` sums
  the shortfall in nodes over steps.
* ``boot_wait_episodes``: runs of consecutive short steps -- each is a moment
  where arriving work would have waited for a boot (the series has no jobs, so
  this counts episodes, not jobs).
* ``node_hours_off`` and ``kwh_saved`` (= node-hours off x idle power per node).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from energy.planner import PlannerConfig, decide, lookback_peak
from predictor.models.demand import PeakForecaster, horizon_rmse, make_forecaster

POLICIES = ("foresight", "idle_timeout_30m", "always_on")
TEST_DAYS = 14
VALIDATION_DAYS = 30
WARMUP = pd.Timedelta("1D")
Progress = Callable[[str], None]


@dataclass
class Window:
    """The split: train+validate before ``test_start``; score ``[test_start, test_end]``."""

    test_start: pd.Timestamp
    test_end: pd.Timestamp
    validation_start: pd.Timestamp


def default_window(
    steps: pd.DataFrame, test_start: str | None = None, test_end: str | None = None
) -> Window:
    """Default: the last 14 days tested, the 30 days before validate, the rest trains.

    A series too short to leave 2 days of training before a 14-day test window
    tests its last third instead.
    """
    first, last = steps.index[0], steps.index[-1]
    step = steps.index[1] - steps.index[0]
    end = pd.Timestamp(test_end) if test_end else last
    if test_end and len(str(test_end)) <= 10:  # a date: include the whole day
        end = end + pd.Timedelta("1D") - step
    span = pd.Timedelta(days=TEST_DAYS)
    if end - first - span < pd.Timedelta("2D"):
        span = ((end - first) / 3).floor(step)
    start = pd.Timestamp(test_start) if test_start else end - span + step
    if not first < start <= end <= last:
        raise ValueError(
            f"test window {start}..{end} must lie after the series start {first} "
            f"and end by {last}"
        )
    if (start - first) < pd.Timedelta("2D"):
        raise ValueError(f"need at least 2 days before the test start {start} to train")
    return Window(start, end, max(first, start - pd.Timedelta(days=VALIDATION_DAYS)))


def _resize(on: int, booting: int, before: int, now: int) -> int:
    """Nodes on after the cluster's size changed from ``before`` to ``now``.

    Nodes that join arrive powered on (a node added to Slurm boots to join it);
    nodes that leave are taken from those powered off first. So a change of
    size never gives a policy nodes off for free: a telemetry glitch that drops
    part of the cluster for a step can only cost it the nodes it had powered off.
    """
    return max(0, min(on + max(0, now - before), now - booting))


def simulate_foresight(
    steps: pd.DataFrame,
    forecasts: pd.DataFrame,
    config: PlannerConfig,
    i0: int,
    i1: int,
    keep_peak: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Count-level replay of the Foresight plan over step indices ``i0..i1``.

    ``forecasts`` are the short-horizon forecasts (row ``t``: made at ``t``);
    ``keep_peak`` the forecast peak level of the coming ``peak_window`` steps, if any.
    """
    demand = steps["demand"].to_numpy()
    total = steps["total"].to_numpy()
    horizons = [h for h in forecasts.columns if h <= config.horizon_steps] or list(
        forecasts.columns
    )
    peak = forecasts[horizons].max(axis=1).to_numpy()
    lookback = lookback_peak(demand, config.lookback_steps, config.lookback_decay)
    if keep_peak is not None:
        lookback = np.maximum(lookback, np.asarray(keep_peak, dtype=np.float64))
    n = i1 - i0 + 1
    powered, available = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    woke = np.zeros(n, dtype=bool)
    on, booting = int(total[i0]), deque()  # (ready step, count)
    booting_n, last_wake = 0, -math.inf
    wake_peak, peak_at = None, i0  # highest demand since the last wake-up, and when
    for j, t in enumerate(range(i0, i1 + 1)):
        while booting and booting[0][0] <= t:
            on += booting.popleft()[1]
        booting_n = sum(k for _, k in booting)
        if wake_peak is not None and demand[t] > wake_peak:
            wake_peak, peak_at = float(demand[t]), t
        on = _resize(on, booting_n, int(total[max(t - 1, i0)]), int(total[t]))
        powered[j], available[j] = on + booting_n, on
        dec = decide(
            busy=int(demand[t]),
            forecast_peak=float(peak[t]),
            lookback_max=float(lookback[t]),
            powered=on + booting_n,
            capacity=int(total[t]),
            steps_since_wake=t - last_wake,
            config=config,
            rise=float(demand[t] - demand[max(0, t - config.trend_steps)]),
            wake_peak=wake_peak,
            steps_since_peak=t - peak_at,
        )
        if dec.wake > 0:
            booting.append((t + config.ready_steps, dec.wake))
            last_wake, woke[j] = t, True
            wake_peak, peak_at = float(demand[t]), t
        on -= min(dec.power_down, on)
    return {"powered": powered, "available": available, "woke": woke}


def simulate_idle_timeout(
    steps: pd.DataFrame, timeout_steps: int, ready_steps: int, i0: int, i1: int
) -> dict[str, np.ndarray]:
    """Slurm's own power saving: a node idle longer than ``timeout_steps`` powers down.

    Idle time is counted in whole steps from the end of the node's last busy step
    (a 10-minute maximum may fall in its last minute) and, as in Slurm's
    ``last_busy < now - SuspendTime``, must *exceed* the timeout: a node last busy
    in step ``s`` is checked at each step end and powered down at the end of step
    ``s + timeout_steps + 1``. Busy work goes to the most recently idle nodes
    first (so long-idle nodes time out -- the most favourable assignment for this
    baseline); when demand exceeds the nodes on during step ``t`` (a short step),
    the missing nodes are resumed in that step (one wake-up event) and take work
    from step ``t + ready_steps``.
    """
    demand = steps["demand"].to_numpy()
    total = steps["total"].to_numpy()
    n = i1 - i0 + 1
    powered, available = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    woke = np.zeros(n, dtype=bool)
    busy = min(int(demand[i0]), int(total[i0]))
    idle: deque[int] = deque([i0] * (int(total[i0]) - busy))  # idle-since step per idle node
    booting: deque[tuple[int, int]] = deque()
    for j, t in enumerate(range(i0, i1 + 1)):
        while booting and booting[0][0] <= t:
            idle.extend([t] * booting.popleft()[1])
        booting_n = sum(k for _, k in booting)
        resized = _resize(busy + len(idle), booting_n, int(total[max(t - 1, i0)]), int(total[t]))
        idle.extend([t] * (resized - busy - len(idle)))  # nodes joined, on and idle (if any)
        while busy + len(idle) > resized and idle:  # nodes left the cluster
            idle.pop()
        on = busy + len(idle)
        powered[j], available[j] = on + booting_n, on
        want = min(int(demand[t]), on)
        while busy < want:
            idle.pop()
            busy += 1
        if busy > want:
            idle.extend([t] * (busy - want))
            busy = want
        lacking = min(int(demand[t]), int(total[t])) - on - booting_n
        if lacking > 0:
            booting.append((t + ready_steps, lacking))
            woke[j] = True
        while idle and t + 1 - idle[0] > timeout_steps:
            idle.popleft()
    return {"powered": powered, "available": available, "woke": woke}


def simulate_always_on(steps: pd.DataFrame, i0: int, i1: int) -> dict[str, np.ndarray]:
    """Every node on all the time."""
    total = steps["total"].to_numpy()[i0 : i1 + 1].astype(np.int64)
    return {"powered": total, "available": total, "woke": np.zeros(len(total), dtype=bool)}


def policy_metrics(
    run: dict[str, np.ndarray],
    demand: np.ndarray,
    total: np.ndarray,
    scored: np.ndarray,
    step_s: int,
    idle_power_w: float,
) -> dict[str, Any]:
    """The metrics of the module docstring, over the ``scored`` steps."""
    powered, available = run["powered"][scored], run["available"][scored]
    d, nodes = demand[scored], total[scored]
    off = np.clip(nodes - powered, 0, None)
    short = d > available
    episodes = int(np.sum(short & ~np.concatenate([[False], short[:-1]])))
    days = len(demand) * step_s / 86400
    node_hours_off = float(off.sum() * step_s / 3600)
    return {
        "off_share": round(float(np.mean(off / np.maximum(nodes, 1))), 4),
        "wakeups_per_day": round(float(run["woke"].sum() / days), 3),
        "short_step_share": round(float(short.mean()), 4),
        "short_node_steps": int(np.clip(d - available, 0, None).sum()),
        "node_hours_off": round(node_hours_off, 1),
        "kwh_saved": round(node_hours_off * idle_power_w / 1000, 1),
        "wake_events": int(run["woke"].sum()),
        "boot_wait_episodes": episodes,
    }


JSON_POLICY_KEYS = (
    "off_share", "wakeups_per_day", "short_step_share", "short_node_steps",
    "node_hours_off", "kwh_saved",
)


def replay(
    steps: pd.DataFrame,
    name: str,
    *,
    test_start: str | None = None,
    test_end: str | None = None,
    config: PlannerConfig | None = None,
    forecaster: str = "xgboost",
    idle_power_w: float = 400.0,
    idle_timeout_s: int = 1800,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Replay ``steps`` (from :func:`energy.series.load_steps`) under all policies."""
    config = config or PlannerConfig()
    say = progress or (lambda _msg: None)
    win = default_window(steps, test_start, test_end)
    step_s = int((steps.index[1] - steps.index[0]).total_seconds())
    if step_s != config.step_s:
        raise ValueError(f"series step is {step_s}s but the planner expects {config.step_s}s")
    hour = max(1, round(3600 / step_s))
    horizons = tuple(range(1, max(hour, config.horizon_steps) + 1))
    history = steps.loc[: win.test_end]
    train = history.loc[history.index < win.test_start, "demand"]
    say(f"training the {forecaster} demand forecaster on {len(train)} steps before "
        f"{win.test_start} ({len(horizons)} horizons)")
    model = make_forecaster(forecaster, horizons).fit(train)
    peak_model = None
    if forecaster != "persistence" and config.peak_window > 0:
        say(f"training the peak forecaster (next {config.peak_window} steps, "
            f"q{config.peak_quantile})")
        peak_model = PeakForecaster(config.peak_window, config.peak_quantile).fit(train)
    config = config.scaled_to(train.to_numpy())
    say("forecasting (each step from data up to that step)")
    forecasts = model.predict(history["demand"])
    peak = peak_model.predict(history["demand"]).to_numpy() if peak_model else None
    persistence = make_forecaster("persistence", horizons).predict(history["demand"])
    scored_mask = ~history["missing"]
    rmse = horizon_rmse(forecasts, history["demand"], hour, win.test_start, win.test_end,
                        scored_mask)
    base = horizon_rmse(persistence, history["demand"], hour, win.test_start, win.test_end,
                        scored_mask)
    i0 = int(history.index.searchsorted(max(history.index[0], win.test_start - WARMUP)))
    k0 = int(history.index.searchsorted(win.test_start))
    i1 = len(history) - 1
    runs = {}
    say("replaying foresight, idle_timeout_30m, always_on")
    runs["foresight"] = simulate_foresight(history, forecasts, config, i0, i1, peak)
    runs["idle_timeout_30m"] = simulate_idle_timeout(
        history, max(1, round(idle_timeout_s / step_s)), config.ready_steps, i0, i1
    )
    runs["always_on"] = simulate_always_on(history, i0, i1)
    demand = history["demand"].to_numpy()[k0:]
    total = history["total"].to_numpy()[k0:]
    scored = scored_mask.to_numpy()[k0:]
    cut = k0 - i0
    metrics = {
        p: policy_metrics({k: v[cut:] for k, v in r.items()}, demand, total, scored, step_s,
                          idle_power_w)
        for p, r in runs.items()
    }
    return {
        "series": name,
        "test_start": str(win.test_start),
        "test_end": str(win.test_end),
        "nodes": int(history["total"].iloc[k0:].max()),
        "forecast": {
            "rmse_1h": round(rmse, 2),
            "baseline_rmse_1h": {"persistence_1h": round(base, 2)},
        },
        "policies": metrics,
        "_detail": {
            "validation_start": str(win.validation_start),
            "forecaster": forecaster,
            "planner": config.to_dict(),  # as used (after scaling to the series)
            "idle_power_w": idle_power_w,
            "trace": pd.DataFrame(
                {
                    "demand": demand,
                    "total": total,
                    "forecast_1h": forecasts[hour].shift(hour).to_numpy()[k0:],
                    **{f"powered_{p}": r["powered"][cut:] for p, r in runs.items()},
                },
                index=history.index[k0:],
            ),
        },
    }


def public_json(result: dict[str, Any]) -> dict[str, Any]:
    """The ``replay --json`` shape of the issue (no detail, six metrics per policy)."""
    out = {k: v for k, v in result.items() if not k.startswith("_")}
    out["policies"] = {
        p: {k: m[k] for k in JSON_POLICY_KEYS} for p, m in result["policies"].items()
    }
    return out


def write_report(result: dict[str, Any], folder: str | Path) -> list[Path]:
    """``replay.json`` (all metrics + settings), ``replay_trace.csv`` and ``replay.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from predictor.state import atomic_write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    detail = result["_detail"]
    trace: pd.DataFrame = detail["trace"]
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    summary["settings"] = {k: v for k, v in detail.items() if k != "trace"}
    atomic_write_json(folder / "replay.json", summary)
    trace.to_csv(folder / "replay_trace.csv")
    fig, ax = plt.subplots(figsize=(13, 5))
    ax.plot(trace.index, trace["total"], color="0.6", lw=1, label="nodes in cluster")
    ax.plot(trace.index, trace["powered_idle_timeout_30m"], color="tab:orange", lw=0.6,
            alpha=0.6, label="powered: idle_timeout_30m")
    ax.plot(trace.index, trace["powered_foresight"], color="tab:green", lw=1.6,
            label="powered: foresight")
    ax.plot(trace.index, trace["demand"], color="black", lw=0.8, label="demand (busy nodes)")
    ax.plot(trace.index, trace["forecast_1h"], color="tab:blue", lw=0.8, ls="--",
            label="forecast made 1 h earlier")
    fs = result["policies"]["foresight"]
    ax.set_title(
        f"{result['series']}: foresight {fs['off_share']:.1%} off, "
        f"{fs['wakeups_per_day']} wake-ups/day, {fs['short_step_share']:.2%} steps short"
    )
    ax.set_ylabel("nodes")
    ax.legend(loc="lower left", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(folder / "replay.png", dpi=110)
    plt.close(fig)
    return [folder / "replay.json", folder / "replay_trace.csv", folder / "replay.png"]
