"""Summaries of one replay: JCT, queueing delay, bounded slowdown, makespan, utilisation.

Definitions (seconds):

* JCT = end - submit;
* queueing delay = JCT - run time (all time not running, preemptions included);
* bounded slowdown = max(JCT / max(run time, 10 s), 1);
* makespan = last end - first submit;
* utilisation = resources held x time / (capacity x makespan), for GPUs where
  the cluster has them, else CPUs (both are reported in ``summary``);
* co-location mode only: stretch = wall seconds a job held its resources /
  its solo run time (>= 1: the slowdown it suffered from co-runners);
  ``avg_stretch`` (per job), ``gpu_stretch`` (weighted by solo GPU/CPU time)
  and ``slowed_15`` (share of jobs stretched by more than 1/0.85, i.e. run
  slower than 85% of solo speed on average).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.simulator.engine import SimResult

BSLD_THRESHOLD_S = 10.0


def _stats(result: SimResult, rows: np.ndarray) -> dict[str, Any]:
    w = result.workload
    if rows.size == 0:
        return {"jobs": 0}
    jct = result.end[rows] - w.submit[rows]
    queue = np.maximum(jct - w.run_time[rows], 0.0)
    bsld = np.maximum(jct / np.maximum(w.run_time[rows], BSLD_THRESHOLD_S), 1.0)
    return {
        "jobs": int(rows.size),
        "avg_jct": float(jct.mean()),
        "p50_jct": float(np.percentile(jct, 50)),
        "p95_jct": float(np.percentile(jct, 95)),
        "p99_jct": float(np.percentile(jct, 99)),
        "avg_queue": float(queue.mean()),
        "p99_queue": float(np.percentile(queue, 99)),
        "avg_bsld": float(bsld.mean()),
    }


def _utilisation(result: SimResult, rows: np.ndarray, nodes_of: np.ndarray) -> dict[str, float]:
    w, cluster = result.workload, result.cluster
    if rows.size == 0:
        return {"gpu_util": 0.0, "cpu_util": 0.0, "makespan": 0.0}
    makespan = float(result.end[rows].max() - w.submit[rows].min())
    parts = [cluster.partitions[i] for i in nodes_of]
    cap_g = sum(p.nodes * p.gpus_per_node for p in parts)
    cap_c = sum(p.nodes * p.cpus_per_node for p in parts)
    busy_g = float((w.alloc_gpus[rows] * w.run_time[rows]).sum())
    busy_c = float((w.alloc_cpus[rows] * w.run_time[rows]).sum())
    span = max(makespan, 1e-9)
    return {
        "gpu_util": busy_g / (cap_g * span) if cap_g else 0.0,
        "cpu_util": busy_c / (cap_c * span) if cap_c else 0.0,
        "makespan": makespan,
    }


def summary(result: SimResult) -> dict[str, Any]:
    """Everything the CLI table and the report show for one policy."""
    w = result.workload
    every = np.arange(len(w))
    out = _stats(result, every)
    util = _utilisation(result, every, np.arange(len(result.cluster.partitions)))
    out.update(util)
    out["utilization"] = util["gpu_util"] if result.cluster.has_gpus else util["cpu_util"]
    out["preemptions"] = result.preemptions
    if result.held is not None:
        out.update(_stretch(result))
    if len(result.cluster.partitions) > 1:
        by_vc = {}
        for i, part in enumerate(result.cluster.partitions):
            rows = np.flatnonzero(w.part == i)
            stats = _stats(result, rows)
            u = _utilisation(result, rows, np.array([i]))
            stats["utilization"] = u["gpu_util"] if part.gpus_per_node else u["cpu_util"]
            by_vc[part.name] = stats
        out["by_vc"] = by_vc
    return out


def _stretch(result: SimResult) -> dict[str, float]:
    """How much co-location slowed jobs down (see the module docstring)."""
    assert result.held is not None
    w = result.workload
    ran = w.run_time > 0
    if not ran.any():
        return {"avg_stretch": 1.0, "gpu_stretch": 1.0, "slowed_15": 0.0}
    stretch = np.maximum(result.held[ran] / w.run_time[ran], 1.0)
    weight = np.where(w.alloc_gpus > 0, w.alloc_gpus, w.alloc_cpus)[ran] * w.run_time[ran]
    return {
        "avg_stretch": float(stretch.mean()),
        "gpu_stretch": float((stretch * weight).sum() / max(weight.sum(), 1e-9)),
        "slowed_15": float((stretch > 1.0 / 0.85 + 1e-9).mean()),
    }


JSON_KEYS = ("jobs", "avg_jct", "p99_jct", "avg_queue", "p99_queue", "avg_bsld", "utilization")
#: added to the ``--json`` entry in co-location mode
COLOCATION_KEYS = ("avg_stretch", "gpu_stretch", "slowed_15")


def json_entry(stats: dict[str, Any]) -> dict[str, Any]:
    """The ``--json`` shape of one policy: :data:`JSON_KEYS` plus optional ``by_vc``."""
    entry = {k: stats[k] for k in (*JSON_KEYS, *COLOCATION_KEYS) if k in stats}
    if "by_vc" in stats:
        entry["by_vc"] = {
            vc: {k: s[k] for k in JSON_KEYS if k in s} for vc, s in stats["by_vc"].items()
        }
    return entry
