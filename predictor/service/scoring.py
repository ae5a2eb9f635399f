"""Job descriptor -> canonical row -> shared features -> duration model -> policy priority.

One path scores any number of jobs (:meth:`Scorer.score_rows`): a feature row
per job from :func:`predictor.features.build_feature_row` (the function behind
``build_features``, which ``foresight train`` uses), one model call for all
rows and one policy call for all priorities. A single request is the same
path with one row.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from policies import Policy, get_policy
from predictor.features import FEATURE_NAMES, build_feature_row
from predictor.history import HistoryStore
from predictor.logs.schema import JOB_COLUMNS, STATES, to_canonical
from predictor.service.schemas import CompletedJob, JobDescriptor, _JobFields

if TYPE_CHECKING:
    from predictor.service.model_slot import LoadedModel

NAN = float("nan")
_SNAPSHOT_COLUMNS = ("cpus", "gpus", "nodes", "time_limit", "submit_time")
SITE_FACTOR_SCALE = 1_000_000
#: |priority| that maps to the ends of the absolute site-factor scale (size x seconds)
_PRIORITY_SPAN = math.log1p(1e10)


#: Key of a pending row holding its ended burst siblings' run time (not a log column).
SIBLING_RUNTIME = "sibling_runtime_s"


def _request_row(job: _JobFields) -> dict[str, Any]:
    return {
        "job_id": "" if job.job_id is None else str(job.job_id),
        "user": job.user,
        "account": job.account,
        "partition": job.partition,
        "job_name": job.name,
        "qos": job.qos,
        "vc": job.partition,  # Slurm has no separate virtual cluster: the partition is it
        "cpus": float(job.cpus),
        "gpus": float(job.total_gpus()),
        "nodes": float(job.nodes),
        "mem_mb": NAN if job.mem_mb is None else float(job.mem_mb),
        "time_limit": NAN if job.time_limit is None else float(job.time_limit),
    }


def pending_row(job: JobDescriptor, now: float) -> dict[str, Any]:
    """The canonical row (every :data:`JOB_COLUMNS` key) of a pending job."""
    row = _request_row(job)
    row.update(
        submit_time=now if job.submit_time is None else float(job.submit_time),
        start_time=NAN, end_time=NAN, run_time=NAN, wait_time=NAN,
        state="PENDING", exit_code=NAN,
    )  # fmt: skip
    if job.sibling_runtime_s is not None:
        row[SIBLING_RUNTIME] = float(job.sibling_runtime_s)
    return row


def completed_row(job: CompletedJob) -> dict[str, Any]:
    """The canonical row of a finished job."""
    row = _request_row(job)
    state = job.state.strip().upper().split(" ")[0] if job.state.strip() else "UNKNOWN"
    row.update(
        submit_time=float(job.submit_time),
        start_time=float(job.start_time),
        end_time=float(job.end_time),
        run_time=float(job.end_time - job.start_time),
        wait_time=float(job.start_time - job.submit_time),
        state=state if state in STATES else "UNKNOWN",
        exit_code=NAN if job.exit_code is None else float(job.exit_code),
    )
    return row


def jobs_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The canonical job table of ``rows``."""
    return to_canonical(pd.DataFrame.from_records(list(rows), columns=list(JOB_COLUMNS)))


def absolute_site_factor(priority: np.ndarray) -> np.ndarray:
    """Priorities -> ``[0, SITE_FACTOR_SCALE]`` on a fixed signed-log scale (no queue needed).

    Monotone and independent of the other jobs (0 = lowest, scale/2 = priority 0,
    scale = highest): the hook's single score at submission and the priority
    daemon's batch re-scores of other jobs must be comparable in Slurm's queue,
    which a rank within one batch is not.
    """
    p = np.asarray(priority, dtype=np.float64)
    scaled = np.minimum(np.maximum(np.sign(p) * np.log1p(np.abs(p)) / _PRIORITY_SPAN, -1.0), 1.0)
    return np.rint((scaled + 1.0) * SITE_FACTOR_SCALE / 2).astype(np.int64)


def absolute_site_factor_one(priority: float) -> int:
    """:func:`absolute_site_factor` of one priority given as a Python float."""
    signed_log = math.copysign(math.log1p(abs(priority)), priority)
    scaled = min(max(signed_log / _PRIORITY_SPAN, -1.0), 1.0)
    return round((scaled + 1.0) * SITE_FACTOR_SCALE / 2)


def feature_row(row: dict[str, Any], history: HistoryStore, attempts: int = 3) -> list[float]:
    """:func:`build_feature_row`, retried if a writer thread changed a bucket mid-read.

    History writers (completions, other workers' rows) run in other threads of
    the worker and hold :attr:`HistorySync.lock` only among themselves, so a
    slow SQLite commit never stalls scoring. The one way a concurrent write can
    disturb a read is a bucket's recent-runs deque changing while it is being
    iterated (``RuntimeError``); the row is then simply built again.
    """
    for attempt in range(attempts):
        try:
            return build_feature_row(row, history)
        except RuntimeError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class PredictionError(RuntimeError):
    """The model answered something that is not a usable prediction (a model bug)."""


#: A result column: an array (:meth:`Scorer.score_rows`), a list of one (:meth:`Scorer.score_row`).
Column = np.ndarray | list[float]


@dataclass
class Scores:
    """Column-wise results for n jobs."""

    runtime: Column
    lo: Column
    hi: Column
    gpu_time: Column
    priority: Column
    site_factor: np.ndarray | list[int]


