"""Placement hints for the score routes, from a node snapshot refreshed in the background.

Nothing here touches Slurm on the request path. Each worker's :class:`Placement`
holds one interference model and one profile store (loaded once) and a
:class:`NodeSnapshot` -- running jobs per node, with their profiles already
looked up, and the available nodes of each partition -- that a daemon thread
replaces every ``snapshot_interval_s`` (:meth:`Placement.refresh`). A request
reads the current snapshot reference, looks its own job's profile up and calls
:func:`predictor.interference.hints.placement_hints` over the candidate nodes
of its partition; :func:`~predictor.interference.hints.safe_exclusions` trims
the nodes to avoid so the job always keeps enough nodes. Results are cached per
(job profile key, partition) until the next snapshot, so repeated submissions
of the same job cost a dictionary lookup; the refresh thread recomputes the
most recently asked :data:`WARM_KEYS` for each new snapshot before swapping it
in, so a job submitted again and again keeps hitting the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from predictor.config import ServiceConfig
from predictor.interference.hints import (
    HintConfig,
    PlacementHints,
    RunningJob,
    placement_hints,
    running_by_node,
    safe_exclusions,
)
from predictor.interference.profiles import ProfileLookup, ProfileStore
from predictor.models.interference import InterferenceModel
from predictor.service.model_slot import Watcher
from predictor.service.schemas import PlacementHintsBody

log = logging.getLogger(__name__)

#: cached hint results per snapshot (cleared at each refresh, or when full)
CACHE_SIZE = 4096
#: most recently asked keys whose hints the refresh thread recomputes for the new snapshot
WARM_KEYS = 128


class NodeReader(Protocol):
    """What the snapshot reads (a :class:`slurm_hooks.slurm_adapter.SlurmAdapter` fits)."""

    def queue(self, *, states: Iterable[str] = ..., with_site_factor: bool = ...) -> pd.DataFrame:
        """Jobs in the queue with ``job_id``, ``user``, ``account``, ``job_name``, ``state``,
        ``node_list`` columns."""
        ...

    def nodes(self) -> list[Any]:
        """Nodes with ``name``, ``partitions`` and ``available``."""
        ...

    def run(self, argv: list[str], *, check: bool = True) -> str:
        """Run a Slurm command (``scontrol show hostnames``)."""
        ...


class HostlistExpander:
    """Slurm hostlists -> node names: plain lists split here, bracketed ones asked of
    ``scontrol show hostnames`` once and remembered while they stay in use."""

    def __init__(self, run: Callable[[list[str]], str]) -> None:
        self._run = run
        self._known: dict[str, list[str]] = {}
        self._used: set[str] = set()

    def __call__(self, expr: str) -> list[str]:
        if "[" not in expr:
            return [n for n in (p.strip() for p in expr.split(",")) if n]
        self._used.add(expr)
        if expr not in self._known:
            self._known[expr] = self._run(["scontrol", "show", "hostnames", expr]).split()
        return self._known[expr]

    def forget_unused(self) -> None:
        """Drop expressions not seen since the last call (jobs that ended)."""
        self._known = {k: v for k, v in self._known.items() if k in self._used}
        self._used = set()


@dataclass
class _Cached:
    lookup: ProfileLookup
    hints: PlacementHints | None
    candidates: list[str]
    problem: str


@dataclass(frozen=True)
class NodeSnapshot:
    """Running jobs per node (profiles resolved) and available nodes per partition."""

    taken_at: float
    running: dict[str, list[RunningJob]]
    partitions: dict[str, list[str]]
    available: list[str]
    n_running_jobs: int = 0
    #: hint results computed against this snapshot (key: user, job name, account, partition)
    cache: dict[tuple[str, ...], _Cached] = field(default_factory=dict, compare=False, repr=False)

    def candidates(self, partition: str) -> tuple[list[str], str]:
        """Available nodes of ``partition`` (comma list allowed; "" = every available node),
        and a problem text when a named partition is unknown."""
        names = [p.strip() for p in partition.split(",") if p.strip()]
        if not names:
            return self.available, ""
        unknown = [p for p in names if p not in self.partitions]
        if unknown:
            return [], f"partition(s) {', '.join(unknown)} not in the node snapshot"
        nodes = dict.fromkeys(n for p in names for n in self.partitions[p])
        return list(nodes), ""


def take_snapshot(
    reader: NodeReader, store: ProfileStore, expand: Callable[[str], list[str]]
) -> NodeSnapshot:
    """Read running jobs and nodes once and resolve every running job's profile."""
    now = time.time()
    queue = reader.queue(states=("RUNNING",), with_site_factor=False)
    nodes = reader.nodes()
    by_node = running_by_node(queue, expand)
    rows = [row for jobs in by_node.values() for row in jobs]
    unique = {str(r["job_id"]): r for r in rows}
    profiles = dict(zip(unique, store.lookup_many(unique.values()), strict=True))
    running = {
        node: [RunningJob(str(r["job_id"]), profiles[str(r["job_id"])].profile) for r in jobs]
        for node, jobs in by_node.items()
    }
    partitions: dict[str, list[str]] = {}
    available = []
    for node in nodes:
        if not node.available:
            continue
        available.append(node.name)
        for part in node.partitions:
            partitions.setdefault(part, []).append(node.name)
    return NodeSnapshot(now, running, partitions, available, len(unique))


