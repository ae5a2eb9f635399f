"""Compare keep-on rules and wake/hold settings of the planner on a validation window.

``python -m energy.planner_study --series PATH --format philly --start 2017-11-01 --end 2017-11-30``

Every rule is computed from steps ``<= t`` (forecasters trained before
``--start``) and replayed on ``[start, end]`` through the real planner
(:func:`energy.replay.simulate_foresight`, the rule's level as the keep-on
floor) over a grid of ``keep_buffer x wake_margin x min_on_dwell_s x
release_quiet_steps`` (everything else at the ``PlannerConfig`` defaults). Per
rule it reports the best off-share within the limits (by default <= 0.45
wake-ups/day and <= 0.25% short steps, i.e. with margin under the targets) and
the frontier: the best off-share within the shortfall limit at each wake-up budget.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from itertools import product
from typing import Any

import numpy as np
import pandas as pd

from energy.planner import PlannerConfig, lookback_peak
from energy.replay import WARMUP, default_window, policy_metrics, simulate_foresight
from energy.series import load_steps
from predictor.models.demand import PeakForecaster, make_forecaster

HOUR = 6
GRID = {
    "keep_buffer": (0, 5, 10, 20),
    "wake_margin": (25, 40),
    "min_on_dwell_s": (6 * 3600, 24 * 3600),
    "release_quiet_steps": (0, 36),
}
BUDGETS = (0.3, 0.5, 0.7, 1.0)


def keep_levels(demand: pd.Series, n_train: int, window: int) -> dict[str, np.ndarray]:
    """Candidate keep-on floors per step, each from steps ``<= t`` only."""
    s = demand.astype("float64")
    d = s.to_numpy()
    out = {"peak_q0.8 (default)": PeakForecaster(window, 0.8).fit(s.iloc[:n_train]).predict(s)
           .to_numpy()}
    for hours in (6, 24):
        out[f"trailing_max_{hours}h"] = lookback_peak(d, hours * HOUR)
    for hours, z in ((6, 2.0), (6, 3.0), (12, 3.0)):
        roll = s.rolling(hours * HOUR, min_periods=2)
        out[f"mean+{z:g}sd_{hours}h"] = (roll.mean() + z * roll.std()).fillna(s).to_numpy()
    out["q0.98_12h"] = s.rolling(12 * HOUR, min_periods=1).quantile(0.98).to_numpy()
    return out


def best_feasible(
    history: pd.DataFrame, forecasts: pd.DataFrame, level: np.ndarray | None,
    configs: Iterable[PlannerConfig], start: pd.Timestamp, train: np.ndarray,
    limits: Iterable[tuple[float, float]],
) -> list[dict[str, Any] | None]:
    """Replay ``level`` under each config; per ``(max wake-ups/day, max short share)``
    limit, the best run within it (its settings and metrics) or None."""
    i0 = int(history.index.searchsorted(max(history.index[0], start - WARMUP)))
    k0 = int(history.index.searchsorted(start))
    i1, cut = len(history) - 1, k0 - i0
    d, total = history["demand"].to_numpy()[k0:], history["total"].to_numpy()[k0:]
    scored = (~history["missing"]).to_numpy()[k0:]
    limits = list(limits)
    best: list[dict[str, Any] | None] = [None] * len(limits)
    for base in configs:
        cfg = base.scaled_to(train)
        run = simulate_foresight(history, forecasts, cfg, i0, i1, level)
        m = policy_metrics({k: v[cut:] for k, v in run.items()}, d, total, scored, cfg.step_s,
                           400.0)
        for i, (wakes, short) in enumerate(limits):
            ok = m["wakeups_per_day"] <= wakes and m["short_step_share"] <= short
            if ok and (best[i] is None or m["off_share"] > best[i]["off_share"]):
                best[i] = {"config": base, **{k: m[k] for k in (
                    "off_share", "wakeups_per_day", "short_step_share")}}
    return best


def study(
    steps: pd.DataFrame, start: str, end: str, *, max_wakeups_per_day: float = 0.45,
    max_short_share: float = 0.0025, progress: Callable[[str], None] | None = None,
    base: PlannerConfig | None = None, grid: dict[str, tuple[Any, ...]] | None = None,
) -> list[dict[str, Any]]:
    """One row per keep-on rule: the best setting within the limits and the frontier."""
    say = progress or (lambda _msg: None)
    base, grid = base or PlannerConfig(), grid or GRID
    win = default_window(steps, start, end)
    history = steps.loc[: win.test_end]
    n_train = int((history.index < win.test_start).sum())
    train = history["demand"].iloc[:n_train]
    say(f"forecasters on {n_train} steps before {win.test_start}")
    forecasts = make_forecaster("xgboost", tuple(range(1, base.horizon_steps + 1))).fit(
        train).predict(history["demand"])
    levels = keep_levels(history["demand"], n_train, base.peak_window)
    configs = [replace(base, **dict(zip(grid, values, strict=True)))
               for values in product(*grid.values())]
    limits = [(max_wakeups_per_day, max_short_share)] + [(b, 0.003) for b in BUDGETS]
    rows = []
    for name, level in levels.items():
        say(f"replaying {name} over {len(configs)} settings")
        found = best_feasible(history, forecasts, level, configs, win.test_start,
                              train.to_numpy(), limits)
        row: dict[str, Any] = {"keep_on": name}
        if found[0] is not None:
            row.update({k: getattr(found[0]["config"], k) for k in grid})
            row.update({k: v for k, v in found[0].items() if k != "config"})
        else:
            row["off_share"] = None
        for budget, hit in zip(BUDGETS, found[1:], strict=True):
            row[f"frontier_{budget}/day"] = hit["off_share"] if hit else None
        rows.append(row)
    return rows


def study_cli(argv: list[str] | None, description: str, run: Callable[..., list[dict[str, Any]]],
              title: str) -> None:
    """The command line shared by the energy studies: run ``run`` on a validation window
    and print its rows as JSON (``--json``) or a table titled ``title`` (formatted with
    ``name``, ``start`` and ``end``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--series", required=True)
    parser.add_argument("--format", default="auto")
    parser.add_argument("--start", required=True, help="validation window start (trains before)")
    parser.add_argument("--end", required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    steps, _, name = load_steps(args.series, args.format)
    with Console(stderr=True).status("studying") as status:
        rows = run(steps, args.start, args.end, progress=lambda m: status.update(m))
    if args.json:
        print(json.dumps({"series": name, "start": args.start, "end": args.end, "rows": rows},
                         indent=2))
        return
    table = Table(title=title.format(name=name, start=args.start, end=args.end))
    columns = list(dict.fromkeys(k for row in rows for k in row))
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(row.get(c, "")) for c in columns])
    Console(width=220).print(table)


def main(argv: list[str] | None = None) -> None:
    study_cli(argv, __doc__.split("\n\n")[0], study,
              "{name}: keep-on rules, trained before {start}, replayed {start} .. {end}")


if __name__ == "__main__":
    main()
