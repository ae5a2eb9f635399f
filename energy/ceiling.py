"""The clairvoyant ceiling: the most a planner could power off under a wake-up budget.

``python -m energy.ceiling --series PATH --format philly --start 2017-12-01 --end 2017-12-14``

Reads the future on purpose: it is the yardstick for a causal planner, never a
policy. With at most ``K`` wake-up events and no step short of demand, the best
plan wakes at ``K`` chosen steps and, between two wake-ups, keeps exactly the
highest demand still to come before the next one on (powering down is free and
only wake-ups are counted). Dynamic programming over the wake-up steps finds
the best ``K`` steps, with the replay's accounting (:mod:`energy.replay`):
nodes woken at the end of step ``b`` serve step ``b + 1`` (a boot shorter than
the step), the off-share is the mean of ``(nodes - powered) / nodes``.
O(n^2) memory and O(K n^2) time in the window's steps ``n``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from typing import Any

import numpy as np
import pandas as pd

MAX_STEPS = 8000  # ~55 days of 10-minute steps (the n x n table is float32)


def segment_gains(demand: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``G[a, b]``: summed off-share of steps ``a..b`` kept at their future maximum up to ``b``."""
    d = np.asarray(demand, dtype=np.float64)
    nodes = np.maximum(np.asarray(total, dtype=np.float64), 1.0)
    n = len(d)
    gains = np.full((n, n), -np.inf, dtype=np.float32)
    for b in range(n):
        level = np.maximum.accumulate(d[b::-1])[::-1]  # level[t] = max(d[t..b])
        share = (nodes[: b + 1] - level) / nodes[: b + 1]
        gains[: b + 1, b] = np.cumsum(share[::-1])[::-1]
    return gains


def budget_ceiling(demand: np.ndarray, total: np.ndarray, max_wakes: int) -> dict[str, Any]:
    """Best off-share with at most ``max_wakes`` wake-ups and no short step, per budget.

    Returns ``{"off_share": {k: share for k = 0..max_wakes}, "wake_steps": [...]}``
    (the wake-up steps of the best plan with ``max_wakes`` wake-ups).
    """
    n = len(demand)
    if n == 0 or len(total) != n:
        raise ValueError(f"demand and total must be non-empty and equal in length ({n}, "
                         f"{len(total)})")
    if n > MAX_STEPS:
        raise ValueError(f"window of {n} steps is longer than {MAX_STEPS}: use a shorter window")
    if max_wakes < 0:
        raise ValueError(f"max_wakes must be >= 0, not {max_wakes}")
    gains = segment_gains(demand, total)
    best = gains[0].astype(np.float64)  # best[b]: steps 0..b, no wake-up yet
    shares, choices = {0: float(best[-1] / n)}, []
    for k in range(1, max_wakes + 1):
        prev = np.concatenate([[-np.inf], best[:-1]])  # segment starts at a after a wake at a-1
        table = prev[:, None] + gains
        choices.append(np.argmax(table, axis=0))
        best = np.maximum(best, table.max(axis=0))  # "at most k" wake-ups
        shares[k] = float(best[-1] / n)
    wakes, b = [], n - 1
    for k in range(max_wakes, 0, -1):
        a = int(choices[k - 1][b])
        if not np.isfinite(gains[a, b]) or a == 0:
            continue
        wakes.append(a - 1)
        b = a - 1
    return {"off_share": shares, "wake_steps": sorted(wakes)}


def plan_levels(demand: np.ndarray, wake_steps: list[int]) -> np.ndarray:
    """Nodes powered per step by the plan that wakes at the end of ``wake_steps``."""
    d = np.asarray(demand, dtype=np.float64)
    levels = np.zeros(len(d))
    bounds = [-1, *sorted(wake_steps), len(d) - 1]
    for a, b in itertools.pairwise(bounds):
        levels[a + 1 : b + 1] = np.maximum.accumulate(d[a + 1 : b + 1][::-1])[::-1]
    return levels


def plot(window: pd.DataFrame, levels: np.ndarray, out: dict[str, Any], path: str,
         trace: str | None = None) -> None:
    """Demand, the ceiling's plan and (from a replay trace) Foresight's powered nodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 5))
    ax.plot(window.index, window["total"], color="0.6", lw=1, label="nodes in cluster")
    if trace:
        rep = pd.read_csv(trace, index_col=0, parse_dates=True).loc[window.index[0]:
                                                                    window.index[-1]]
        ax.plot(rep.index, rep["powered_foresight"], color="tab:green", lw=1.4,
                label="powered: foresight (replay)")
    ax.plot(window.index, levels, color="tab:purple", lw=1.4,
            label=f"powered: clairvoyant ceiling ({out['max_wakes']} wake-ups)")
    ax.plot(window.index, window["demand"], color="black", lw=0.7, label="demand (busy nodes)")
    ax.set_title(f"{out['series']}: clairvoyant ceiling {out['off_share']:.1%} off with at most "
                 f"{out['max_wakes']} wake-ups")
    ax.set_ylabel("nodes")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from energy.series import load_steps

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", required=True)
    ap.add_argument("--format", default="auto")
    ap.add_argument("--start", required=True, help="first step/day of the window")
    ap.add_argument("--end", required=True, help="last day (inclusive) or step")
    ap.add_argument("--wakes-per-day", type=float, default=0.5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", help="write a PNG of demand and the ceiling's plan here")
    ap.add_argument("--trace", help="a replay_trace.csv whose Foresight line to add to --plot")
    args = ap.parse_args(argv)
    steps, _, name = load_steps(args.series, args.format)
    end = pd.Timestamp(args.end)
    if len(args.end) <= 10:
        end = end + pd.Timedelta("1D") - (steps.index[1] - steps.index[0])
    window = steps.loc[pd.Timestamp(args.start) : end]
    days = len(window) * (steps.index[1] - steps.index[0]).total_seconds() / 86400
    budget = math.floor(args.wakes_per_day * days + 1e-9)
    result = budget_ceiling(window["demand"].to_numpy(), window["total"].to_numpy(), budget)
    out = {"series": name, "start": str(window.index[0]), "end": str(window.index[-1]),
           "max_wakes": budget, "off_share": round(result["off_share"][budget], 4),
           "off_share_by_wakes": {k: round(v, 4) for k, v in result["off_share"].items()},
           "wake_times": [str(window.index[i]) for i in result["wake_steps"]]}
    if args.plot:
        levels = plan_levels(window["demand"].to_numpy(), result["wake_steps"])
        plot(window, levels, out, args.plot, args.trace)
    print(json.dumps(out, indent=2) if args.json else
          f"{name} {out['start']} .. {out['end']}: at most {budget} wake-ups -> "
          f"{out['off_share']:.2%} off (clairvoyant ceiling)")
    return out


if __name__ == "__main__":
    main()
