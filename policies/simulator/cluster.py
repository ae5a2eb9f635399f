"""Cluster models: partitions (virtual clusters) of identical nodes with CPUs and GPUs.

A cluster comes from one of three places:

* a JSON file or a named configuration shipped in ``policies/simulator/configs``
  (``philly``)::

      {"gpus_per_node": 8, "cpus_per_node": 0, "window": ["2017-10-01", "2017-11-30"],
       "vcs": {"vcA": 16, "vcB": {"nodes": 4, "cpus_per_node": 64, "gpus_per_node": 4}}}

  ``cpus_per_node: 0`` means CPUs are not modelled (GPU-only cluster). A VC
  named ``"*"`` takes the jobs of every VC (one machine);
* an SWF header (``MaxProcs``/``MaxNodes``): one partition of ``MaxNodes`` nodes
  with ``MaxProcs / MaxNodes`` processors each (:func:`from_swf_header`);
* the log's peak usage where neither exists (:func:`from_peak_usage`).

:func:`size_for_target_load` shrinks every VC to the fewest nodes that keep its
offered load at or below a target (see its docstring for the rule).
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

ANY_VC = "*"
_CONFIGS = resources.files("policies.simulator") / "configs"


@dataclass(frozen=True)
class Partition:
    """One virtual cluster: ``nodes`` identical nodes."""

    name: str
    nodes: int
    cpus_per_node: int
    gpus_per_node: int

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"partition {self.name!r}: nodes must be >= 1, got {self.nodes}")
        if self.cpus_per_node < 0 or self.gpus_per_node < 0:
            raise ValueError(f"partition {self.name!r}: negative CPUs/GPUs per node")
        if self.cpus_per_node == 0 and self.gpus_per_node == 0:
            raise ValueError(f"partition {self.name!r}: nodes need CPUs or GPUs")


@dataclass(frozen=True)
class ClusterConfig:
    """Partitions plus an optional default replay window (ISO dates, inclusive)."""

    partitions: tuple[Partition, ...]
    name: str = "custom"
    window: tuple[str, str] | None = None
    source: str = field(default="", compare=False)

    @property
    def has_gpus(self) -> bool:
        return any(p.gpus_per_node > 0 for p in self.partitions)

    @property
    def vc_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.partitions)

    def describe(self) -> str:
        parts = ", ".join(
            f"{p.name}={p.nodes}x({p.cpus_per_node}c,{p.gpus_per_node}g)" for p in self.partitions
        )
        return f"{self.name}: {parts}"


def named_configs() -> list[str]:
    """Names of the configurations shipped with the package."""
    return sorted(
        p.name.removesuffix(".json") for p in _CONFIGS.iterdir() if p.name.endswith(".json")
    )


def load_cluster_config(name_or_path: str | Path) -> ClusterConfig:
    """A shipped configuration by name (``philly``) or a JSON file."""
    text: str
    source = str(name_or_path)
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise ValueError(f"cluster config file not found: {path}")
        text = path.read_text()
    else:
        if str(name_or_path) not in named_configs():
            raise ValueError(
                f"unknown cluster config {name_or_path!r}: not a file, and not one of "
                f"{', '.join(named_configs())}"
            )
        text = (_CONFIGS / f"{name_or_path}.json").read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    return parse_cluster_config(raw, source=source)


def parse_cluster_config(raw: dict, source: str = "") -> ClusterConfig:
    """Build a :class:`ClusterConfig` from its JSON form (see the module docstring)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("vcs"), dict) or not raw["vcs"]:
        raise ValueError(f"{source or 'cluster config'}: needs a non-empty 'vcs' object")
    cpn = int(raw.get("cpus_per_node", 0))
    gpn = int(raw.get("gpus_per_node", 0))
    parts = []
    for vc, spec in raw["vcs"].items():
        if isinstance(spec, dict):
            if "nodes" not in spec:
                raise ValueError(f"{source}: vcs.{vc} lacks 'nodes'")
            parts.append(
                Partition(
                    str(vc),
                    int(spec["nodes"]),
                    int(spec.get("cpus_per_node", cpn)),
                    int(spec.get("gpus_per_node", gpn)),
                )
            )
        else:
            parts.append(Partition(str(vc), int(spec), cpn, gpn))
    window = raw.get("window")
    if window is not None and (not isinstance(window, list) or len(window) != 2):
        raise ValueError(f"{source}: 'window' must be [start_date, end_date]")
    return ClusterConfig(
        partitions=tuple(parts),
        name=str(raw.get("name", Path(source).stem or "custom")),
        window=tuple(window) if window else None,
        source=source,
    )


