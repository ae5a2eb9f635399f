"""Solo job profiles: validation, parsing from Slurm accounting, and the per-(user, job name) store.

A profile is what one job does to a GPU when it runs alone: SM utilisation,
memory-bandwidth utilisation, GPU memory, batch size, mixed precision (and CPU
and host-memory use, kept for reporting). The store learns running means from
completed jobs (``TRESUsageInAve``/``TRESUsageInMax`` ``gres/gpuutil``,
``gres/gpumem``, ``cpu``, ``mem``) or takes profiles posted explicitly, and looks
a job up with the fallback user+job name -> user -> account -> unknown.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from predictor.logs.sacct import mem_mb, tres_value

#: Numeric profile fields, in the order the store keeps them.
PROFILE_FIELDS: tuple[str, ...] = (
    "gpu_util",
    "gmem_util",
    "gmem_mb",
    "batch_size",
    "amp",
    "cpu_util",
    "mem_mb",
)

Source = Literal["explicit", "user_name", "user", "account", "unknown"]
#: Per-GPU utilisation from accounting may overshoot 100% by rounding this much (then capped).
UTIL_SLACK = 1.0

log = logging.getLogger(__name__)


class ProfileError(ValueError):
    """A profile with impossible values; the message names every bad field."""


class JobProfile(BaseModel):
    """One job's solo resource profile. Only ``gpu_util`` is required."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    gpu_util: float = Field(ge=0, le=100, description="GPU SM utilisation running alone, %")
    gmem_util: float | None = Field(
        None, ge=0, le=100, description="GPU memory-bandwidth (controller) utilisation, %"
    )
    gmem_mb: float | None = Field(None, ge=0, description="GPU memory used, MiB")
    batch_size: float | None = Field(None, gt=0, description="training batch size")
    amp: bool | None = Field(None, description="mixed precision (AMP) on")
    cpu_util: float | None = Field(None, ge=0, le=100, description="CPU use, % of allocated cores")
    mem_mb: float | None = Field(None, ge=0, description="host memory used, MiB")
    model_family: str | None = Field(
        None, max_length=128, description="model family, informational (not a model feature)"
    )


def parse_profile(data: Mapping[str, Any] | JobProfile) -> JobProfile:
    """Validate ``data`` as a profile; ``ProfileError`` names each impossible field."""
    if isinstance(data, JobProfile):
        return data
    try:
        return JobProfile.model_validate(dict(data))
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "profile"
            parts.append(f"{field}: {err['msg']} (got {err.get('input')!r})")
        raise ProfileError("invalid profile: " + "; ".join(parts)) from None


def _cpu_seconds(text: str) -> float:
    """A Slurm CPU-time value ``[DD-]HH:MM:SS[.fff]`` or ``MM:SS`` as seconds (NaN if bad)."""
    days, _, clock = text.strip().rpartition("-")
    try:
        parts = [float(p) for p in clock.split(":")]
        total = sum(v * 60**i for i, v in enumerate(reversed(parts)))
        return total + (float(days) * 86400 if days else 0.0)
    except ValueError:
        return math.nan


def _tres_text(tres: str, key: str) -> str | None:
    for item in tres.split(","):
        name, _, value = item.strip().partition("=")
        if name == key:
            return value
    return None


def profile_from_usage(
    tres_ave: str,
    tres_max: str = "",
    *,
    gpus: float = 1.0,
    cpus: float = math.nan,
    elapsed_s: float = math.nan,
) -> JobProfile | None:
    """A profile from one job's ``TRESUsageInAve``/``TRESUsageInMax`` (None: no GPU use).

    Slurm's GPU accounting reports ``gres/gpuutil`` and ``gres/gpumem`` summed
    over the task's GPUs, so both are divided by ``gpus``. Utilisation comes from
    the average, GPU and host memory from the maximum (what a co-runner must fit
    beside). CPU use is average CPU time over ``elapsed_s * cpus``, capped at 100%.
    A ``gres/gpuutil`` that is not a number in [0, 100] per GPU (up to
    :data:`UTIL_SLACK` of rounding) raises ``ProfileError`` naming it: a wrong GPU count
    or corrupt accounting gives no profile rather than a wrong one.
    """
    ngpu = gpus if gpus and gpus > 0 else 1.0
    util = tres_value(tres_ave, "gres/gpuutil")
    if math.isnan(util):
        return None
    if not math.isfinite(util) or util < 0 or util / ngpu > 100.0 + UTIL_SLACK:
        raise ProfileError(f"invalid usage: gres/gpuutil: {util:g} over {ngpu:g} GPU(s) is not "
                           "a utilisation in [0, 100]% per GPU")  # fmt: skip
    peak = tres_max or tres_ave
    gmem_text = _tres_text(peak, "gres/gpumem")
    gmem = mem_mb(gmem_text) if gmem_text else math.nan
    host_text = _tres_text(peak, "mem")
    host = mem_mb(host_text) if host_text else math.nan
    cpu_text = _tres_text(tres_ave, "cpu")
    cpu_util = math.nan
    if cpu_text and cpus > 0 and elapsed_s > 0:
        cpu_util = min(100.0, 100.0 * _cpu_seconds(cpu_text) / (elapsed_s * cpus))

    def opt(value: float) -> float | None:
        return None if math.isnan(value) else value

    return JobProfile(
        gpu_util=min(100.0, max(0.0, util / ngpu)),
        gmem_mb=opt(gmem / ngpu if not math.isnan(gmem) else gmem),
        cpu_util=opt(cpu_util),
        mem_mb=opt(host),
    )


