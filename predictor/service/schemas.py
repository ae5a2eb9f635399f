"""Request and response bodies of the service (pydantic v2).

These models are the single source of truth: routes validate with them and
``/openapi.json`` is generated from them. Input models are strict (``"4"`` is
not an integer) and ignore-but-report unknown fields (``extra="allow"``: the
route lists them in ``warnings`` and counts them in a metric).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from predictor.interference.profiles import JobProfile

MAX_NAME = 256
MAX_SECONDS = 10 * 365 * 86400.0  # ten years: any larger time is a client bug
MAX_EPOCH = 4102444800.0  # 2100-01-01
MAX_COUNT = 10_000_000


def _integral(value: Any) -> Any:
    """JSON Schema counts 4.0 as an integer; so do we (4.5 and "4" stay errors)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


Int = Annotated[int, BeforeValidator(_integral)]
Name = Annotated[str, Field(max_length=MAX_NAME)]
Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Epoch = Annotated[float, Field(ge=0, le=MAX_EPOCH)]
JobId = Annotated[str, Field(min_length=1, max_length=MAX_NAME)] | Annotated[Int, Field(ge=0)]

# Slurm TRES-per-node strings: "gres/gpu:2" (24.x), "gres:gpu:2" (22.x), "gpu:a100:4",
# "gres/gpu=2" (TRES notation), possibly comma-joined with others ("gres/gpu:2,gres/shard:1").
_GPU_TRES = re.compile(r"^(?:gres[:/])?gpu(?::(?!\d+$)[A-Za-z0-9_.\-]+)?(?:[:=](\d+))?$")


def gpus_per_node_from_tres(tres: str) -> int:
    """GPUs per node named in a Slurm TRES-per-node string (0 when none is a GPU).

    Raises ``ValueError`` for an entry that mentions ``gpu`` but cannot be read.
    """
    total = 0
    for raw in tres.split(","):
        entry = raw.strip()
        if not entry or "gpu" not in entry:
            continue
        match = _GPU_TRES.match(entry)
        if match is None:
            raise ValueError(f"cannot read a GPU count from {entry!r} (expected e.g. gres/gpu:2)")
        count = match.group(1)
        total += int(count) if count is not None else 1
    return total


class _Input(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    def unknown_fields(self) -> list[str]:
        """Names of the fields the client sent that this model does not know."""
        return sorted(self.model_extra or {})


class _JobFields(_Input):
    """What a job's submission looks like to Slurm's ``job_submit`` plugin."""

    job_id: JobId | None = Field(None, description="Slurm job id, when already known")
    user: Name = Field(description="user name")
    account: Name = Field("", description="Slurm account")
    partition: Name = Field("", description="partition (queue)")
    qos: Name = Field("", description="QOS")
    name: Name = Field("", description="job name")
    time_limit: Seconds | None = Field(None, description="requested wall-clock limit, seconds")
    cpus: Int = Field(1, ge=1, le=MAX_COUNT, description="CPUs for the whole job")
    gpus: Int | None = Field(None, ge=0, le=MAX_COUNT, description="GPUs for the whole job")
    tres_per_node: Annotated[str, Field(max_length=MAX_NAME)] | None = Field(
        None, description="TRES per node, e.g. 'gres/gpu:2' (used when gpus is absent)"
    )
    nodes: Int = Field(1, ge=1, le=MAX_COUNT, description="nodes requested")
    mem_mb: float | None = Field(None, ge=0, le=1e12, description="memory, MiB for the job")
    features: Annotated[str, Field(max_length=4096)] = Field(
        "", description="node features / constraints expression (--constraint)"
    )

    @field_validator("tres_per_node")
    @classmethod
    def _tres_readable(cls, value: str | None) -> str | None:
        if value is not None:
            gpus_per_node_from_tres(value)  # ValueError -> 400 naming the field
        return value

    def total_gpus(self) -> int:
        """GPUs for the whole job: ``gpus`` if given, else TRES-per-node × nodes, else 0."""
        if self.gpus is not None:
            return self.gpus
        if self.tres_per_node:
            return gpus_per_node_from_tres(self.tres_per_node) * self.nodes
        return 0


class JobDescriptor(_JobFields):
    """One pending job to score. ``submit_time`` defaults to now."""

    time_limit: Seconds | None = Field(
        None,
        gt=0,
        description="requested wall-clock limit, seconds; absent or null when the job has "
        "none (Slurm's UNLIMITED): it is then predicted from its user/account/name history",
    )
    submit_time: Epoch | None = Field(None, description="submission time, epoch seconds")
    sibling_runtime_s: Seconds | None = Field(
        None,
        gt=0,
        description="run time (geometric mean, seconds) of this job's burst siblings that "
        "have ended, when the caller knows it (the priority daemon does); it replaces the "
        "model's prediction as the job's expected run time",
    )


class BatchRequest(_Input):
    """Many pending jobs scored together (the priority daemon's path)."""

    jobs: list[JobDescriptor] = Field(description="jobs to score, in any order")


class CompletedJob(_JobFields):
    """A finished job's record (EpilogSlurmctld, jobcomp or an sacct poller)."""

    job_id: JobId = Field(description="Slurm job id (idempotency key)")
    submit_time: Epoch = Field(description="submission time, epoch seconds")
    start_time: Epoch = Field(description="start time, epoch seconds")
    end_time: Epoch = Field(description="end time, epoch seconds")
    state: Annotated[str, Field(max_length=32)] = Field(
        "COMPLETED", description="final state: COMPLETED, FAILED, TIMEOUT, ..."
    )
    exit_code: Int | None = Field(None, ge=-(2**31), le=2**32, description="exit code")
    tres_usage_ave: Annotated[str, Field(max_length=4096)] | None = Field(
        None,
        description="sacct TRESUsageInAve, e.g. 'cpu=00:10:00,gres/gpuutil=85,...' "
        "(feeds the job profile store)",
    )
    tres_usage_max: Annotated[str, Field(max_length=4096)] | None = Field(
        None, description="sacct TRESUsageInMax (GPU and host memory peaks)"
    )

    @model_validator(mode="after")
    def _ordered_times(self) -> CompletedJob:
        if self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        return self


class PlacementHintsBody(BaseModel):
    """Where to place a job, from the interference model (``avoid_nodes`` is what the
    ``job_submit`` hook adds to the job's excluded nodes)."""

    status: Literal["ok", "no_profile", "unavailable"] = Field(
        description="ok; no_profile (no hint rather than a wrong one); unavailable (why in message)"
    )
    avoid_nodes: list[str] = Field(
        default_factory=list,
        description="nodes to exclude, worst first, never so many that the job lacks nodes",
    )
    prefer_nodes: list[str] = Field(default_factory=list, description="nodes to prefer, best first")
    reasons: dict[str, str] = Field(default_factory=dict, description="node -> why")
    message: str = Field("", description="what the hints are based on, or why there are none")
    profile_source: str | None = Field(
        None, description="where the job's profile came from: explicit, user_name, user, account"
    )


class ScoreResult(BaseModel):
    """The prediction and priority for one job."""

    job_id: str | None = Field(None, description="the job id sent, if any")
    runtime_s: float = Field(description="predicted run time, seconds")
    runtime_interval_s: list[float] = Field(
        min_length=2, max_length=2, description="[low, high] run time, seconds"
    )
    gpu_time_s: float = Field(description="predicted GPU time (run time × GPUs), seconds")
    priority: float = Field(description="priority under the configured policy (higher = sooner)")
    site_factor: int = Field(description="the priority as a Slurm site_factor integer")
    policy: str = Field(description="policy that produced the priority")
    model_version: str = Field(description="duration model version that predicted")
    hints: PlacementHintsBody | None = Field(
        None, description="placement hints; null when they are off by configuration"
    )
    warnings: list[str] = Field(default_factory=list, description="non-fatal input problems")


class BatchResponse(BaseModel):
    """Results in the order of the request's jobs."""

    results: list[ScoreResult]
    warnings: list[str] = Field(
        default_factory=list,
        description="problems with the batch itself (per-job ones are in results)",
    )


class CompleteResult(BaseModel):
    """Whether a completed-job record was new to the history store."""

    job_id: str
    new: bool = Field(description="false when this job id was already recorded (a replay)")
    warnings: list[str] = Field(default_factory=list)


class ProfilePost(_Input):
    """An explicit solo profile for a (user, job name); it wins over learned profiles."""

    user: Annotated[str, Field(min_length=1, max_length=MAX_NAME)] = Field(description="user")
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)] = Field(
        description="job name (as in the job descriptor's name)"
    )
    profile: JobProfile = Field(
        description="the solo profile; impossible values (utilisation over 100%, negative "
        "memory) are refused with the field named"
    )


