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

``--short-share F`` spends the shortfall budget too (the issue allows 0.3% of
steps short): :func:`shortfall_ceiling` greedily picks up to ``S = floor(F x
steps)`` one-step spikes to leave short -- a shortened step's demand is shaved
to the previous step's -- and re-solves the wake-up DP after each pick. Greedy,
so a lower bound on the true ceiling with ``S`` short steps (exact search over
which steps to leave short is combinatorial), but every plan it reports is
feasible.
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


def _spike_gains(demand: np.ndarray, total: np.ndarray, levels: np.ndarray,
                 wake_steps: list[int]) -> dict[int, float]:
    """Off-share gained (summed over steps) by shaving each level-setting spike of the plan."""
    nodes = np.maximum(np.asarray(total, dtype=np.float64), 1.0)
    bounds = [-1, *sorted(wake_steps), len(demand) - 1]
    gains: dict[int, float] = {}
    for a, b in itertools.pairwise(bounds):
        seg = demand[a + 1 : b + 1]
        for i in range(1, len(seg)):
            t = a + 1 + i
            if levels[t] != demand[t] or demand[t] <= demand[t - 1]:
                continue  # not a spike that sets the level of the steps before it
            shaved = seg.copy()
            shaved[i] = demand[t - 1]
            new = np.maximum.accumulate(shaved[::-1])[::-1]
            gains[t] = float(np.sum((levels[a + 1 : b + 1] - new) / nodes[a + 1 : b + 1]))
    return gains


def shortfall_ceiling(demand: np.ndarray, total: np.ndarray, max_wakes: int,
                      max_short: int) -> dict[str, Any]:
    """Best off-share found with at most ``max_wakes`` wake-ups and ``max_short`` short steps.

    Greedy over spikes (see the module docstring): returns ``{"off_share": {s: share
    for s = 0..max_short}, "wake_steps": [...], "short_steps": [...], "levels": array}``
    for the plan with the most short steps used. A lower bound on the exact ceiling.
    """
    if max_short < 0:
        raise ValueError(f"max_short must be >= 0, not {max_short}")
    d = np.asarray(demand, dtype=np.float64).copy()
    result = budget_ceiling(d, total, max_wakes)
    shares, short = {0: result["off_share"][max_wakes]}, []
    stuck = False
    for s in range(1, max_short + 1):
        if not stuck:
            levels = plan_levels(d, result["wake_steps"])
            gains = _spike_gains(d, total, levels, result["wake_steps"])
            stuck = not gains
            if gains:
                t = max(gains, key=lambda k: gains[k])
                trial = d.copy()
                trial[t] = trial[t - 1]
                again = budget_ceiling(trial, total, max_wakes)
                stuck = again["off_share"][max_wakes] <= shares[s - 1]
                if not stuck:
                    d, result = trial, again
                    short.append(t)
        shares[s] = result["off_share"][max_wakes]
    levels = plan_levels(d, result["wake_steps"])
    short = [t for t in sorted(short) if demand[t] > levels[t]]
    return {"off_share": shares, "wake_steps": result["wake_steps"], "short_steps": short,
            "levels": levels}


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
                 f"{out['max_wakes']} wake-ups and {out.get('max_short', 0)} short steps")
    ax.set_ylabel("nodes")
    ax.legend(loc="lower left", fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from energy.series import load_steps

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", required=True)
    ap.add_argument("--format", default="auto", help="auto, philly, helios-vc or jobs")
    ap.add_argument("--nodes", type=int, help="with --format jobs: the cluster's node count")
    ap.add_argument("--cpus-per-node", type=float, help="with --format jobs (see energy replay)")
    ap.add_argument("--start", required=True, help="first step/day of the window")
    ap.add_argument("--end", required=True, help="last day (inclusive) or step")
    ap.add_argument("--wakes-per-day", type=float, default=0.5)
    ap.add_argument("--short-share", type=float, default=0.0,
                    help="share of steps that may be short (0.003 = the issue's limit)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", help="write a PNG of demand and the ceiling's plan here")
    ap.add_argument("--trace", help="a replay_trace.csv whose Foresight line to add to --plot")
    args = ap.parse_args(argv)
    steps, _, name = load_steps(args.series, args.format, nodes=args.nodes,
                                cpus_per_node=args.cpus_per_node)
    end = pd.Timestamp(args.end)
    if len(args.end) <= 10:
        end = end + pd.Timedelta("1D") - (steps.index[1] - steps.index[0])
    window = steps.loc[pd.Timestamp(args.start) : end]
    days = len(window) * (steps.index[1] - steps.index[0]).total_seconds() / 86400
    budget = math.floor(args.wakes_per_day * days + 1e-9)
    if not 0 <= args.short_share < 1:
        raise SystemExit(f"--short-share must be in [0, 1), not {args.short_share}")
    max_short = math.floor(args.short_share * len(window) + 1e-9)
    demand, total = window["demand"].to_numpy(), window["total"].to_numpy()
    result = budget_ceiling(demand, total, budget)
    out = {"series": name, "start": str(window.index[0]), "end": str(window.index[-1]),
           "max_wakes": budget, "off_share": round(result["off_share"][budget], 4),
           "off_share_by_wakes": {k: round(v, 4) for k, v in result["off_share"].items()},
           "wake_times": [str(window.index[i]) for i in result["wake_steps"]]}
    levels = plan_levels(demand, result["wake_steps"])
    if max_short:
        relaxed = shortfall_ceiling(demand, total, budget, max_short)
        levels = relaxed["levels"]
        out["max_short"] = max_short
        out["off_share_by_short"] = {k: round(v, 4) for k, v in relaxed["off_share"].items()}
        out["short_times"] = [str(window.index[i]) for i in relaxed["short_steps"]]
        out["short_wake_times"] = [str(window.index[i]) for i in relaxed["wake_steps"]]
        out["off_share"] = round(relaxed["off_share"][max_short], 4)
    if args.plot:
        plot(window, levels, out, args.plot, args.trace)
    print(json.dumps(out, indent=2) if args.json else
          f"{name} {out['start']} .. {out['end']}: at most {budget} wake-ups and "
          f"{out.get('max_short', 0)} short steps -> {out['off_share']:.2%} off "
          "(clairvoyant ceiling)")
    return out


if __name__ == "__main__":
    main()