@dataclass
class Placement:
    """One worker's placement-hint state: model, profile store, snapshot, cache."""

    config: ServiceConfig
    store: ProfileStore
    reader: NodeReader | None
    model: InterferenceModel | None = None
    model_loader: Callable[[], InterferenceModel] | None = None
    snapshot: NodeSnapshot | None = None
    last_error: str | None = None
    enabled: bool = False
    off_reason: str = ""
    _expand: HostlistExpander | None = None
    _watcher: Watcher | None = None

    def __post_init__(self) -> None:
        mode = self.config.hints_enabled
        if mode is False:
            self.enabled, self.off_reason = False, "hints_enabled = false"
        elif self.reader is None:
            self.enabled = False
            self.off_reason = "slurm_runner = 'none': no way to read running jobs per node"
        else:
            self.enabled = True
            self._expand = HostlistExpander(lambda argv: self.reader.run(argv))  # type: ignore[union-attr]
        self.hint_config = HintConfig(
            avoid_slowdown=self.config.hint_avoid_slowdown,
            prefer_slowdown=self.config.hint_prefer_slowdown,
        )
        self._watcher = Watcher(self.config.snapshot_interval_s, [self.refresh],
                                name="foresight-nodes", immediate=True)

    # ------------------------------------------------------------ background
    def load_model(self) -> None:
        """Load the interference model once (no-op when loaded or hints are off)."""
        if self.model is None and self.enabled and self.model_loader is not None:
            t0 = time.perf_counter()
            self.model = self.model_loader()
            log.info("interference model (%s) loaded in %.1f s", self.model.kind,
                     time.perf_counter() - t0)  # fmt: skip

    def refresh(self) -> NodeSnapshot | None:
        """Re-read the node snapshot (the background step); errors are kept, not raised."""
        if not self.enabled or self.reader is None or self._expand is None:
            return None
        try:
            self.load_model()
            snap = take_snapshot(self.reader, self.store, self._expand)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != self.last_error:  # once per distinct failure, not every interval
                log.warning("node snapshot failed: %s", error)
            self.last_error = error
            return None
        self._expand.forget_unused()
        old = self.snapshot
        if old is not None and self.model is not None:
            for key in list(old.cache)[-WARM_KEYS:]:
                snap.cache[key] = self._compute(snap, *key)
        self.snapshot, self.last_error = snap, None
        return snap

    def start(self) -> None:
        """Start the refresh thread (first snapshot at once, then every interval)."""
        if not self.enabled:
            log.warning("placement hints off: %s", self.off_reason)
            return
        self._watcher.start()  # type: ignore[union-attr]

    def stop(self) -> None:
        """Stop the refresh thread."""
        self._watcher.stop()  # type: ignore[union-attr]

    def forget_cached(self) -> None:
        """Drop cached results (a profile was posted to this worker)."""
        if self.snapshot is not None:
            self.snapshot.cache.clear()

    # -------------------------------------------------------------- requests
    def _unavailable(self, why: str) -> PlacementHintsBody:
        return PlacementHintsBody(status="unavailable", message=why)

    def hints(
        self, user: str, job_name: str, account: str, partition: str, nodes_needed: int
    ) -> PlacementHintsBody | None:
        """Hints for one job (None when hints are off by configuration)."""
        if not self.enabled:
            return None
        snap = self.snapshot
        if self.model is None:
            why = self.last_error or "the interference model is still loading"
            return self._unavailable(f"no placement hints: {why}")
        if snap is None:
            why = self.last_error or "no node snapshot taken yet"
            return self._unavailable(f"no placement hints: {why}")
        age = time.time() - snap.taken_at
        if age > self.config.snapshot_max_age_s:
            why = f"; last refresh failed: {self.last_error}" if self.last_error else ""
            return self._unavailable(f"no placement hints: node snapshot is {age:.0f} s old{why}")
        cached = self._cached(snap, user, job_name, account, partition)
        if cached.problem:
            return self._unavailable(f"no placement hints: {cached.problem}")
        ph = cached.hints
        if ph is None or ph.status == "no_profile":
            return PlacementHintsBody(
                status="no_profile", message=ph.message if ph else "no profile for this job"
            )
        avoid = safe_exclusions(ph, cached.candidates, nodes_needed)
        prefer = ph.prefer[: self.config.hint_max_prefer]
        reasons = {h.node: h.reason for h in ph.avoid if h.node in avoid}
        reasons.update((h.node, h.reason) for h in prefer)
        dropped = len(ph.avoid) - len(avoid)
        src = cached.lookup
        parts = [f"profile from {src.source}" + (f" ({src.samples} jobs)" if src.samples else ""),
                 f"{len(cached.candidates)} candidate nodes, snapshot {age:.0f} s old"]  # fmt: skip
        if dropped:
            parts.append(f"{dropped} node(s) to avoid not listed, so the job keeps "
                         f"{max(nodes_needed, 1)} node(s)")  # fmt: skip
        if ph.unscored:
            parts.append(f"{len(ph.unscored)} node(s) run only jobs without a profile")
        return PlacementHintsBody(
            status="ok", avoid_nodes=avoid, prefer_nodes=[h.node for h in prefer],
            reasons=reasons, message="; ".join(parts), profile_source=src.source,
        )  # fmt: skip

    def _cached(
        self, snap: NodeSnapshot, user: str, job_name: str, account: str, partition: str
    ) -> _Cached:
        key = (user, job_name, account, partition)
        cache = snap.cache
        hit = cache.get(key)
        if hit is not None:
            cache[key] = cache.pop(key, hit)  # most recently used last (for warming)
            return hit
        entry = self._compute(snap, *key)
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[key] = entry
        return entry

    def _compute(
        self, snap: NodeSnapshot, user: str, job_name: str, account: str, partition: str
    ) -> _Cached:
        candidates, problem = snap.candidates(partition)
        lookup = self.store.lookup(user, job_name, account)
        hints = None
        if not problem:
            running: Mapping[str, list[RunningJob]] = {
                n: snap.running.get(n, []) for n in candidates
            }
            assert self.model is not None
            hints = placement_hints(lookup.profile, running, self.model, self.hint_config)
        return _Cached(lookup, hints, candidates, problem)
