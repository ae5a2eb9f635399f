"""Node state and placement: consolidated best-fit, whole nodes for multi-node jobs."""

from __future__ import annotations

import numpy as np

from policies.simulator.cluster import ClusterConfig

_NEVER = np.iinfo(np.int64).max


class NodePool:
    """Free CPUs/GPUs per node; partition ``p`` owns nodes ``lo[p]:hi[p]``."""

    def __init__(self, cluster: ClusterConfig) -> None:
        sizes = [p.nodes for p in cluster.partitions]
        self.lo = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.hi = np.cumsum(sizes).astype(np.int64)
        self.cap_c = np.concatenate(
            [np.full(p.nodes, p.cpus_per_node) for p in cluster.partitions]
        ).astype(np.int64)
        self.cap_g = np.concatenate(
            [np.full(p.nodes, p.gpus_per_node) for p in cluster.partitions]
        ).astype(np.int64)
        self.cpn = np.array([p.cpus_per_node for p in cluster.partitions], dtype=np.int64)
        self.gpn = np.array([p.gpus_per_node for p in cluster.partitions], dtype=np.int64)
        self.free_c = self.cap_c.copy()
        self.free_g = self.cap_g.copy()

    def headroom(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per partition: most free CPUs on a node, most free GPUs on a node, idle nodes."""
        idle = (self.free_c == self.cap_c) & (self.free_g == self.cap_g)
        return (
            np.maximum.reduceat(self.free_c, self.lo),
            np.maximum.reduceat(self.free_g, self.lo),
            np.add.reduceat(idle.astype(np.int64), self.lo),
        )


def choose_nodes(
    free_c: np.ndarray,
    free_g: np.ndarray,
    cap_c: np.ndarray,
    cap_g: np.ndarray,
    cpus: int,
    gpus: int,
    whole_nodes: int,
    allowed: np.ndarray | None = None,
) -> np.ndarray | None:
    """Node offsets (into the given partition arrays) for one job, or ``None``.

    Single-node jobs go to the feasible node left with the fewest free GPUs,
    then CPUs (consolidated best-fit). Multi-node jobs take the first
    ``whole_nodes`` idle nodes.
    """
    if whole_nodes > 1:
        ok = (free_c == cap_c) & (free_g == cap_g)
        if allowed is not None:
            ok &= allowed
        found = np.flatnonzero(ok)
        return found[:whole_nodes] if found.size >= whole_nodes else None
    ok = (free_c >= cpus) & (free_g >= gpus)
    if allowed is not None:
        ok &= allowed
    if not ok.any():
        return None
    spare = (free_g - gpus) * (int(cap_c.max(initial=0)) + 1) + (free_c - cpus)
    return np.array([int(np.argmin(np.where(ok, spare, _NEVER)))])