@dataclass
class StageTimes:
    """Seconds spent per stage of one scoring call (for the benchmark's breakdown)."""

    features: float = 0.0
    model: float = 0.0
    policy: float = 0.0


class Scorer:
    """Scores jobs with the served model and the configured policy."""

    def __init__(self, policy_name: str) -> None:
        self.policy: Policy = get_policy(policy_name)
        self.policy_name = self.policy.name

    def check_policy(self) -> None:
        """Fail early (at start-up) if the policy needs snapshot columns the service lacks."""
        probe = {c: np.ones(1) for c in (*_SNAPSHOT_COLUMNS, "predicted_runtime")}
        try:
            self.policy(probe, 0.0)
        except KeyError as exc:
            raise ValueError(
                f"policy {self.policy_name!r} cannot score pending jobs: {exc.args[0]} "
                "(a live queue has only the request and the prediction)"
            ) from exc

    def _predict(self, loaded: LoadedModel, features: list[list[float]]) -> tuple[np.ndarray, ...]:
        X = np.array(features, dtype=np.float64).reshape(len(features), len(FEATURE_NAMES))
        pred = loaded.model.predict(X)
        out = tuple(
            np.asarray(pred[key], dtype=np.float64)
            for key in ("runtime_s", "runtime_lo_s", "runtime_hi_s")
        )
        if not all(np.isfinite(a).all() for a in out):
            raise PredictionError(f"model {loaded.version} returned a non-finite prediction")
        return out

    def _finish(
        self,
        runtime: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        columns: dict[str, np.ndarray],
        now: float,
        times: StageTimes,
    ) -> Scores:
        t0 = time.perf_counter()
        gpus = columns["gpus"]
        gpus = np.where(np.isnan(gpus), 0.0, gpus)  # (np.nan_to_num costs 10x more on one row)
        snapshot = dict(columns)
        snapshot["predicted_runtime"] = runtime
        priority = np.asarray(self.policy(snapshot, now), dtype=np.float64)
        site = absolute_site_factor(priority)
        times.policy += time.perf_counter() - t0
        return Scores(runtime, lo, hi, runtime * gpus, priority, site)

    def score_rows(
        self,
        loaded: LoadedModel,
        rows: Sequence[dict[str, Any]],
        history: HistoryStore,
        now: float,
        *,
        times: StageTimes | None = None,
    ) -> Scores:
        """Score canonical rows in one pass: one feature row each, one model call, one policy call.

        Features come from :func:`predictor.features.build_feature_row`, the function
        ``build_features`` wraps, fed the rows directly (no DataFrame round trip).
        Site factors use one absolute mapping (:func:`absolute_site_factor`), so a job
        scored alone at submission and the same job re-scored in the priority daemon's
        batch land on one scale. Reads take no lock (see :func:`feature_row`).
        """
        times = times if times is not None else StageTimes()
        t0 = time.perf_counter()
        features = [feature_row(row, history) for row in rows]
        t1 = time.perf_counter()
        runtime, lo, hi = self._predict(loaded, features)
        siblings = [row.get(SIBLING_RUNTIME, NAN) for row in rows]
        if any(v == v for v in siblings):  # ended burst siblings known: they replace the model
            runtime = np.where(np.isnan(siblings), runtime, siblings)
            lo, hi = np.minimum(lo, runtime), np.maximum(hi, runtime)
        t2 = time.perf_counter()
        times.features += t1 - t0
        times.model += t2 - t1
        columns = {
            c: np.fromiter((row[c] for row in rows), dtype=np.float64, count=len(rows))
            for c in _SNAPSHOT_COLUMNS
        }
        return self._finish(runtime, lo, hi, columns, now, times)

    def score_row(
        self,
        loaded: LoadedModel,
        row: dict[str, Any],
        history: HistoryStore,
        now: float,
        *,
        times: StageTimes | None = None,
    ) -> Scores:
        """:meth:`score_rows` of ``[row]``, on Python floats: the path of each ``sbatch``.

        On one row, every numpy call costs more than the arithmetic it does (about
        0.1 ms each when the call finds the caches cold, as a submission a few
        milliseconds after the last one does), so the model's ``predict_one`` and the
        policy's ``score_one`` compute the same numbers without arrays (tests hold the
        two paths equal). A model or policy without them goes through :meth:`score_rows`.
        """
        model = loaded.model
        if not (hasattr(model, "predict_one") and hasattr(self.policy, "score_one")):
            return self.score_rows(loaded, [row], history, now, times=times)
        times = times if times is not None else StageTimes()
        t0 = time.perf_counter()
        features = feature_row(row, history)
        t1 = time.perf_counter()
        runtime, lo, hi = model.predict_one(features)
        if not (math.isfinite(runtime) and math.isfinite(lo) and math.isfinite(hi)):
            raise PredictionError(f"model {loaded.version} returned a non-finite prediction")
        sibling = row.get(SIBLING_RUNTIME, NAN)
        if sibling == sibling:  # ended burst siblings known: they replace the model
            runtime, lo, hi = sibling, min(lo, sibling), max(hi, sibling)
        t2 = time.perf_counter()
        job = {c: row[c] for c in _SNAPSHOT_COLUMNS}
        job["predicted_runtime"] = runtime
        priority = self.policy.score_one(job, now)  # type: ignore[attr-defined]
        site = absolute_site_factor_one(priority)
        gpus = row["gpus"]
        gpu_time = runtime * (0.0 if gpus != gpus else gpus)
        times.features += t1 - t0
        times.model += t2 - t1
        times.policy += time.perf_counter() - t2
        return Scores([runtime], [lo], [hi], [gpu_time], [priority], [site])
