"""Bind the controller's :class:`~energy.controller.ClusterView` to Slurm.

Uses the cluster engineer's :class:`slurm_hooks.slurm_adapter.SlurmAdapter`
(nodes, queue, power) and asks Slurm itself for what the adapter does not
cover: ``scontrol show config`` (power-saving settings), ``scontrol show
hostnames`` (to expand ``SuspendExcNodes``) and ``scontrol show reservation``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from energy.job_series import busy_steps
from energy.planner import NodeInfo

_BUSY_STATES = {"ALLOCATED", "MIXED", "COMPLETING"}
_UNAVAILABLE = {"DOWN", "DRAIN", "DRAINED", "DRAINING", "FAIL", "FAILING", "NOT_RESPONDING",
                "MAINTENANCE", "INVALID_REG", "UNKNOWN", "FUTURE"}


def parse_reserved_nodes(text: str) -> set[str]:
    """Node list expressions of active reservations in ``scontrol show reservation``."""
    exprs = set()
    for token in text.split():
        if token.startswith("Nodes="):
            value = token.split("=", 1)[1]
            if value and value.lower() != "(null)":
                exprs.add(value)
    return exprs


class SlurmClusterView:
    """ClusterView over a :class:`SlurmAdapter` (the local Slurm by default)."""

    def __init__(self, adapter: Any | None = None, exclude: set[str] | None = None) -> None:
        if adapter is None:
            from slurm_hooks.slurm_adapter import SlurmAdapter

            adapter = SlurmAdapter()
        self.adapter = adapter
        self.extra_excluded = set(exclude or ())
        self._settings: dict[str, str] | None = None

    def _hostnames(self, expr: str) -> set[str]:
        if not expr or expr.lower() in ("(null)", "none"):
            return set()
        return set(self.adapter.run(["scontrol", "show", "hostnames", expr]).split())

    def power_settings(self) -> dict[str, str]:
        self._settings = self.adapter.config()
        return self._settings

    def demand_history(self, since: float, until: float, step_s: float) -> pd.Series:
        """Busy + pending nodes per step from ``sacct``: each job from submit to end."""
        index = pd.to_datetime(
            np.arange(np.floor(since / step_s), np.floor(until / step_s)) * step_s, unit="s"
        )
        jobs = self.adapter.jobs(since=since, until=until)
        if jobs.empty:
            return pd.Series(0, index=index, dtype="int64")
        steps, _ = busy_steps(jobs, max(len(self.adapter.nodes()), 1), step=pd.Timedelta(
            seconds=step_s), from_col="submit_time", until=until)
        return steps["demand"].reindex(index, fill_value=0)

    def pending_nodes(self) -> int:
        queue = self.adapter.queue(states=("PENDING",))
        counts = queue["nodes"].fillna(1) if "nodes" in queue else []
        return int(sum(max(1, int(c)) if not math.isnan(c) else 1 for c in counts))

    def nodes(self) -> list[NodeInfo]:
        settings = self._settings or self.power_settings()
        excluded = self._hostnames(settings.get("SuspendExcNodes", "")) | self.extra_excluded
        excluded_parts = {
            p.strip() for p in settings.get("SuspendExcParts", "").split(",")
            if p.strip() and p.strip().lower() != "(null)"
        }
        reserved: set[str] = set()
        for expr in parse_reserved_nodes(self.adapter.run(["scontrol", "show", "reservation"],
                                                          check=False)):
            reserved |= self._hostnames(expr)
        queue = self.adapter.queue(states=("PENDING",))
        for expr in queue.get("node_list", []):
            if isinstance(expr, str) and expr:
                reserved |= self._hostnames(expr)
        out = []
        for n in self.adapter.nodes():
            flags = set(n.flags)
            if "POWERING_UP" in flags:
                power = "powering_up"
            elif "POWERING_DOWN" in flags:
                power = "powering_down"
            elif n.powered_down:
                power = "off"
            else:
                power = "on"
            out.append(NodeInfo(
                name=n.name,
                power=power,
                busy=n.state in _BUSY_STATES,
                reserved=n.name in reserved or "RESERVED" in flags,
                excluded=n.name in excluded or bool(excluded_parts & set(n.partitions)),
                available=n.state not in _UNAVAILABLE and not (_UNAVAILABLE & flags),
                partitions=tuple(n.partitions),
            ))
        return out

    def power(self, names: list[str], action: str) -> None:
        self.adapter.power_node(names, "up" if action == "up" else "down")
