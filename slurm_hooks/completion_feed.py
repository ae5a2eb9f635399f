"""The completion feed: finished jobs from Slurm accounting -> the service's history.

Choice: an ``sacct`` poller rather than an ``EpilogSlurmctld`` program. The
epilog runs once, while the job record may not yet be in accounting, and a
job that ends while the service is down would be lost; the poller reads what
``sacct`` recorded since a persisted watermark, posts each finished job to
``/v1/jobs/complete`` (idempotent per job id), and advances the watermark only
past jobs the service accepted. After an outage of the service (or of the
feed) it catches up from the watermark, so no completion is lost; re-reading
an overlap window is harmless because the service ignores replays.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from predictor.state import atomic_write_json, state_dir
from slurm_hooks.service_client import ServiceClient, ServiceError
from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError
from slurm_hooks.stopping import Stop

log = logging.getLogger("foresight.completion_feed")

FINISHED = ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL",
            "PREEMPTED")


@dataclass
class FeedReport:
    """What one poll did."""

    read: int = 0
    new: int = 0
    known: int = 0
    watermark: float = 0.0
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"poll stopped: {self.error} (watermark {self.watermark:.0f})"
        return (f"read={self.read} new={self.new} replayed={self.known} "
                f"watermark={self.watermark:.0f}")


class CompletionFeed:
    """Polls ``sacct`` for finished jobs and posts them to the service."""

    def __init__(self, adapter: SlurmAdapter, client: ServiceClient, *,
                 watermark_file: Path | None = None, overlap_s: float = 600.0,
                 first_lookback_s: float = 86400.0) -> None:
        self.adapter = adapter
        self.client = client
        self.path = watermark_file or state_dir() / "completion_feed.json"
        self.overlap_s = overlap_s
        self.first_lookback_s = first_lookback_s

    def watermark(self) -> float:
        """End time up to which every finished job has reached the service."""
        try:
            return float(json.loads(self.path.read_text())["watermark"])
        except FileNotFoundError:
            return time.time() - self.first_lookback_s

    def poll(self) -> FeedReport:
        """Read jobs ended since the watermark (minus the overlap) and post them in end order."""
        mark = self.watermark()
        report = FeedReport(watermark=mark)
        try:
            jobs = self.adapter.jobs(since=mark - self.overlap_s, states=FINISHED)
        except SlurmCommandError as exc:
            report.error = f"cannot read sacct: {exc}"
            return report
        jobs = jobs[jobs["end_time"].notna() & jobs["start_time"].notna()]
        jobs = jobs.sort_values("end_time")
        report.read = len(jobs)
        for row in jobs.to_dict("records"):
            try:
                new, known = self.client.complete([row])
            except ServiceError as exc:
                report.error = f"service unavailable: {exc}"
                break
            report.new += new
            report.known += known
            report.watermark = max(report.watermark, float(row["end_time"]))
        if report.watermark > mark:
            atomic_write_json(self.path, {"watermark": report.watermark})
        return report

    def run(self, interval_s: float = 30.0, polls: int | None = None,
            stop: Stop | None = None) -> None:
        """Poll until ``stop`` (or ``polls`` times), logging one line per poll."""
        stop = stop or Stop()
        done = 0
        while (polls is None or done < polls) and not stop.requested:
            try:
                log.info("%s", self.poll().line())
            except Exception:  # keep feeding after any surprise
                log.exception("poll failed")
            done += 1
            if (polls is None or done < polls) and stop.wait(interval_s):
                break
