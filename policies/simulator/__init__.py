"""Trace-driven simulator: replay a job log on a cluster model under each queue policy.

``prepare_replay`` (log -> window -> cluster -> workload), ``run_policies`` /
``simulate`` (the one event loop) and ``summary`` (metrics) are the entry
points; ``foresight simulate`` and ``bench/simulator.py`` are built on them.
"""

from policies.simulator.cluster import ClusterConfig, Partition, load_cluster_config
from policies.simulator.colocation import Colocation, lucid_colocation
from policies.simulator.engine import OnlinePredictor, SimResult, simulate
from policies.simulator.metrics import json_entry, summary
from policies.simulator.online import ReplayPredictor
from policies.simulator.replay import (
    OnlineSpec,
    Replay,
    SiblingSpec,
    prepare_replay,
    run_policies,
)
from policies.simulator.siblings import SiblingRescorer
from policies.simulator.workload import Workload, build_workload

__all__ = [
    "ClusterConfig",
    "Colocation",
    "OnlinePredictor",
    "OnlineSpec",
    "Partition",
    "Replay",
    "ReplayPredictor",
    "SiblingRescorer",
    "SiblingSpec",
    "SimResult",
    "Workload",
    "build_workload",
    "json_entry",
    "load_cluster_config",
    "lucid_colocation",
    "prepare_replay",
    "run_policies",
    "simulate",
    "summary",
]
