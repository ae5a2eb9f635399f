"""The planner study: causal keep-on rules, the best setting within limits, the frontier."""

from __future__ import annotations

import numpy as np
from energy_support import steps_frame

from energy.planner import PlannerConfig
from energy.planner_study import keep_levels, study


def test_keep_levels_use_only_the_past() -> None:
    s = steps_frame(6)["demand"]
    changed = s.copy()
    changed.iloc[600:] += 30
    a, b = keep_levels(s, 500, 12), keep_levels(changed, 500, 12)
    for name in a:
        np.testing.assert_array_equal(a[name][:600], b[name][:600], err_msg=name)


def test_study_reports_the_best_setting_and_a_monotone_frontier() -> None:
    grid = {"keep_buffer": (0, 10), "release_quiet_steps": (0, 6)}
    rows = study(steps_frame(6), "2021-03-05", "2021-03-06", max_wakeups_per_day=99,
                 max_short_share=1.0, base=PlannerConfig(peak_window=12, horizon_steps=3),
                 grid=grid)
    assert {r["keep_on"] for r in rows} >= {"peak_q0.8 (default)", "trailing_max_24h"}
    for row in rows:
        assert row["off_share"] is not None and row["keep_buffer"] in (0, 10)
        frontier = [row[k] for k in row if k.startswith("frontier_")]
        known = [v for v in frontier if v is not None]
        assert known == sorted(known)  # a larger wake-up budget never does worse