@dataclass(frozen=True)
class ProfileLookup:
    """The profile found for a job and where it came from (``unknown`` -> ``profile`` is None)."""

    profile: JobProfile | None
    source: Source
    samples: int = 0


_LEVELS: tuple[Source, ...] = ("user_name", "user", "account")
_SEP = "\x1f"


class ProfileStore:
    """SQLite-backed solo profiles: running means per user+name, user and account.

    ``add_completed`` is idempotent on ``job_id``; ``post`` stores an explicit
    profile for (user, job name) that learned updates never overwrite.
    """

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False)
        cols = ", ".join(f"{f}_sum REAL NOT NULL DEFAULT 0, {f}_n INTEGER NOT NULL DEFAULT 0"
                         for f in PROFILE_FIELDS)  # fmt: skip
        with self._db:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS learned (kind TEXT, key TEXT, n INTEGER, {cols},"
                " PRIMARY KEY (kind, key))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS explicit (key TEXT PRIMARY KEY, profile TEXT)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS seen (job_id TEXT PRIMARY KEY)")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @staticmethod
    def _keys(user: str, job_name: str, account: str) -> dict[Source, str]:
        keys: dict[Source, str] = {}
        if user and job_name:
            keys["user_name"] = _SEP.join((user, job_name))
        if user:
            keys["user"] = user
        if account:
            keys["account"] = account
        return keys

    def post(self, user: str, job_name: str, profile: Mapping[str, Any] | JobProfile) -> None:
        """Store an explicit profile for (user, job name); it wins over learned ones."""
        if not user or not job_name:
            raise ProfileError("user and job_name are both required to post a profile")
        checked = parse_profile(profile)
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO explicit VALUES (?, ?)",
                (_SEP.join((user, job_name)), checked.model_dump_json()),
            )

    def add_profile(
        self, user: str, job_name: str, account: str, profile: JobProfile, job_id: str | None = None
    ) -> bool:
        """Fold one completed job's measured profile into its buckets (False if already seen)."""
        values = profile.model_dump()
        with self._lock, self._db:
            if job_id is not None:
                cur = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (str(job_id),))
                if cur.rowcount == 0:
                    return False
            for kind, key in self._keys(user, job_name, account).items():
                self._db.execute(
                    "INSERT OR IGNORE INTO learned (kind, key, n) VALUES (?, ?, 0)", (kind, key)
                )
                sets = ["n = n + 1"]
                args: list[float] = []
                for f in PROFILE_FIELDS:
                    v = values.get(f)
                    if v is not None:
                        sets.append(f"{f}_sum = {f}_sum + ?, {f}_n = {f}_n + 1")
                        args.append(float(v))
                self._db.execute(
                    f"UPDATE learned SET {', '.join(sets)} WHERE kind = ? AND key = ?",
                    (*args, kind, key),
                )
        return True

    def add_completed(self, usage: pd.DataFrame) -> int:
        """Learn from completed jobs; returns how many new jobs gave a profile.

        ``usage`` columns: ``job_id``, ``user``, ``account``, ``job_name``,
        ``tres_usage_ave``, ``tres_usage_max`` and optionally ``gpus``, ``cpus``,
        ``run_time`` (see :func:`usage_from_sacct` for reading them from sacct).
        """
        missing = {"job_id", "user", "job_name", "tres_usage_ave"} - set(usage.columns)
        if missing:
            raise ValueError(f"usage table lacks column(s): {', '.join(sorted(missing))}")
        added = 0
        for row in usage.to_dict("records"):
            try:
                profile = profile_from_usage(
                    str(row.get("tres_usage_ave") or ""),
                    str(row.get("tres_usage_max") or ""),
                    gpus=_num(row.get("gpus"), 1.0),
                    cpus=_num(row.get("cpus"), math.nan),
                    elapsed_s=_num(row.get("run_time"), math.nan),
                )
            except ProfileError as exc:  # one bad accounting row never stops the rest
                log.warning("job %s: no profile learned: %s", row.get("job_id"), exc)
                continue
            if profile is None:
                continue
            added += self.add_profile(
                _text(row.get("user")), _text(row.get("job_name")), _text(row.get("account")),
                profile, job_id=_text(row.get("job_id")),
            )  # fmt: skip
        return added

    def lookup(self, user: str = "", job_name: str = "", account: str = "") -> ProfileLookup:
        """The job's profile: explicit, else learned user+name, user, account; else unknown."""
        with self._lock:
            if user and job_name:
                hit = self._db.execute(
                    "SELECT profile FROM explicit WHERE key = ?", (_SEP.join((user, job_name)),)
                ).fetchone()
                if hit:
                    return ProfileLookup(JobProfile.model_validate_json(hit[0]), "explicit", 1)
            for kind, key in self._keys(user, job_name, account).items():
                row = self._db.execute(
                    "SELECT * FROM learned WHERE kind = ? AND key = ?", (kind, key)
                ).fetchone()
                if row is None:
                    continue
                profile = _mean_profile(row)
                if profile is not None:
                    return ProfileLookup(profile, kind, int(row[2]))
        return ProfileLookup(None, "unknown")

    def lookup_many(self, jobs: Iterable[Mapping[str, Any]]) -> list[ProfileLookup]:
        """``lookup`` for each job mapping (keys ``user``, ``job_name``, ``account``)."""
        return [
            self.lookup(_text(j.get("user")), _text(j.get("job_name")), _text(j.get("account")))
            for j in jobs
        ]


