"""The priority daemon: keeps pending jobs' QSSF site factors fresh.

Every cycle it reads the pending queue through the Slurm adapter, scores it in
one batch call to the service (which applies the configured policy, QSSF with
ageing by default), and updates only the site factors that changed by at least
``min_change``, largest changes first, at most ``max_updates`` per cycle.
Bounded work: at most ``max_jobs`` pending jobs (the oldest) are scored per
cycle. A Slurm or service outage costs one cycle: the error is logged, the
daemon sleeps and tries again, so it survives restarts of either side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slurm_hooks.service_client import ServiceClient, ServiceError
from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError

log = logging.getLogger("foresight.priority_daemon")


@dataclass
class CycleReport:
    """What one cycle did."""

    pending: int = 0
    scored: int = 0
    updated: int = 0
    unchanged: int = 0
    deferred: int = 0  #: changed, but over this cycle's update budget
    skipped_no_limit: int = 0
    failed_updates: int = 0
    error: str | None = None
    updates: list[tuple[str, int, int]] = field(default_factory=list)  #: (job, old, new)

    def line(self) -> str:
        if self.error:
            return f"cycle skipped: {self.error}"
        return (f"pending={self.pending} scored={self.scored} updated={self.updated} "
                f"unchanged={self.unchanged} deferred={self.deferred} "
                f"no_limit={self.skipped_no_limit} failed={self.failed_updates}")


@dataclass
class PriorityDaemon:
    """Re-scores pending jobs and pushes changed site factors into Slurm."""

    adapter: SlurmAdapter
    client: ServiceClient
    interval_s: float = 60.0
    max_jobs: int = 10_000
    max_updates: int = 500
    min_change: int = 1
    dry_run: bool = False

    def cycle(self) -> CycleReport:
        """One pass: read the queue, score it, update what changed."""
        report = CycleReport()
        try:
            pending = self.adapter.queue(states=("PENDING",))
        except SlurmCommandError as exc:
            report.error = f"cannot read the queue: {exc}"
            return report
        report.pending = len(pending)
        has_limit = pending["time_limit"].notna() & (pending["time_limit"] > 0)
        report.skipped_no_limit = int((~has_limit).sum())
        pending = pending[has_limit].sort_values("submit_time").head(self.max_jobs)
        if pending.empty:
            return report
        try:
            scores = self.client.score_batch(pending)
        except ServiceError as exc:
            report.error = f"service unavailable: {exc}"
            return report
        report.scored = len(scores)
        merged = pending[["job_id", "site_factor"]].merge(
            scores[["job_id", "site_factor"]].rename(columns={"site_factor": "new"}),
            on="job_id",
        )
        old = merged["site_factor"].fillna(0).to_numpy(dtype=np.int64)
        new = merged["new"].to_numpy(dtype=np.int64)
        change = np.abs(new - old)
        todo = merged.assign(old=old, new=new, change=change)
        todo = todo[todo["change"] >= self.min_change].sort_values("change", ascending=False)
        report.unchanged = len(merged) - len(todo)
        report.deferred = max(len(todo) - self.max_updates, 0)
        for row in todo.head(self.max_updates).itertuples(index=False):
            if not self.dry_run:
                try:
                    self.adapter.update_job(row.job_id, site_factor=int(row.new))
                except SlurmCommandError as exc:  # e.g. the job started meanwhile
                    report.failed_updates += 1
                    log.info("update of job %s failed: %s", row.job_id, exc)
                    continue
            report.updated += 1
            report.updates.append((str(row.job_id), int(row.old), int(row.new)))
        return report

    def run(self, cycles: int | None = None,
            sleep: Callable[[float], None] = time.sleep) -> None:
        """Run cycles forever (or ``cycles`` times), never dying on an outage."""
        done = 0
        while cycles is None or done < cycles:
            started = time.monotonic()
            try:
                report = self.cycle()
            except Exception as exc:  # a daemon beside Slurm must not die on a surprise
                log.exception("cycle failed")
                report = CycleReport(error=f"{type(exc).__name__}: {exc}")
            log.info("%s%s", "dry-run " if self.dry_run else "", report.line())
            done += 1
            if cycles is None or done < cycles:
                sleep(max(self.interval_s - (time.monotonic() - started), 0.0))

