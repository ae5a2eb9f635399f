"""EASY backfilling, as Slurm's ``sched/backfill`` does it for the top job.

The highest-priority job of a partition that cannot start gets a
reservation: the earliest time (*shadow time*) at which it fits once running
jobs end at their expected end times, and the nodes it would take then. A
lower job may start now if it ends (by its estimate) before the shadow time,
or if the reserved nodes still hold the top job at the shadow time with it
running. Reservations are recomputed at every scheduling pass, as Slurm's
backfill cycle does.

Expected end of a running job = its start + its estimate (requested limit,
or the prediction under QSSF). A job that has already overrun its estimate
is expected to run for as long again as it has run so far (``now + elapsed``),
so an underestimate pushes the shadow time back instead of pinning it at now.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from policies.simulator.nodes import choose_nodes


@dataclass
class Reservation:
    """The top job's reservation in one partition (node arrays are partition-local)."""

    shadow: float
    free_c: np.ndarray  # free CPUs per node at the shadow time, minus later backfills
    free_g: np.ndarray
    need_c: np.ndarray  # CPUs per node the top job holds at the shadow time
    need_g: np.ndarray

    def allowed(self, end: float, per_node_c: int, per_node_g: int) -> np.ndarray | None:
        """Nodes a job ending at ``end`` and taking this much per node may use."""
        if end <= self.shadow:
            return None
        return (self.free_c - per_node_c >= self.need_c) & (self.free_g - per_node_g >= self.need_g)

    def commit(self, end: float, offsets: np.ndarray, per_node_c: int, per_node_g: int) -> None:
        """Record a backfilled job that will still be running at the shadow time."""
        if end > self.shadow:
            self.free_c[offsets] -= per_node_c
            self.free_g[offsets] -= per_node_g


def expected_ends(run_start: np.ndarray, est_left: np.ndarray, now: float) -> np.ndarray:
    """Expected end times of running jobs; overrunning ones get ``now + elapsed``."""
    ends = run_start + est_left
    overrun = ends <= now
    return np.where(overrun, now + np.maximum(now - run_start, 1.0), ends)


def reserve(
    free_c: np.ndarray,
    free_g: np.ndarray,
    cap_c: np.ndarray,
    cap_g: np.ndarray,
    job: tuple[int, int, int],
    releases: Iterable[tuple[float, np.ndarray, int, int]],
) -> Reservation:
    """Reservation for ``job`` = (cpus, gpus, whole_nodes) in one partition.

    ``free_*``/``cap_*`` are the partition's node arrays now; ``releases`` are
    the running jobs as (expected end, node offsets, CPUs, GPUs per node),
    sorted by end (consumed lazily). Raises ``RuntimeError`` if the job does not fit even on
    the empty partition (callers filter oversize jobs first).
    """
    cpus, gpus, whole = job
    fc, fg = free_c.copy(), free_g.copy()
    shadow = -np.inf
    spot = choose_nodes(fc, fg, cap_c, cap_g, cpus, gpus, whole)
    for end, offsets, c, g in releases:
        if spot is not None:
            break
        fc[offsets] += c
        fg[offsets] += g
        shadow = end
        if whole > 1 or _fits_on(fc[offsets], fg[offsets], cpus, gpus):
            spot = choose_nodes(fc, fg, cap_c, cap_g, cpus, gpus, whole)
    if spot is None:
        raise RuntimeError("job does not fit its partition even when it is empty")
    need_c = np.zeros_like(fc)
    need_g = np.zeros_like(fg)
    per_c, per_g = (cap_c[spot], cap_g[spot]) if whole > 1 else (cpus, gpus)
    need_c[spot] = per_c
    need_g[spot] = per_g
    return Reservation(float(shadow), fc, fg, need_c, need_g)


def _fits_on(fc: np.ndarray, fg: np.ndarray, cpus: int, gpus: int) -> bool:
    return bool(((fc >= cpus) & (fg >= gpus)).any())
