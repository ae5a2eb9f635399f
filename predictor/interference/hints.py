"""Placement hints: which nodes a new job should avoid or prefer, given what already runs there.

:func:`placement_hints` is a pure function of the new job's profile, the
profiles of the jobs running on each candidate node and a :class:`HintConfig`.
Every running job is a potential GPU co-runner of the new job; a node is
*avoided* when any such pair is predicted to slow either job by more than
``avoid_slowdown``, *preferred* when it is idle or every pair stays within
``prefer_slowdown``. A new job without a profile gets no hints, and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from predictor.interference.profiles import JobProfile, ProfileStore
from predictor.models.interference import InterferenceModel, profile_matrix


@dataclass(frozen=True)
class HintConfig:
    """Thresholds, as fractions of solo speed lost."""

    avoid_slowdown: float = 0.15
    prefer_slowdown: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.prefer_slowdown <= self.avoid_slowdown < 1:
            raise ValueError("need 0 < prefer_slowdown <= avoid_slowdown < 1, got "
                             f"{self.prefer_slowdown} and {self.avoid_slowdown}")  # fmt: skip


@dataclass(frozen=True)
class RunningJob:
    """A job running on a node; ``profile`` None when none is known."""

    job_id: str
    profile: JobProfile | None


@dataclass(frozen=True)
class NodeHint:
    """One node's verdict: worst predicted speeds (new job, running jobs) and why."""

    node: str
    speed_new: float | None
    speed_running: float | None
    reason: str


@dataclass(frozen=True)
class PlacementHints:
    """Nodes to avoid / prefer; ``unscored`` nodes run only jobs without profiles."""

    status: Literal["ok", "no_profile"]
    avoid: list[NodeHint] = field(default_factory=list)
    prefer: list[NodeHint] = field(default_factory=list)
    unscored: list[NodeHint] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (for the score route's ``hints`` field)."""
        return asdict(self)


Running = RunningJob | JobProfile | None


def _as_running(jobs: Sequence[Running]) -> list[RunningJob]:
    out = []
    for i, job in enumerate(jobs):
        out.append(job if isinstance(job, RunningJob) else RunningJob(f"#{i}", job))
    return out


def placement_hints(
    new: JobProfile | None,
    nodes: Mapping[str, Sequence[Running]],
    model: InterferenceModel,
    config: HintConfig | None = None,
) -> PlacementHints:
    """Hints for placing a job with profile ``new`` on one of ``nodes`` (node -> running jobs)."""
    cfg = config or HintConfig()
    if new is None:
        return PlacementHints(
            "no_profile",
            message="no profile for this job (none posted or "
            "learned for its user+name, user or account): no placement hints",
        )
    running = {node: _as_running(jobs) for node, jobs in nodes.items()}
    known = [(node, job) for node, jobs in running.items() for job in jobs if job.profile]
    speed_new = speed_run = np.empty(0)
    if known:
        others = profile_matrix([job.profile for _, job in known], model.fields)
        mine = np.repeat(profile_matrix([new], model.fields), len(known), axis=0)
        speed_new, speed_run = model.cached_pair_speeds(mine, others)
        speed_new, speed_run = np.minimum(speed_new, 1.0), np.minimum(speed_run, 1.0)
    avoid_at, prefer_at = 1.0 - cfg.avoid_slowdown, 1.0 - cfg.prefer_slowdown
    hints = PlacementHints("ok")
    k = 0
    for node, jobs in running.items():
        unknown = [j.job_id for j in jobs if j.profile is None]
        scored = [j for j in jobs if j.profile is not None]
        sn, sr = speed_new[k : k + len(scored)], speed_run[k : k + len(scored)]
        k += len(scored)
        note = f"; no profile for running job(s) {', '.join(unknown)}" if unknown else ""
        if not jobs:
            hints.prefer.append(NodeHint(node, 1.0, None, "no running jobs: no co-location"))
            continue
        if not scored:
            hints.unscored.append(NodeHint(node, None, None, note.removeprefix("; ")))
            continue
        i_new, i_run = int(np.argmin(sn)), int(np.argmin(sr))
        worst_new, worst_run = float(sn[i_new]), float(sr[i_run])
        if min(worst_new, worst_run) < avoid_at:
            if worst_new <= worst_run:
                why = (
                    f"this job predicted at {worst_new:.0%} of solo speed next to job "
                    f"{scored[i_new].job_id}"
                )
            else:
                why = (
                    f"running job {scored[i_run].job_id} predicted at {worst_run:.0%} of "
                    "solo speed next to this job"
                )
            hints.avoid.append(NodeHint(node, worst_new, worst_run,
                                        f"{why} (worse than {cfg.avoid_slowdown:.0%} slowdown)"
                                        + note))  # fmt: skip
        elif min(worst_new, worst_run) >= prefer_at and not unknown:
            hints.prefer.append(
                NodeHint(
                    node,
                    worst_new,
                    worst_run,
                    f"every co-runner pair within {cfg.prefer_slowdown:.0%} "
                    f"slowdown (worst {min(worst_new, worst_run):.0%})",
                )
            )
    hints.avoid.sort(key=lambda h: min(h.speed_new or 1.0, h.speed_running or 1.0))
    hints.prefer.sort(key=lambda h: -min(h.speed_new or 1.0, h.speed_running or 1.0))
    return hints


def safe_exclusions(
    hints: PlacementHints, candidates: Iterable[str], nodes_needed: int
) -> list[str]:
    """Nodes from ``hints.avoid`` to exclude while at least ``nodes_needed`` candidates remain.

    The worst nodes are excluded first; a job is never left with too few nodes.
    """
    pool = set(candidates)
    budget = len(pool) - max(int(nodes_needed), 1)
    picked = [h.node for h in hints.avoid if h.node in pool]
    return picked[: max(budget, 0)]


def hints_for_job(
    store: ProfileStore,
    model: InterferenceModel,
    job: Mapping[str, Any],
    nodes: Mapping[str, Sequence[Mapping[str, Any]]],
    config: HintConfig | None = None,
) -> PlacementHints:
    """Look profiles up in ``store`` and hint: ``job`` and the running jobs are mappings with
    ``user``, ``job_name``, ``account`` (and ``job_id`` for the running ones)."""
    new = store.lookup(str(job.get("user") or ""), str(job.get("job_name") or ""),
                       str(job.get("account") or "")).profile  # fmt: skip
    if new is None:
        return placement_hints(None, {}, model, config)
    running = {
        node: [RunningJob(str(j.get("job_id", f"#{i}")), p.profile)
               for i, (j, p) in enumerate(zip(jobs, store.lookup_many(jobs), strict=True))]
        for node, jobs in nodes.items()
    }  # fmt: skip
    return placement_hints(new, running, model, config)


def running_by_node(
    queue: pd.DataFrame, expand: Callable[[str], list[str]]
) -> dict[str, list[dict[str, Any]]]:
    """``{node: [running job rows]}`` from a queue table (``SlurmAdapter.queue()`` columns
    ``job_id``, ``user``, ``account``, ``job_name``, ``state``, ``node_list``).

    ``expand`` turns a Slurm hostlist (``n[1-3]``) into node names, e.g.
    ``slurm_hooks.power.program.expand_hostlist``.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    running = queue[queue["state"] == "RUNNING"]
    cols = ["job_id", "user", "account", "job_name"]
    for row, hostlist in zip(running[cols].to_dict("records"), running["node_list"], strict=True):
        for node in expand(str(hostlist)) if hostlist else []:
            out.setdefault(node, []).append(row)
    return out
