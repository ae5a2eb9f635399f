"""Co-location mode: jobs sharing a node slow each other down by measured pair speeds.

Sharing model (the product's hints make the same assumption): every job
running on a node is a potential GPU co-runner of every other job on that
node, so a job's progress rate is ``min`` over its co-runners ``k`` of
``speed(job | k)`` (its worst pair; 1 alone). Jobs that take whole nodes
(multi-node jobs) never share. Speeds come from a square matrix over solo
*profiles*: ``truth[a, b]`` is profile ``a``'s speed next to ``b``, and
each job carries one profile index.

:func:`lucid_colocation` builds it from the Lucid data: ``truth`` is the
measured pair speed where Lucid measured that pair (mean over repeats,
capped at 1: a co-located job never runs faster than alone), else the
product's interference model (:func:`predictor.models.interference.default_model`).
Each job gets one of the 66 Lucid solo profiles by a stable hash (CRC32)
of its user and job name, or of its user and job id when the log has no
job names (Philly), so a user's recurring job keeps its profile.

Hints read ``predicted``: for pairs Lucid measured, the model's
*out-of-fold* prediction (grouped cross-validation by model pair, so the
hint is as good as it is for pairs the model never saw); for the other
pairs, the model itself (there the hint equals the truth by construction:
an optimistic assumption, reported with the results).

With ``hints`` on, placement is interference-aware, as ``/v1/jobs/score``
hints would steer it: among the nodes a job fits on now, nodes where the
predicted speed of the new job or of any job already there falls below
``1 - avoid_slowdown`` are avoided; if every feasible node is avoided the
job still starts on the best fit (a hint never makes a job wait).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.interference.hints import HintConfig


@dataclass
class Colocation:
    """Pair speeds over profiles, each job's profile, and whether placement uses hints."""

    truth: np.ndarray  # (P, P) actual speed of profile a next to profile b (0 < s <= 1)
    predicted: np.ndarray  # (P, P) the interference model's prediction of the same
    profile: np.ndarray  # (n_jobs,) profile index of each workload job
    hints: bool = False
    avoid_slowdown: float = HintConfig().avoid_slowdown

    def __post_init__(self) -> None:
        p = self.truth.shape[0]
        for name, m in (("truth", self.truth), ("predicted", self.predicted)):
            if m.shape != (p, p):
                raise ValueError(f"colocation {name} speeds must be {p}x{p}, got {m.shape}")
            if not np.all((m > 0) & (m <= 1)):
                raise ValueError(f"colocation {name} speeds must be in (0, 1]")
        if self.profile.size and (self.profile.min() < 0 or self.profile.max() >= p):
            raise ValueError(f"job profile indices must be in [0, {p})")
        if not 0 < self.avoid_slowdown < 1:
            raise ValueError(f"avoid_slowdown must be in (0, 1), got {self.avoid_slowdown}")

    def rate(self, j: int, others: list[int]) -> float:
        """Job ``j``'s progress rate (work seconds per second) next to ``others``."""
        if not others:
            return 1.0
        return float(self.truth[self.profile[j], self.profile[others]].min())

    def avoided(self, j: int, node_jobs: list[list[int]]) -> np.ndarray:
        """Per node, whether hints say to avoid it for ``j`` given the jobs running there."""
        cut = 1.0 - self.avoid_slowdown
        out = np.zeros(len(node_jobs), dtype=bool)
        me = self.profile[j]
        for i, running in enumerate(node_jobs):
            if running:
                them = self.profile[running]
                worst = min(self.predicted[me, them].min(), self.predicted[them, me].min())
                out[i] = worst < cut
        return out


def job_profiles(jobs: pd.DataFrame, n_profiles: int) -> np.ndarray:
    """A profile index per job: CRC32 of ``user/job_name`` (``user/job_id`` without a name)."""
    user = jobs["user"].fillna("").astype(str)
    name = jobs["job_name"].fillna("").astype(str) if "job_name" in jobs else user.map(lambda _: "")
    ident = name.where(name != "", "#" + jobs["job_id"].astype(str))
    keys = (user + "/" + ident).tolist()
    return np.array([zlib.crc32(k.encode()) % n_profiles for k in keys], dtype=np.int64)


def lucid_colocation(
    jobs: pd.DataFrame, data: Path | str | None = None, *, hints: bool = False
) -> Colocation:
    """:class:`Colocation` from the Lucid pairs and solo profiles in ``data`` (the data folder's
    ``interference/`` by default) for the workload rows ``jobs``; see the module docstring."""
    folder = Path(data) if data is not None else _default_folder()
    truth, predicted = lucid_speeds(folder.resolve())
    return Colocation(truth, predicted, job_profiles(jobs, len(truth)), hints=hints)


@lru_cache(maxsize=4)
def lucid_speeds(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(truth, predicted)`` speed matrices over the Lucid solo profiles in ``folder``
    (cached: the grouped cross-validation behind ``predicted`` takes seconds)."""
    from predictor.interference.evaluation import (
        grouped_cv_predictions,
        load_lucid,
        load_lucid_profiles,
    )
    from predictor.models.interference import default_model, profile_matrix

    pairs_path, solo_path = folder / "lucid_colocate_info.csv", folder / "lucid_single_data.csv"
    for path in (pairs_path, solo_path):
        if not path.exists():
            raise FileNotFoundError(f"co-location mode needs {path} (Lucid data)")
    profiles = load_lucid_profiles(solo_path)
    model = default_model()
    x = profile_matrix(profiles, model.fields)
    p = len(profiles)
    a, b = np.repeat(np.arange(p), p), np.tile(np.arange(p), p)
    modelled = model.predict(x[a], x[b]).reshape(p, p)
    ia, ib = pair_positions(pairs_path, profiles.index)
    table = load_lucid(pairs_path, solo_path)
    n = len(table)
    unseen = grouped_cv_predictions(table, kinds=("xgboost",))["xgboost"]
    measured = pair_means(p, ia, ib, table.speed_a, table.speed_b)
    oof = pair_means(p, ia, ib, unseen[:n], unseen[n:])
    truth = np.where(np.isnan(measured), modelled, measured)
    predicted = np.where(np.isnan(oof), modelled, oof)
    clip = (0.05, 1.0)  # co-located never faster than solo; never stalled outright
    return np.clip(truth, *clip), np.clip(predicted, *clip)


def pair_positions(pairs_path: Path | str, index: pd.MultiIndex) -> tuple[np.ndarray, np.ndarray]:
    """Profile positions (in ``index``) of both sides of each Lucid pair row (-1: unknown)."""
    from predictor.interference.evaluation import lucid_side_keys

    pairs = pd.read_csv(pairs_path)
    side_a, side_b = (index.get_indexer(lucid_side_keys(pairs, i)) for i in (1, 2))
    return side_a, side_b


def pair_means(
    p: int, ia: np.ndarray, ib: np.ndarray, speed_a: np.ndarray, speed_b: np.ndarray
) -> np.ndarray:
    """``(p, p)`` mean speed of profile ``a`` next to ``b`` over pair rows (NaN: no row)."""
    total, count = np.zeros((p, p)), np.zeros((p, p))
    ok = (ia >= 0) & (ib >= 0)
    for me, other, speed in ((ia, ib, speed_a), (ib, ia, speed_b)):
        np.add.at(total, (me[ok], other[ok]), np.asarray(speed, dtype=np.float64)[ok])
        np.add.at(count, (me[ok], other[ok]), 1.0)
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1.0), np.nan)


def _default_folder() -> Path:
    from predictor.state import data_dir

    return data_dir() / "interference"
