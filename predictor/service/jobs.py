"""``/v1/jobs/*``: score one job, score a batch, record a finished job."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app

from predictor.interference.profiles import ProfileError, profile_from_usage
from predictor.service.api import Access, api_route
from predictor.service.app import Service
from predictor.service.errors import ApiError
from predictor.service.model_slot import LoadedModel
from predictor.service.schemas import (
    BatchRequest,
    BatchResponse,
    CompletedJob,
    CompleteResult,
    JobDescriptor,
    PlacementHintsBody,
    ScoreResult,
    _JobFields,
)
from predictor.service.scoring import completed_row, jobs_frame, pending_row

bp = Blueprint("jobs", __name__)


def _service() -> Service:
    return current_app.extensions["foresight"]


def _served(service: Service) -> LoadedModel:
    loaded = service.slot.current
    if loaded is None:
        raise ApiError(503, service.no_model_message())
    return loaded


def _unknown_warnings(
    service: Service, route: str, names: list[str], prefix: str = ""
) -> list[str]:
    if names:
        service.metrics.unknown_fields.labels(route=route).inc(len(names))
    return [f"unknown field {prefix + name!r} ignored" for name in names]


def _hints(service: Service, job: _JobFields) -> PlacementHintsBody | None:
    """The job's placement hints (timed and counted); None when off by configuration."""
    placement = service.placement
    if not placement.enabled:
        return None
    t0 = time.perf_counter()
    hints = placement.hints(job.user, job.name, job.account, job.partition, job.nodes)
    service.metrics.hint_latency.observe(time.perf_counter() - t0)
    if hints is not None:
        service.metrics.hints.labels(status=hints.status).inc()
    return hints


def _hint_warnings(service: Service, hints: PlacementHintsBody | None) -> list[str]:
    if hints is None and service.config.hints_enabled is True and not service.placement.enabled:
        return [f"placement hints off: {service.placement.off_reason}"]
    if hints is not None and hints.status == "unavailable":
        return [hints.message]
    return []


@api_route(
    bp, "/v1/jobs/score", "POST",
    summary="Predict one pending job's run time and priority",
    body=JobDescriptor, response=ScoreResult, access=Access.SCORING, errors=(503,), tag="jobs",
)  # fmt: skip
def score(job: JobDescriptor) -> ScoreResult:
    """One job (as ``job_submit`` sees it) -> prediction, interval, GPU time, priority."""
    service = _service()
    return score_one(service, _served(service), job)


def score_one(service: Service, loaded: LoadedModel, job: JobDescriptor) -> ScoreResult:
    """The answer for one job (the route above and :mod:`predictor.service.fast_path`)."""
    now = time.time()
    row = pending_row(job, now)
    s = service.scorer.score_row(loaded, row, service.history.store, now)
    service.metrics.jobs_scored.inc()
    service.metrics.predicted_runtime.observe(float(s.runtime[0]))
    hints = _hints(service, job)
    return ScoreResult(
        job_id=None if job.job_id is None else str(job.job_id),
        runtime_s=float(s.runtime[0]),
        runtime_interval_s=[float(s.lo[0]), float(s.hi[0])],
        gpu_time_s=float(s.gpu_time[0]),
        priority=float(s.priority[0]),
        site_factor=int(s.site_factor[0]),
        policy=service.scorer.policy_name,
        model_version=loaded.version,
        hints=hints,
        warnings=_unknown_warnings(service, "/v1/jobs/score", job.unknown_fields())
        + _hint_warnings(service, hints),
    )