def _mean_profile(row: tuple[Any, ...]) -> JobProfile | None:
    means: dict[str, Any] = {}
    for i, field in enumerate(PROFILE_FIELDS):
        total, count = row[3 + 2 * i], row[4 + 2 * i]
        if count:
            means[field] = total / count
    if "gpu_util" not in means:
        return None
    if "amp" in means:
        means["amp"] = means["amp"] >= 0.5
    return JobProfile.model_validate(means)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _num(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else number


def usage_from_sacct(path: Path | str) -> pd.DataFrame:
    """Per-job usage rows from a ``sacct --parsable2`` file with TRESUsageIn* fields.

    Needs ``JobIDRaw`` (or ``JobID``), ``User``, ``JobName``, ``TRESUsageInAve``,
    ``TRESUsageInMax``; reads ``Account``, ``AllocTRES``, ``NCPUS`` and
    ``ElapsedRaw`` when present. Usage lives on steps (``123.batch``, ``123.0``);
    each job takes the step with the highest GPU utilisation, and user, account
    and name from its allocation line.
    """
    raw = pd.read_csv(path, sep="|", dtype=str, keep_default_na=False)
    raw.columns = [c.strip().lower() for c in raw.columns]
    id_col = "jobidraw" if "jobidraw" in raw.columns else "jobid"
    need = {id_col, "user", "jobname", "tresusageinave"}
    missing = need - set(raw.columns)
    if missing:
        raise ValueError(f"{path}: sacct header lacks field(s): {', '.join(sorted(missing))}")
    raw["_job"] = raw[id_col].str.split(".").str[0]
    raw["_step"] = raw[id_col].str.contains(".", regex=False)
    parent = raw[~raw["_step"]].set_index("_job")
    steps = raw[raw["_step"] & (raw["tresusageinave"] != "")].copy()
    steps["_util"] = steps["tresusageinave"].map(lambda s: tres_value(s, "gres/gpuutil"))
    steps = steps.sort_values("_util", ascending=False, na_position="last")
    best = steps.drop_duplicates("_job").set_index("_job")
    jobs = best.index.intersection(parent.index)
    par = parent.loc[jobs]
    alloc = par["alloctres"] if "alloctres" in par.columns else pd.Series("", index=jobs)
    return pd.DataFrame({
        "job_id": jobs.astype(str),
        "user": par["user"].to_numpy(),
        "account": par["account"].to_numpy() if "account" in par.columns else "",
        "job_name": par["jobname"].to_numpy(),
        "tres_usage_ave": best.loc[jobs, "tresusageinave"].to_numpy(),
        "tres_usage_max": (best.loc[jobs, "tresusageinmax"].to_numpy()
                           if "tresusageinmax" in best.columns else ""),
        "gpus": alloc.map(lambda s: tres_value(s, "gres/gpu")).to_numpy(),
        "cpus": pd.to_numeric(par.get("ncpus"), errors="coerce").to_numpy()
        if "ncpus" in par.columns else math.nan,
        "run_time": pd.to_numeric(par.get("elapsedraw"), errors="coerce").to_numpy()
        if "elapsedraw" in par.columns else math.nan,
    }).reset_index(drop=True)  # fmt: skip
