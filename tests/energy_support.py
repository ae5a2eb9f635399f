"""A synthetic 10-minute demand series shared by the energy study tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def steps_frame(days: int, seed: int = 0) -> pd.DataFrame:
    """``days`` of a noisy daily sine of busy nodes (of 100), shaped as ``load_steps`` returns."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2021-03-01", periods=days * 144, freq="10min")
    phase = 2 * np.pi * np.arange(len(index)) / 144
    demand = np.clip(np.round(60 + 30 * np.sin(phase) + rng.normal(0, 3, len(index))), 0, 100)
    return pd.DataFrame({"demand": demand.astype(np.int64), "total": 100, "missing": False},
                        index=index)
