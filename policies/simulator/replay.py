"""Plan and run a replay: log -> window -> cluster -> workload -> one result per policy.

Shared by ``foresight simulate`` and ``bench/simulator.py``. The cluster is,
in order of precedence: the ``cluster_config`` given (name or file); the SWF
header's ``MaxProcs``/``MaxNodes`` (processors as the resource); the log's
peak concurrent usage from its start/end times; and for logs with neither
(Philly-style) one pool sized by the target-load rule at 0.7.
``target_load`` then shrinks every VC (see
:func:`policies.simulator.cluster.size_for_target_load`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from policies.base import get_policy
from policies.simulator.cluster import (
    ANY_VC,
    ClusterConfig,
    Partition,
    from_peak_usage,
    from_swf_header,
    load_cluster_config,
    read_swf_header,
    size_for_target_load,
)
from policies.simulator.colocation import Colocation
from policies.simulator.engine import SimResult, simulate
from policies.simulator.online import ReplayPredictor
from policies.simulator.siblings import SiblingRescorer
from policies.simulator.workload import Workload, build_workload, window_bounds
from predictor.history.bursts import BURST_GAP_S

DEFAULT_LOAD_WITHOUT_SIZE = 0.7


@dataclass
class Replay:
    """Everything one ``simulate`` run replays."""

    log: str
    cluster: ClusterConfig
    workload: Workload
    window: tuple[float, float]
    out_of_window: int
    notes: list[str] = field(default_factory=list)
    prior: pd.DataFrame | None = None  # the log's jobs before the window (online predictions)


@dataclass(frozen=True)
class OnlineSpec:
    """Predict inside the replay (:class:`ReplayPredictor`) for policies that use predictions."""

    rescore_interval: float = math.inf  # seconds; inf: predict once, at submission
    retrain_interval: float = 7 * 86400.0
    refeaturize: bool = True  # ticks rebuild features from the history (False: submit-time rows)


@dataclass(frozen=True)
class SiblingSpec:
    """Re-score waiting jobs from their burst's ended siblings (:class:`SiblingRescorer`)."""

    gap: float = BURST_GAP_S  # seconds between two submissions of one burst
    weight: float = 1.0  # weight of the siblings' mean log run time against the prediction
    censored_interval: float = math.inf  # seconds between ticks using running siblings' age


def infer_cluster(log_path: str | Path, log_format: str, jobs: pd.DataFrame) -> ClusterConfig:
    """The cluster a log ran on: SWF header, else peak usage, else a pool sized later."""
    if log_format == "swf":
        header_cluster = from_swf_header(read_swf_header(log_path), name=Path(log_path).name)
        if header_cluster is not None:
            return header_cluster
    peak = from_peak_usage(jobs, name=Path(log_path).name)
    if peak is not None:
        return peak
    gpu = bool((jobs["gpus"].fillna(0) > 0).any())
    part = Partition(ANY_VC, 1, 0 if gpu else 1, 8 if gpu else 0)
    return ClusterConfig((part,), name=Path(log_path).name, source="unsized")


def prepare_replay(
    jobs: pd.DataFrame,
    *,
    log: str,
    log_format: str,
    cluster_config: str | Path | None = None,
    target_load: float | None = None,
    start: str | None = None,
    end: str | None = None,
    predictions: pd.Series | None = None,
) -> Replay:
    """Window the log, choose and size the cluster, and build the workload."""
    notes: list[str] = []
    if cluster_config is not None:
        cluster = load_cluster_config(cluster_config)
        notes.append(f"cluster from {cluster.source}")
    else:
        cluster = infer_cluster(log, log_format, jobs)
        notes.append(f"cluster inferred from {cluster.source}")
    if (start is None and end is None) and cluster.window is not None:
        start, end = cluster.window
    lo, hi = window_bounds(start, end)
    inside = (jobs["submit_time"] >= lo) & (jobs["submit_time"] < hi)
    windowed = jobs[inside]
    pred = predictions[inside] if predictions is not None else None
    if cluster.source == "unsized" and target_load is None:
        target_load = DEFAULT_LOAD_WITHOUT_SIZE
        notes.append(f"log has no machine size or start/end times: sized for load {target_load}")
    if target_load is not None:
        span = _span(windowed, lo, hi)
        fitting = build_workload(windowed, cluster).jobs
        cluster = size_for_target_load(cluster, fitting, target_load, span)
        notes.append(f"VCs shrunk to offered load <= {target_load:g} over {span / 86400:.1f} days")
    workload = build_workload(windowed, cluster, pred)
    prior = jobs[jobs["submit_time"] < lo]
    return Replay(log, cluster, workload, (lo, hi), int((~inside).sum()), notes, prior)


def _span(jobs: pd.DataFrame, lo: float, hi: float) -> float:
    """Window length in seconds; an open end is closed by the first/last submit."""
    submits = jobs["submit_time"]
    first = lo if math.isfinite(lo) else float(submits.min())
    last = hi if math.isfinite(hi) else float(submits.max())
    return max(last - first, 1.0)


def run_policies(
    replay: Replay,
    names: Sequence[str],
    *,
    backfill: bool = True,
    on_progress: Callable[[str, int], None] | None = None,
    params: dict[str, dict[str, Any]] | None = None,
    online: OnlineSpec | None = None,
    colocation: Colocation | None = None,
    siblings: SiblingSpec | None = None,
) -> dict[str, SimResult]:
    """Replay the workload once per policy (all policies share the one event loop).

    ``params`` maps a policy name to keyword overrides (``{"qssf": {"max_wait": ...}}``).
    With ``online``, policies whose reservations use predictions (QSSF) get a
    fresh :class:`ReplayPredictor` each; with ``siblings`` they get a
    :class:`SiblingRescorer` over the workload's predictions instead (the two
    do not combine); ``colocation`` applies to every policy.
    """
    if online is not None and siblings is not None:
        raise ValueError("sibling re-scoring works on the predictions given to the replay; "
                         "it does not combine with online predictions")  # fmt: skip
    params = params or {}
    # unknown names fail before any work
    policies = [get_policy(name, **params.get(name.strip().lower(), {})) for name in names]
    results: dict[str, SimResult] = {}
    for policy in policies:
        callback = None
        if on_progress is not None:
            callback = _bind(on_progress, policy.name)
        predictor = None
        if online is not None and policy.estimate == "prediction":
            predictor = ReplayPredictor(replay.workload.jobs, replay.prior,
                                        interval=online.rescore_interval,
                                        retrain_interval=online.retrain_interval,
                                        refeaturize=online.refeaturize)  # fmt: skip
        elif siblings is not None and policy.estimate == "prediction":
            predictor = SiblingRescorer(replay.workload.jobs, replay.workload.predicted,
                                        gap=siblings.gap, weight=siblings.weight,
                                        censored_interval=siblings.censored_interval)  # fmt: skip
        results[policy.name] = simulate(
            replay.workload, replay.cluster, policy, backfill=backfill, progress=callback,
            predictor=predictor, colocation=colocation,
        )  # fmt: skip
    return results


def _bind(fn: Callable[[str, int], None], name: str) -> Callable[[int], None]:
    return lambda done: fn(name, done)


def oracle_with_noise(run_time: pd.Series, sigma: float, seed: int = 0) -> pd.Series:
    """True run times times a log-normal error (for tests and what-if runs, not the product)."""
    rng = np.random.default_rng(seed)
    noise = np.exp(rng.normal(0.0, sigma, len(run_time)))
    return run_time * noise
