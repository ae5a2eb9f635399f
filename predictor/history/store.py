"""``HistoryStore``: per-key running statistics of ended jobs, persisted to SQLite.

The in-memory buckets (:class:`~predictor.history.stats.KeyStats`) answer
feature look-ups in microseconds; SQLite (``<state dir>/history.sqlite``)
keeps the ended and submitted jobs so a restarted service rebuilds the same
state. Both ``add_completed`` and ``add_submitted`` are idempotent per job
identity, ``(job_id, submit_time)``: replaying a log never double-counts, and a
job id that Slurm reuses (ids wrap at ``MaxJobId`` and restart when a
controller's state is reset; another log's ids overlap) is a new job.

Causality is the caller's contract: the store answers with what it holds, so
to predict a job submitted at ``t`` it must hold only jobs that ended by ``t``
(the live service naturally does; offline, :func:`predictor.features.causal_features`
sweeps events in time order).
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.history.keys import ALL_KINDS, FEATURE_KINDS, job_keys
from predictor.history.stats import NAN, STAT_FEATURES, KeyStats, log_runtime

HISTORY_FILE = "history.sqlite"

_ENDED_COLS = (
    "job_id", "user", "account", "job_name", "cpus", "gpus",
    "time_limit", "submit_time", "end_time", "run_time",
)  # fmt: skip
_SUBMITTED_COLS = ("job_id", "user", "account", "job_name", "cpus", "gpus", "submit_time")
_EMPTY_STATS = KeyStats()


def job_identity(job: Mapping[str, Any]) -> tuple[str, float]:
    """What makes a job the same job: its id and its submit time (whole seconds)."""
    submit = _float(job.get("submit_time"))
    return str(job.get("job_id", "")), (round(submit) if math.isfinite(submit) else -1.0)


def effective_end(jobs: pd.DataFrame) -> pd.Series:
    """Each job's end time: ``end_time`` where known, else ``submit + wait + run_time``.

    Logs that record only durations (Philly) get ``submit_time + run_time``
    (their wait is unknown and taken as 0): a documented approximation.
    """
    derived = jobs["submit_time"] + jobs["wait_time"].fillna(0.0) + jobs["run_time"]
    return jobs["end_time"].where(jobs["end_time"].notna(), derived)


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return NAN


class HistoryStore:
    """Running per-user/account/name/user+name statistics of ended jobs.

    ``path=None`` keeps everything in memory (offline sweeps, tests).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        # reads use .get (no bucket is made by a look-up); folds create buckets on first use
        self._buckets: dict[str, defaultdict[str, KeyStats]] = {
            kind: defaultdict(KeyStats) for kind in ALL_KINDS
        }
        self._ended_ids: set[tuple[str, float]] = set()
        self._submitted_ids: set[tuple[str, float]] = set()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._create_tables()
            self._replay()

    @classmethod
    def open(cls, state_dir: Path | str) -> HistoryStore:
        """The store persisted at ``<state_dir>/history.sqlite``."""
        return cls(Path(state_dir) / HISTORY_FILE)

    # --- persistence -------------------------------------------------------
    def _create_tables(self) -> None:
        assert self._db is not None
        ended = ", ".join(f"{c} {'TEXT' if c in _SUBMITTED_COLS[:4] else 'REAL'}"
                          for c in _ENDED_COLS[1:])
        submitted = ", ".join(f"{c} {'TEXT' if c in _SUBMITTED_COLS[:4] else 'REAL'}"
                              for c in _SUBMITTED_COLS[1:])
        with self._db:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS ended (job_id TEXT, {ended}, "
                "PRIMARY KEY (job_id, submit_time))"
            )
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS submitted (job_id TEXT, {submitted}, "
                "PRIMARY KEY (job_id, submit_time))"
            )

    def _replay(self) -> None:
        assert self._db is not None
        cols = ", ".join(_SUBMITTED_COLS)
        for row in self._db.execute(f"SELECT {cols} FROM submitted ORDER BY submit_time"):
            self._fold_submitted(dict(zip(_SUBMITTED_COLS, row, strict=True)))
        cols = ", ".join(_ENDED_COLS)
        for row in self._db.execute(f"SELECT {cols} FROM ended ORDER BY end_time"):
            self._fold_ended(dict(zip(_ENDED_COLS, row, strict=True)))

    def _persist(self, table: str, cols: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        if self._db is None or not rows:
            return
        marks = ", ".join("?" for _ in cols)
        values = [tuple(row.get(c) for c in cols) for row in rows]
        with self._db:
            self._db.executemany(
                f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) VALUES ({marks})", values
            )

    def close(self) -> None:
        """Close the SQLite connection (the in-memory state stays usable)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    # --- updates -----------------------------------------------------------
    def _fold_ended(self, job: Mapping[str, Any], keys: Mapping[str, str] | None = None) -> bool:
        ident = job_identity(job)
        if ident in self._ended_ids:
            return False
        self._ended_ids.add(ident)
        run, end, limit = _float(job["run_time"]), _float(job["end_time"]), _float(
            job.get("time_limit")
        )
        lg = log_runtime(run)
        ratio = lg - log_runtime(limit) if limit > 0 else NAN
        buckets = self._buckets
        for kind, key in (keys if keys is not None else job_keys(job)).items():
            buckets[kind][key].add_ended(run, lg, end, ratio)
        return True

    def _fold_submitted(
        self, job: Mapping[str, Any], keys: Mapping[str, str] | None = None
    ) -> bool:
        ident = job_identity(job)
        if ident in self._submitted_ids:
            return False
        self._submitted_ids.add(ident)
        submit = _float(job["submit_time"])
        buckets = self._buckets
        for kind, key in (keys if keys is not None else job_keys(job)).items():
            buckets[kind][key].add_submitted(submit)
        return True

    def add_completed(self, jobs: pd.DataFrame) -> int:
        """Fold in ended jobs (canonical rows); returns how many were new.

        Rows without a positive, finite run time or an end time are ignored.
        Idempotent per ``job_id``; rows are applied in end-time order.
        """
        if jobs.empty:
            return 0
        frame = jobs.assign(end_time=effective_end(jobs))
        ok = np.isfinite(frame["run_time"]) & (frame["run_time"] > 0) & frame["end_time"].notna()
        frame = frame.loc[ok].sort_values("end_time", kind="stable")
        new_rows = [row for row in _records(frame, _ENDED_COLS) if self._fold_ended(row)]
        self._persist("ended", _ENDED_COLS, new_rows)
        return len(new_rows)

    def add_submitted(self, jobs: pd.DataFrame) -> int:
        """Record submissions (for running-job counts); returns how many were new."""
        if jobs.empty:
            return 0
        frame = jobs.sort_values("submit_time", kind="stable")
        new_rows = [row for row in _records(frame, _SUBMITTED_COLS) if self._fold_submitted(row)]
        self._persist("submitted", _SUBMITTED_COLS, new_rows)
        return len(new_rows)

    def record_submitted(self, job: Mapping[str, Any]) -> bool:
        """Record one submission given as a mapping (the service's fast path)."""
        row = {c: job.get(c) for c in _SUBMITTED_COLS}
        new = self._fold_submitted(row)
        if new:
            self._persist("submitted", _SUBMITTED_COLS, [row])
        return new

    def record_completed(
        self, job: Mapping[str, Any], keys: Mapping[str, str] | None = None
    ) -> bool:
        """Fold in one ended job given as a mapping (``run_time`` > 0 and ``end_time`` set;
        ``keys`` = its :func:`job_keys` if known): the one-job form of :meth:`add_completed`."""
        row = {c: job.get(c) for c in _ENDED_COLS}
        new = self._fold_ended(row, keys)
        if new:
            self._persist("ended", _ENDED_COLS, [row])
        return new

    # --- queries -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ended_ids)

    def stats(self, kind: str, key: str) -> KeyStats | None:
        """The bucket of ``key`` of ``kind`` (None if never seen)."""
        return self._buckets[kind].get(key)

    def history_features(
        self, job: Mapping[str, Any], now: float, keys: Mapping[str, str] | None = None
    ) -> list[float]:
        """:data:`HISTORY_FEATURE_NAMES` values for ``job`` at time ``now``."""
        keys = keys if keys is not None else job_keys(job)
        out: list[float] = []
        for kind in FEATURE_KINDS:
            key = keys.get(kind)
            stats = self._buckets[kind].get(key) if key is not None else None
            out.extend((stats or _EMPTY_STATS).features(now))
        del out[_ALL_N]  # a pure clock (grows with the log): invites fitting eras
        return out

    def last2(self, job: Mapping[str, Any], keys: Mapping[str, str] | None = None) -> float:
        """Tsafrir: mean of the user's last two ended run times (NaN without a user/history)."""
        keys = keys if keys is not None else job_keys(job)
        stats = self._buckets["user"].get(keys["user"]) if "user" in keys else None
        return stats.last2_mean() if stats is not None else NAN

    def helios(self, job: Mapping[str, Any], keys: Mapping[str, str] | None = None) -> float:
        """Helios' naive history look-up (exact-name variant of its ``NaiveEstimator``).

        Same user and job name (same GPU count preferred) -> mean run time; else
        all jobs with that name; else the user's mean; else the global mean.
        """
        keys = keys if keys is not None else job_keys(job)
        b = self._buckets

        def mean(kind: str) -> float:
            stats = b[kind].get(keys[kind]) if kind in keys else None
            return stats.mean_run() if stats is not None and stats.n else NAN

        name_mean = mean("name")
        if not math.isnan(name_mean):
            for kind in ("user_name_gpus", "user_name"):
                value = mean(kind)
                if not math.isnan(value):
                    return value
            return name_mean
        for kind in ("user", "all"):
            value = mean(kind)
            if not math.isnan(value):
                return value
        return NAN


_ALL_NAMES = [f"{kind}_{stat}" for kind in FEATURE_KINDS for stat in STAT_FEATURES]
_ALL_N = _ALL_NAMES.index("all_n")
#: Names of the history part of the feature vector.
HISTORY_FEATURE_NAMES: tuple[str, ...] = tuple(n for n in _ALL_NAMES if n != "all_n")


def _records(frame: pd.DataFrame, cols: Iterable[str]) -> list[dict[str, Any]]:
    cols = [c for c in cols if c in frame.columns]
    return frame[cols].to_dict("records")
