"""The priority daemon: keeps pending jobs' QSSF site factors fresh.

Every cycle it reads the pending queue through the Slurm adapter, scores it in
one batch call to the service (which applies the configured policy, QSSF with
ageing by default), and updates only the site factors that changed by at least
``min_change``, largest changes first, at most ``max_updates`` per cycle.
Bounded work: at most ``max_jobs`` pending jobs (the oldest) are scored per
cycle. A job without a time limit (Slurm's UNLIMITED) is scored like any
other: the service predicts it from its user/account/name history
(``no_limit`` in the cycle's line counts them). With ``siblings`` (default), a
pending job whose burst siblings (same user and shape, submitted seconds
apart) have ended in the last
``sibling_lookback_s`` is scored with their run time instead of the model's
prediction (:mod:`slurm_hooks.siblings`; one ``sacct`` call per cycle, and if
accounting cannot be read the cycle scores without it). A Slurm or service
outage costs one cycle: the error is logged, the daemon sleeps and tries
again, so it survives restarts of either side.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from slurm_hooks.completion_feed import FINISHED
from slurm_hooks.service_client import ServiceClient, ServiceError, limit_seconds
from slurm_hooks.siblings import sibling_runtimes
from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError
from slurm_hooks.stopping import Stop

log = logging.getLogger("foresight.priority_daemon")


@dataclass
class CycleReport:
    """What one cycle did."""

    pending: int = 0
    scored: int = 0
    updated: int = 0
    unchanged: int = 0
    deferred: int = 0  #: changed, but over this cycle's update budget
    no_limit: int = 0  #: pending jobs scored without a time limit
    siblings: int = 0  #: pending jobs scored with their ended burst siblings' run time
    failed_updates: int = 0
    error: str | None = None
    updates: list[tuple[str, int, int]] = field(default_factory=list)  #: (job, old, new)

    def line(self) -> str:
        if self.error:
            return f"cycle skipped: {self.error}"
        return (f"pending={self.pending} scored={self.scored} updated={self.updated} "
                f"unchanged={self.unchanged} deferred={self.deferred} "
                f"no_limit={self.no_limit} siblings={self.siblings} "
                f"failed={self.failed_updates}")


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
    siblings: bool = True
    sibling_lookback_s: float = 86400.0

    def cycle(self) -> CycleReport:
        """One pass: read the queue, score it, update what changed."""
        report = CycleReport()
        try:
            queue = self.adapter.queue(states=("PENDING", "RUNNING"))
        except SlurmCommandError as exc:
            report.error = f"cannot read the queue: {exc}"
            return report
        pending = queue[queue["state"] == "PENDING"]
        report.pending = len(pending)
        pending = pending.sort_values("submit_time").head(self.max_jobs)
        if pending.empty:
            return report
        report.no_limit = int(pending["time_limit"].map(limit_seconds).isna().sum())
        if self.siblings:
            pending = self._with_siblings(queue, pending, report)
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

    def _with_siblings(
        self, queue: pd.DataFrame, pending: pd.DataFrame, report: CycleReport
    ) -> pd.DataFrame:
        """``pending`` with ``sibling_runtime_s`` where ended burst siblings are known."""
        try:
            ended = self.adapter.jobs(since=time.time() - self.sibling_lookback_s,
                                      states=FINISHED)  # fmt: skip
        except SlurmCommandError as exc:
            log.info("scoring without burst siblings: cannot read accounting: %s", exc)
            return pending
        try:
            known = sibling_runtimes(queue, ended)
        except ValueError as exc:  # unusable times in Slurm's answer: score without them
            log.warning("scoring without burst siblings: %s", exc)
            return pending
        pending = pending.assign(sibling_runtime_s=pending["job_id"].astype(str).map(known))
        report.siblings = int(pending["sibling_runtime_s"].notna().sum())
        return pending

    def run(self, cycles: int | None = None, stop: Stop | None = None) -> None:
        """Run cycles until ``stop`` (or ``cycles`` times), never dying on an outage."""
        stop = stop or Stop()
        done = 0
        while (cycles is None or done < cycles) and not stop.requested:
            started = time.monotonic()
            try:
                report = self.cycle()
            except Exception as exc:  # a daemon beside Slurm must not die on a surprise
                log.exception("cycle failed")
                report = CycleReport(error=f"{type(exc).__name__}: {exc}")
            log.info("%s%s", "dry-run " if self.dry_run else "", report.line())
            done += 1
            if (cycles is None or done < cycles) and stop.wait(
                self.interval_s - (time.monotonic() - started)
            ):
                break