def read_swf_header(path: str | Path) -> dict[str, str]:
    """The ``; Key: value`` comments at the top of an SWF file (plain or gzip)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    header: dict[str, str] = {}
    with opener(path, "rt", errors="replace") as fh:
        for line in fh:
            stripped = line.strip()
            if not stripped:
                continue
            if not stripped.startswith(";"):
                break
            key, sep, value = stripped.lstrip(";").partition(":")
            if sep:
                header[key.strip()] = value.strip()
    return header


def from_swf_header(header: dict[str, str], name: str = "swf") -> ClusterConfig | None:
    """One partition from ``MaxProcs``/``MaxNodes``; ``None`` when the header lacks them."""
    procs = _positive_int(header.get("MaxProcs"))
    nodes = _positive_int(header.get("MaxNodes"))
    if procs is None and nodes is None:
        return None
    if procs is None:
        procs = nodes
    if nodes is None or nodes > procs:
        nodes = procs
    per_node = max(procs // nodes, 1)
    return ClusterConfig(
        (Partition(ANY_VC, procs // per_node, per_node, 0),), name=name, source="SWF header"
    )


def _positive_int(value: str | None) -> int | None:
    try:
        number = int(float(value)) if value is not None else None
    except ValueError:
        return None
    return number if number and number > 0 else None


def from_peak_usage(jobs: pd.DataFrame, name: str = "peak") -> ClusterConfig | None:
    """One processor pool as large as the log's peak concurrent usage.

    Uses the logged start/end times (a sweep over allocations); for GPU logs
    the pool is 8-GPU nodes. ``None`` when the log has no start/end times.
    """
    ok = jobs["start_time"].notna() & jobs["end_time"].notna()
    if not ok.any():
        return None
    gpu = bool((jobs["gpus"].fillna(0) > 0).any())
    size = (jobs["gpus"] if gpu else jobs["cpus"]).fillna(0).clip(lower=0)[ok].to_numpy()
    times = np.concatenate(
        [jobs.loc[ok, "start_time"].to_numpy(), jobs.loc[ok, "end_time"].to_numpy()]
    )
    deltas = np.concatenate([size, -size])
    order = np.lexsort((deltas, times))  # releases before acquisitions at equal times
    peak = float(np.max(np.cumsum(deltas[order]))) if order.size else 0.0
    peak = max(peak, float(size.max()) if size.size else 1.0, 1.0)
    if gpu:
        part = Partition(ANY_VC, math.ceil(peak / 8), 0, 8)
    else:
        part = Partition(ANY_VC, math.ceil(peak), 1, 0)
    return ClusterConfig((part,), name=name, source="peak usage of the log")


def size_for_target_load(
    cluster: ClusterConfig, jobs: pd.DataFrame, target_load: float, window_s: float
) -> ClusterConfig:
    """Shrink every VC to the fewest nodes keeping its offered load <= ``target_load``.

    Offered load of a VC = sum over its jobs of (GPUs, or CPUs on CPU-only
    nodes) x run time, divided by (window length x the VC's capacity).
    The new node count is ``ceil(work / (target_load * window_s * per_node))``,
    never below the nodes its largest job needs, nor below 1. ``jobs`` must
    already be restricted to the window and mapped to the cluster's VCs
    (column ``vc``).
    """
    if not target_load > 0:
        raise ValueError(f"target load must be > 0, got {target_load}")
    if window_s <= 0:
        raise ValueError("the replay window is empty; cannot size for a target load")
    parts = []
    for part in cluster.partitions:
        mine = jobs if part.name == ANY_VC else jobs[jobs["vc"] == part.name]
        use_gpus = part.gpus_per_node > 0
        per_node = part.gpus_per_node if use_gpus else part.cpus_per_node
        size = (mine["gpus"] if use_gpus else mine["cpus"]).fillna(0).clip(lower=0)
        work = float((size * mine["run_time"].fillna(0).clip(lower=0)).sum())
        nodes = math.ceil(work / (target_load * window_s * per_node)) if work > 0 else 1
        largest = math.ceil(float(size.max()) / per_node) if len(size) else 1
        if "nodes" in mine and mine["nodes"].notna().any():
            largest = max(largest, int(mine["nodes"].max()))
        parts.append(replace(part, nodes=max(nodes, largest, 1)))
    return replace(cluster, partitions=tuple(parts), name=f"{cluster.name}@load{target_load:g}")
