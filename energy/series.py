"""Utilisation series: load, validate, repair, and cut into 10-minute demand steps.

A series is a per-sample record of how many nodes are busy and how many exist.
Two on-disk formats are read:

* ``philly``: ``time,active,total`` (nodes with a running job, nodes in the cluster);
  ``time`` is a date (naive = UTC) or epoch seconds, in either format;
* ``helios-vc``: the Helios Earth per-VC files (``running_gpu_num``, ``total_gpu_num``,
  ``pending_gpu_num`` ...); nodes are ``ceil(GPUs / 8)``.

Repairs are made only where the intent is unambiguous and every one is reported:
rows out of time order are sorted, exact duplicate rows are dropped, and gaps are
kept as *missing* steps (never invented). Anything else (unparseable times or
counts, negative counts, one timestamp with two different readings) is refused
with a :class:`SeriesError` that names the offending file lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from predictor.logs.tabular import normalize_header

FORMATS = ("philly", "helios-vc")
JOBS = "jobs"  #: a job log, swept into busy nodes per step (energy.job_series)
GPUS_PER_NODE = 8
STEP = pd.Timedelta("10min")
_MAX_LISTED = 10


class SeriesError(ValueError):
    """A utilisation series that cannot be used as it is (names the offending rows)."""


@dataclass
class Series:
    """A validated per-sample series: ``busy``/``total`` nodes (and ``pending`` when known)."""

    name: str
    format: str
    frame: pd.DataFrame  # index: time (sorted, unique); columns busy, total[, pending]
    repairs: list[str] = field(default_factory=list)

    @property
    def start(self) -> pd.Timestamp:
        return self.frame.index[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.frame.index[-1]


def _lines(mask: np.ndarray | pd.Series) -> str:
    """File line numbers (header = line 1) of the rows where ``mask`` is true."""
    idx = np.flatnonzero(np.asarray(mask)) + 2
    shown = ", ".join(str(i) for i in idx[:_MAX_LISTED])
    more = f" (+{len(idx) - _MAX_LISTED} more)" if len(idx) > _MAX_LISTED else ""
    return f"line {shown}{more}"


def detect_format(columns: list[str]) -> str:
    """``philly`` or ``helios-vc`` from a header; SeriesError if neither fits."""
    cols = set(columns)
    if {"time", "active", "total"} <= cols:
        return "philly"
    if {"time", "running_gpu_num", "total_gpu_num"} <= cols:
        return "helios-vc"
    raise SeriesError(
        f"unknown series header {sorted(cols)}: expected philly (time,active,total) or "
        "helios-vc (time,running_gpu_num,total_gpu_num,...)"
    )


def _numeric(raw: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = pd.to_numeric(raw[col], errors="coerce")
    bad = values.isna() | (values < 0)
    if bad.any():
        raise SeriesError(f"{path}: column {col!r} is not a non-negative number at {_lines(bad)}")
    return values


def _parse_times(raw: pd.Series) -> pd.Series:
    """Date strings or epoch seconds (as the job-log readers take them), naive UTC; NaT else."""
    seconds = pd.to_numeric(raw, errors="coerce")
    dates = pd.to_datetime(raw.where(seconds.isna()), errors="coerce", format="mixed")
    return dates.fillna(pd.to_datetime(seconds, unit="s", errors="coerce"))


def _nodes_from_gpus(gpus: pd.Series) -> pd.Series:
    return np.ceil(gpus / GPUS_PER_NODE).astype("int64")


def load_series(path: str | Path, fmt: str = "auto") -> Series:
    """Read, validate and repair a utilisation series (``fmt``: auto, philly, helios-vc)."""
    path = Path(path)
    if fmt not in ("auto", *FORMATS):
        raise SeriesError(f"unknown series format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SeriesError(f"{path}: cannot read as CSV: {exc}") from exc
    if raw.empty:
        raise SeriesError(f"{path}: no data rows")
    raw.columns = normalize_header(raw.columns)  # as the job-log readers: case, spaces, BOM
    if raw.columns.duplicated().any():
        repeated = sorted(set(raw.columns[raw.columns.duplicated()]))
        raise SeriesError(f"{path}: column(s) {repeated} appear more than once in the header")
    found = detect_format(list(raw.columns))
    if fmt != "auto" and fmt != found:
        raise SeriesError(f"{path}: header looks like {found!r}, not {fmt!r}")
    times = _parse_times(raw["time"])
    if times.isna().any():
        raise SeriesError(f"{path}: unparseable 'time' at {_lines(times.isna())}")
    if found == "philly":
        busy = _numeric(raw, "active", path).astype("int64")
        total = _numeric(raw, "total", path).astype("int64")
        frame = pd.DataFrame({"busy": busy.values, "total": total.values}, index=times.values)
    else:
        frame = pd.DataFrame(
            {
                "busy": _nodes_from_gpus(_numeric(raw, "running_gpu_num", path)).values,
                "total": _nodes_from_gpus(_numeric(raw, "total_gpu_num", path)).values,
            },
            index=times.values,
        )
        if "pending_gpu_num" in raw.columns:
            frame["pending"] = _nodes_from_gpus(_numeric(raw, "pending_gpu_num", path)).values
    frame.index.name = "time"
    frame["line"] = np.arange(len(frame)) + 2
    return Series(name=path.name.split(".")[0], format=found, **_repair(frame, path))


def _repair(frame: pd.DataFrame, path: Path) -> dict:
    """Sort, drop exact duplicates, refuse conflicting duplicates, report gaps."""
    repairs: list[str] = []
    if not frame.index.is_monotonic_increasing:
        back = int((np.diff(frame.index.values.astype("int64")) < 0).sum())
        repairs.append(f"sorted {back} out-of-order time step(s) back into order")
        frame = frame.sort_index(kind="stable")
    dup = frame.index.duplicated(keep=False)
    if dup.any():
        values = frame.drop(columns="line")
        same = values[dup].groupby(level=0).nunique().le(1).all(axis=1)
        conflicting = same[~same].index
        if len(conflicting):
            rows = frame.loc[frame.index.isin(conflicting), "line"].tolist()
            listed = ", ".join(str(r) for r in rows[:_MAX_LISTED])
            raise SeriesError(
                f"{path}: {len(conflicting)} timestamp(s) have conflicting readings "
                f"(lines {listed}); cannot tell which is right"
            )
        n = int(frame.index.duplicated().sum())
        repairs.append(f"dropped {n} exact duplicate row(s)")
        frame = frame[~frame.index.duplicated()]
    frame = frame.drop(columns="line")
    if len(frame) > 1:
        gaps = frame.index.to_series().diff()
        usual = gaps.median()
        big = gaps[gaps > max(usual * 2, STEP)]
        for when, size in list(big.items())[:_MAX_LISTED]:
            repairs.append(f"gap of {size} before {when}: those steps are missing (not scored)")
        if len(big) > _MAX_LISTED:
            repairs.append(f"... and {len(big) - _MAX_LISTED} more gaps")
    over = frame["busy"] > frame["total"]
    if over.any():
        repairs.append(f"{int(over.sum())} sample(s) report more busy than total nodes (kept)")
    return {"frame": frame, "repairs": repairs}


def to_steps(series: Series, step: pd.Timedelta = STEP) -> pd.DataFrame:
    """Per-step frame: ``demand`` = max busy, ``total`` = max total, ``missing`` flag.

    Steps with no sample are kept (``missing`` true), with demand/total carried
    forward from the last observed step so a causal consumer sees "no news".
    """
    grouped = series.frame.resample(step)
    out = pd.DataFrame({"demand": grouped["busy"].max(), "total": grouped["total"].max()})
    if "pending" in series.frame:
        out["pending"] = grouped["pending"].max()
    out["missing"] = out["demand"].isna()
    if out["missing"].mean() > 0.5:
        gaps = series.frame.index.to_series().diff().dropna()
        sampled = gaps.median() if not gaps.empty else None
        minutes = step.total_seconds() / 60
        why = (
            f": the series is sampled every {sampled.total_seconds() / 60:g} min (median), "
            f"coarser than the {minutes:g}-minute step; give a series sampled at least "
            f"every {minutes:g} min"
            if sampled is not None and sampled > step
            else ""
        )
        raise SeriesError(
            f"{series.name}: {int(out['missing'].sum())} of {len(out)} steps have no data{why}"
        )
    filled = out.drop(columns="missing").ffill().astype("int64")
    filled["missing"] = out["missing"]
    return filled


def load_steps(
    path: str | Path,
    fmt: str = "auto",
    *,
    nodes: int | None = None,
    cpus_per_node: float | None = None,
) -> tuple[pd.DataFrame, list[str], str]:
    """Per-step frame of a series file, of a folder of per-VC files summed per step,
    or (``fmt="jobs"``) of a job log swept into busy nodes (:mod:`energy.job_series`).

    Returns ``(steps, repairs, name)``; a folder sums the VCs' demand and nodes
    (each VC's nodes rounded up separately, as they are separate machines). A VC
    whose file starts later or ends earlier than the others adds no nodes outside
    its own time range; only gaps inside a file's range are missing steps.
    ``nodes`` (the cluster's size) and ``cpus_per_node`` are for job logs only.
    """
    if fmt == JOBS:
        from energy.job_series import load_job_steps

        return load_job_steps(path, nodes, cpus_per_node=cpus_per_node)
    if nodes is not None or cpus_per_node is not None:
        raise SeriesError("nodes and CPUs per node are for a job log (format 'jobs') only: "
                          "a series file has its own total")
    path = Path(path)
    if not path.is_dir():
        series = load_series(path, fmt)
        return to_steps(series), series.repairs, series.name
    files = sorted(p for p in path.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise SeriesError(f"{path}: folder holds no .csv or .csv.gz series")
    parts, names, repairs = [], [], []
    for file in files:
        series = load_series(file, fmt)
        parts.append(to_steps(series))
        names.append(series.name)
        repairs += [f"{series.name}: {r}" for r in series.repairs]
    index = parts[0].index
    for part in parts[1:]:
        index = index.union(part.index)
    for name, part in zip(names, parts, strict=True):
        if (part.index[0], part.index[-1]) != (index[0], index[-1]):
            repairs.append(f"{name}: covers {part.index[0]} .. {part.index[-1]} only "
                           f"(the folder: {index[0]} .. {index[-1]}); no nodes outside it")
    total = None
    missing = pd.Series(False, index=index)
    for part in parts:
        # Outside its own first..last step a VC has no nodes (it did not exist yet,
        # or no longer): it adds 0 there, and its absence is not missing data.
        part = part.reindex(index)
        missing |= part["missing"].fillna(False).astype(bool)
        numbers = part.drop(columns="missing").fillna(0)
        total = numbers if total is None else total + numbers
    assert total is not None
    steps = total.astype("int64")
    steps["missing"] = missing
    return steps, repairs, path.name