@api_route(
    bp, "/v1/jobs/score:batch", "POST",
    summary="Score many pending jobs at once (the priority daemon's path)",
    body=BatchRequest, response=BatchResponse, access=Access.SCORING, errors=(503,),
    tag="jobs",
)  # fmt: skip
def score_batch(batch: BatchRequest) -> Response:
    """All jobs in one vectorised pass; submissions of jobs with ids go to the history."""
    service = _service()
    if len(batch.jobs) > service.config.max_batch_jobs:
        raise ApiError(413, f"batch of {len(batch.jobs)} jobs exceeds max_batch_jobs = "
                            f"{service.config.max_batch_jobs}")  # fmt: skip
    loaded = _served(service)
    now = time.time()
    rows = [pending_row(job, now) for job in batch.jobs]
    s = service.scorer.score_rows(loaded, rows, service.history.store, now)
    service.history.queue_submitted([row for row in rows if row["job_id"]])
    service.metrics.jobs_scored.inc(len(rows))
    observe = service.metrics.predicted_runtime.observe
    for value in s.runtime.tolist():
        observe(value)
    results = []
    policy, version = service.scorer.policy_name, loaded.version
    runtime, lo, hi = s.runtime.tolist(), s.lo.tolist(), s.hi.tolist()
    gpu_time, priority, site = s.gpu_time.tolist(), s.priority.tolist(), s.site_factor.tolist()
    with_hints = service.config.batch_hints
    for i, job in enumerate(batch.jobs):
        unknown = job.unknown_fields()
        hints = _hints(service, job) if with_hints else None
        warnings = _unknown_warnings(service, "/v1/jobs/score:batch", unknown,
                                     f"jobs.{i}.") if unknown else []  # fmt: skip
        results.append({
            "job_id": None if job.job_id is None else str(job.job_id),
            "runtime_s": runtime[i],
            "runtime_interval_s": [lo[i], hi[i]],
            "gpu_time_s": gpu_time[i],
            "priority": priority[i],
            "site_factor": site[i],
            "policy": policy,
            "model_version": version,
            "hints": None if hints is None else hints.model_dump(),
            "warnings": warnings + _hint_warnings(service, hints),
        })  # fmt: skip
    warnings = _unknown_warnings(service, "/v1/jobs/score:batch", batch.unknown_fields())
    body = json.dumps({"results": results, "warnings": warnings}, allow_nan=False)
    return Response(body, 200, mimetype="application/json")


@api_route(
    bp, "/v1/jobs/complete", "POST",
    summary="Record a finished job in the history store (idempotent per job id)",
    body=CompletedJob, response=CompleteResult, access=Access.SCORING, tag="jobs",
)  # fmt: skip
def complete(job: CompletedJob) -> CompleteResult:
    """Fold a finished job into the history features read; a replay is not double-counted."""
    service = _service()
    row = completed_row(job)
    warnings = _unknown_warnings(service, "/v1/jobs/complete", job.unknown_fields())
    if row["run_time"] <= 0:
        warnings.append("run time is 0 s: the history keeps only jobs that ran")
        new = False
    else:
        new = service.history.add_completed(jobs_frame([row])) == 1
    service.metrics.history_updates.labels(new=str(new).lower()).inc()
    warnings += _learn_profile(service, job, row)
    return CompleteResult(job_id=str(job.job_id), new=new, warnings=warnings)


def _learn_profile(service: Service, job: CompletedJob, row: dict[str, object]) -> list[str]:
    """Fold the job's measured GPU use (TRESUsageInAve/Max) into the profile store."""
    if not job.tres_usage_ave:
        return []
    try:
        profile = profile_from_usage(
            job.tres_usage_ave, job.tres_usage_max or "", gpus=float(job.total_gpus() or 1),
            cpus=float(job.cpus), elapsed_s=float(row["run_time"]),  # type: ignore[arg-type]
        )  # fmt: skip
    except (ProfileError, ValueError) as exc:
        return [f"tres_usage_ave/tres_usage_max not usable for a profile: {exc}"]
    if profile is None:
        return ["tres_usage_ave has no gres/gpuutil: no GPU profile learned"]
    service.profiles.add_profile(job.user, job.name, job.account, profile, job_id=str(job.job_id))
    return []
