"""Turn a canonical job table into the arrays the event loop replays.

Each kept job gets its partition, its demand (CPUs and GPUs on one node, or a
number of whole nodes for multi-node jobs) and its run-time estimates. Jobs
that cannot be replayed are dropped and counted by reason:

``no_runtime``  run time or submit time missing/negative
``other_vc``    the job's VC is not in the cluster configuration
``oversize``    larger than its partition (more nodes/CPUs/GPUs than it has)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from policies.simulator.cluster import ANY_VC, ClusterConfig

MIN_ESTIMATE_S = 1.0


@dataclass
class Workload:
    """Per-job arrays (index = position in :attr:`jobs`) and per-partition capacities."""

    jobs: pd.DataFrame  # the kept rows of the input, in submit order
    part: np.ndarray  # partition index
    cpus: np.ndarray  # CPUs per node (single-node) demand
    gpus: np.ndarray  # GPUs demand (single-node)
    whole_nodes: np.ndarray  # > 1: needs that many whole nodes; 1: fits one node
    alloc_cpus: np.ndarray  # CPUs actually held (whole nodes count fully)
    alloc_gpus: np.ndarray
    submit: np.ndarray
    run_time: np.ndarray
    time_limit: np.ndarray
    predicted: np.ndarray  # NaN where no prediction was given
    dropped: dict[str, int] = field(default_factory=dict)
    oversize_ids: list[str] = field(default_factory=list)  # first 20

    def __len__(self) -> int:
        return len(self.submit)

    def estimates(self, kind: str) -> np.ndarray:
        """Run-time estimates for backfill reservations.

        ``limit``: the requested time limit, else the true run time (logs
        without limits give the baselines perfect estimates: conservative
        for comparisons against QSSF); ``prediction``: the prediction
        (required), capped at the limit where there is one; ``oracle``: the
        true run time. Floored at 1 s.
        """
        if kind == "oracle":
            est = self.run_time.copy()
        elif kind == "prediction":
            if np.isnan(self.predicted).any():
                raise ValueError("this policy needs a run-time prediction for every job")
            return prediction_estimates(self.predicted, self.time_limit)
        elif kind == "limit":
            ok = np.isfinite(self.time_limit) & (self.time_limit > 0)
            est = np.where(ok, self.time_limit, self.run_time)
        else:
            raise ValueError(f"unknown estimate kind {kind!r}")
        return np.maximum(est, MIN_ESTIMATE_S)


def prediction_estimates(predicted: np.ndarray, time_limit: np.ndarray) -> np.ndarray:
    """Reservation estimates from predictions: capped at the limit where known, floored at 1 s."""
    has_limit = np.isfinite(time_limit) & (time_limit > 0)
    est = np.where(has_limit, np.fmin(predicted, time_limit), predicted)
    return np.maximum(est, MIN_ESTIMATE_S)


def build_workload(
    jobs: pd.DataFrame, cluster: ClusterConfig, predictions: pd.Series | np.ndarray | None = None
) -> Workload:
    """Map ``jobs`` (canonical table) onto ``cluster``; ``predictions`` align with its rows."""
    n_in = len(jobs)
    pred = _aligned_predictions(jobs, predictions)
    dropped = {"no_runtime": 0, "other_vc": 0, "oversize": 0}

    ok = (
        jobs["run_time"].notna()
        & (jobs["run_time"] >= 0)
        & jobs["submit_time"].notna()
        & np.isfinite(jobs["submit_time"])
    ).to_numpy(copy=True)
    dropped["no_runtime"] = int(n_in - ok.sum())

    names = cluster.vc_names
    if names == (ANY_VC,):
        part = np.zeros(n_in, dtype=np.int64)
    else:
        lookup = {name: i for i, name in enumerate(names)}
        part = jobs["vc"].map(lookup).fillna(-1).astype(np.int64).to_numpy()
        other = ok & (part < 0)
        dropped["other_vc"] = int(other.sum())
        ok &= part >= 0
    part = np.where(part < 0, 0, part)

    cpn = np.array([p.cpus_per_node for p in cluster.partitions], dtype=np.int64)[part]
    gpn = np.array([p.gpus_per_node for p in cluster.partitions], dtype=np.int64)[part]
    nodes_in = np.array([p.nodes for p in cluster.partitions], dtype=np.int64)[part]
    cpus = np.ceil(jobs["cpus"].fillna(0).clip(lower=0).to_numpy())
    gpus = np.ceil(jobs["gpus"].fillna(0).clip(lower=0).to_numpy())
    cpus = np.where(cpn == 0, 0, cpus)  # CPUs not modelled on GPU-only nodes
    empty = (cpus == 0) & (gpus == 0)
    cpus = np.where(empty & (cpn > 0), 1, cpus)
    gpus = np.where(empty & (cpn == 0), 1, gpus)
    by_cpu, by_gpu = _nodes_for(cpus, cpn), _nodes_for(gpus, gpn)
    asked = jobs["nodes"].fillna(1).clip(lower=1).to_numpy()
    need = np.maximum(np.maximum(by_cpu, by_gpu), asked)
    oversize = ok & (need > nodes_in)
    dropped["oversize"] = int(oversize.sum())
    oversize_ids = jobs["job_id"].to_numpy()[oversize][:20].tolist()
    ok &= ~oversize

    keep = np.flatnonzero(ok)
    keep = keep[np.argsort(jobs["submit_time"].to_numpy()[keep], kind="stable")]
    need_k = need[keep].astype(np.int64)
    multi = need_k > 1
    alloc_c = np.where(multi, need_k * cpn[keep], cpus[keep])
    alloc_g = np.where(multi, need_k * gpn[keep], gpus[keep])
    kept = jobs.iloc[keep].reset_index(drop=True)
    return Workload(
        jobs=kept,
        part=part[keep],
        cpus=cpus[keep].astype(np.int64),
        gpus=gpus[keep].astype(np.int64),
        whole_nodes=need_k,
        alloc_cpus=alloc_c.astype(np.int64),
        alloc_gpus=alloc_g.astype(np.int64),
        submit=kept["submit_time"].to_numpy(dtype=np.float64),
        run_time=kept["run_time"].to_numpy(dtype=np.float64),
        time_limit=kept["time_limit"].to_numpy(dtype=np.float64),
        predicted=pred[keep],
        dropped=dropped,
        oversize_ids=[str(x) for x in oversize_ids],
    )


def _nodes_for(demand: np.ndarray, per_node: np.ndarray) -> np.ndarray:
    """Nodes needed to hold ``demand``; infinite where nodes have none of it."""
    nodes = np.ceil(demand / np.maximum(per_node, 1))
    return np.where(per_node > 0, nodes, np.where(demand > 0, np.inf, 0.0))


def _aligned_predictions(
    jobs: pd.DataFrame, predictions: pd.Series | np.ndarray | None
) -> np.ndarray:
    if predictions is None:
        return np.full(len(jobs), np.nan)
    if isinstance(predictions, pd.Series):
        if not predictions.index.equals(jobs.index):
            predictions = predictions.reindex(jobs.index)
        values = predictions.to_numpy(dtype=np.float64)
    else:
        values = np.asarray(predictions, dtype=np.float64)
    if values.shape != (len(jobs),):
        raise ValueError(f"predictions have {values.shape} values for {len(jobs)} jobs")
    return values


def window_bounds(start: str | None, end: str | None) -> tuple[float, float]:
    """Epoch seconds for an inclusive date window (``end`` counts its whole day)."""
    lo = -math.inf if not start else pd.Timestamp(start, tz="UTC").timestamp()
    hi = math.inf
    if end:
        stamp = pd.Timestamp(end, tz="UTC")
        is_date = stamp == stamp.normalize() and len(str(end)) <= 10
        hi = (stamp + pd.Timedelta(days=1)).timestamp() if is_date else stamp.timestamp()
    if hi <= lo:
        raise ValueError(f"empty window: start {start} is not before end {end}")
    return lo, hi