class ProfileStored(BaseModel):
    """The profile as stored."""

    user: str
    name: str
    profile: JobProfile
    warnings: list[str] = Field(default_factory=list)


class EnergyPlan(BaseModel):
    """The energy controller's next plan (what a dry-run step would do; nothing is done)."""

    model_config = ConfigDict(extra="allow")

    time: float = Field(description="when the plan was made, epoch seconds")
    status: str = Field(description="planned (a plan is always a dry run here)")
    reason: str = Field(description="why these counts")
    problems: list[str] = Field(default_factory=list)
    busy: int = 0
    pending: int = 0
    powered: int = 0
    capacity: int = 0
    need: int = 0
    keep_on: int = 0
    forecast_peak: float = 0.0
    power_down: list[str] = Field(default_factory=list, description="nodes it would power down")
    power_up: list[str] = Field(default_factory=list, description="nodes it would power up")
    refused: dict[str, str] = Field(
        default_factory=dict, description="idle nodes it may not power down, and why"
    )


class ModelInfo(BaseModel):
    """One stored model version."""

    version: str
    active: bool = Field(description="the registry's active version")
    serving: bool = Field(description="the version this worker is serving now")
    details: dict[str, Any] = Field(default_factory=dict, description="registry metadata")


class ModelList(BaseModel):
    """Stored versions, the registry's active one and the one being served."""

    active: str | None
    serving: str | None
    versions: list[ModelInfo]


class SwapResult(BaseModel):
    """Outcome of an activation or reload: the version now served."""

    serving: str
    previous: str | None


class FieldError(BaseModel):
    """One bad field: its dotted path in the body and what is wrong with it."""

    field: str
    reason: str


class ErrorBody(BaseModel):
    """Every non-2xx answer."""

    error: str = Field(description="what went wrong, and what to do about it")
    fields: list[FieldError] | None = Field(None, description="bad fields (400 only)")
    path: str | None = Field(None, description="the file concerned, when there is one")
    reason: str | None = Field(None, description="why the file was refused")


class Health(BaseModel):
    """Liveness / readiness."""

    status: str
    model_version: str | None = None
    detail: str | None = None
    history_jobs: int | None = Field(None, description="ended jobs in the history (readyz)")
    history_newest_end: float | None = Field(
        None, description="end time of the newest of them, epoch seconds (readyz)")
