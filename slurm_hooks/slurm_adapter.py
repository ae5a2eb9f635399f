"""One interface over Slurm's command-line tools: queue, nodes, accounting, job updates, power.

Reads the ``--json`` output of ``squeue``, ``scontrol show nodes`` and ``sacct``
and accepts BOTH shapes Slurm has used:

* 22.05: scalars (``"time_limit": 5``, ``"job_state": "PENDING"``,
  ``"features": "gpu,a100"``);
* 24.11: ``{"set": true, "infinite": false, "number": 5}`` objects and lists
  (``"job_state": ["PENDING"]``, ``"features": ["gpu"]``).

Filtering (states, users, partitions, node names, time windows) is done here,
in the client, because 22.05's ``squeue --json`` / ``sinfo --json`` ignore
their filter options. Jobs come back as the canonical job table
(:mod:`predictor.logs.schema`) plus a few live columns; times are epoch
seconds, limits seconds.

Where the commands run is a ``runner``: :func:`local_runner` (this host, the
default) or :func:`docker_runner` (inside a container of the dev cluster).
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from predictor.logs.sacct import slurm_limit_seconds
from predictor.logs.schema import JOB_COLUMNS, to_canonical

Runner = Callable[[Sequence[str]], str]
#: Extra live columns ``queue()`` adds to the canonical job table.
QUEUE_EXTRA = ("priority", "site_factor", "reason", "node_list", "comment", "admin_comment")
#: Extra columns ``jobs()`` adds to the canonical job table.
ACCT_EXTRA = ("node_list", "comment", "admin_comment", "cluster")
_GPU_RE = re.compile(r"gres[/:]gpu(?::[A-Za-z0-9_.-]+)?[=:](\d+)")
#: A node's ``gres`` value: ``gpu:2``, ``gpu:a100:2``, ``gpu:2(S:0)``, possibly among others.
_NODE_GPU_RE = re.compile(r"(?:^|,)gpu(?::[A-Za-z0-9_.-]+)?:(\d+)")
_MEM_RE = re.compile(r"(?:^|,)mem=([\d.]+)([KMGT]?)")
_MEM_UNIT = {"K": 1 / 1024, "": 1.0, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


class SlurmCommandError(RuntimeError):
    """A Slurm command failed or printed something that is not the expected JSON."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{shlex.join(self.argv)}` failed (rc={returncode}): {self.stderr}")


def _run(argv: Sequence[str], timeout: float) -> str:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise SlurmCommandError(argv, 127, f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise SlurmCommandError(argv, 124, f"timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise SlurmCommandError(argv, proc.returncode, proc.stderr or proc.stdout)
    return proc.stdout


def local_runner(timeout: float = 60) -> Runner:
    """Run Slurm commands on this host."""
    return lambda argv: _run(argv, timeout)


def docker_runner(container: str, timeout: float = 60, user: str | None = None) -> Runner:
    """Run Slurm commands inside ``container`` with ``docker exec``."""
    prefix = ["docker", "exec", *(["--user", user] if user else []), container]

    def run(argv: Sequence[str]) -> str:
        try:
            return _run([*prefix, *argv], timeout)
        except SlurmCommandError as exc:
            raise SlurmCommandError(argv, exc.returncode, exc.stderr) from None

    return run


# --------------------------------------------------------------------- parsing
def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` output -> {key: value}."""
    out = {}
    for line in text.splitlines():
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def value(v: Any) -> float | str | None:
    """A scalar from either shape: ``5`` or ``{"set": true, "infinite": false, "number": 5}``.

    Unset or infinite numbers give None.
    """
    if isinstance(v, Mapping):
        if not v.get("set", True) or v.get("infinite", False):
            return None
        return v.get("number")
    return v


#: Slurm's 32- and 64-bit "infinite" / "no value" sentinels, which 24.11 sometimes prints as
#: plain numbers (e.g. the start time of a job cancelled while pending).
_SENTINELS = frozenset({0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFE, 0xFFFFFFFFFFFFFFFF})


def number(v: Any) -> float:
    """A float from either shape; NaN for unset, infinite, sentinel or missing values."""
    v = value(v)
    if v is None or v == "":
        return math.nan
    try:
        out = float(v)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if out >= 0xFFFFFFFE and int(out) in _SENTINELS else out


def as_list(v: Any) -> list[str]:
    """A list of strings from a list, a comma-separated string, or nothing."""
    if v is None or v == "":
        return []
    if isinstance(v, str):
        return [s for s in (p.strip() for p in v.split(",")) if s]
    return [str(s) for s in v]


def states(v: Any) -> list[str]:
    """Upper-case state words from ``"PENDING"``, ``["PENDING"]`` or ``"idle+power"`` values."""
    words: list[str] = []
    for item in as_list(v):
        words += [w.upper() for w in re.split(r"[+&]", item) if w]
    return words


def _epoch(v: Any) -> float:
    """Epoch seconds; 0 (Slurm's 'not yet') becomes NaN."""
    t = number(v)
    return math.nan if t == 0 else t


def _gpus(*texts: Any) -> float:
    for text in texts:
        if isinstance(text, str):
            found = _GPU_RE.findall(text)
            if found:
                return float(sum(int(n) for n in found))
    return 0.0


def _tres_mem_mb(text: Any) -> float:
    """Memory (MiB) from a TRES string such as ``cpu=1,mem=4000M,node=1``."""
    if isinstance(text, str):
        m = _MEM_RE.search(text)
        if m:
            return float(m.group(1)) * _MEM_UNIT[m.group(2)]
    return math.nan


def _node_gpus(gres: Any) -> int:
    return sum(int(n) for g in as_list(gres) for n in _NODE_GPU_RE.findall(g))


def _reason(v: Any) -> str:
    text = "" if v is None else str(v)
    return "" if text == "None" else text


def _tres_gpus(tres: Any) -> float | None:
    """GPUs from sacct's ``tres.requested`` / ``tres.allocated`` lists (None if absent)."""
    if not isinstance(tres, list):
        return None
    total = 0.0
    for t in tres:
        if t.get("type") == "gres" and str(t.get("name", "")).split(":")[0] == "gpu":
            total += number(t.get("count")) or 0.0
    return total


def _tres_value(tres: Any, kind: str) -> float:
    if not isinstance(tres, list):
        return math.nan
    for t in tres:
        if t.get("type") == kind:
            return number(t.get("count"))
    return math.nan


def _exit_code(v: Any) -> float:
    if isinstance(v, Mapping):
        return number(v.get("return_code"))
    return number(v)


def _comment(v: Any, key: str) -> str:
    if isinstance(v, Mapping):
        return str(v.get(key) or "")
    return str(v or "") if key == "job" else ""


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: output is not JSON ({exc}): {text[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _frame(rows: list[dict[str, Any]], extra: Iterable[str]) -> pd.DataFrame:
    """Canonical table (run/wait times derived from the timestamps) plus ``extra`` columns."""
    extra = list(extra)
    given = [c for c in JOB_COLUMNS if c not in ("run_time", "wait_time")]
    frame = pd.DataFrame(rows, columns=[*given, *extra])
    out = to_canonical(frame)
    for col in extra:
        out[col] = frame[col].to_numpy() if len(frame) else pd.Series(dtype=object)
    return out.reset_index(drop=True)


def parse_squeue(payload: Mapping[str, Any] | str) -> pd.DataFrame:
    """``squeue --json`` (22.05 or 24.11) -> canonical job table + :data:`QUEUE_EXTRA`."""
    if isinstance(payload, str):
        payload = _load(payload, "squeue --json")
    rows = []
    for j in payload.get("jobs", []):
        st = states(j.get("job_state"))
        nodes = number(j.get("node_count"))
        mem = number(j.get("memory_per_node"))
        if math.isnan(mem):
            mem = number(j.get("memory_per_cpu")) * number(j.get("cpus"))
        elif not math.isnan(nodes):
            mem *= nodes
        if not mem > 0:  # NaN, or 24.11's "set" 0 when memory was not requested per node
            mem = _tres_mem_mb(j.get("tres_req_str"))
        rows.append(
            {
                "job_id": str(j.get("job_id")),
                "user": j.get("user_name") or "",
                "account": j.get("account") or "",
                "partition": j.get("partition") or "",
                "job_name": j.get("name") or "",
                "qos": j.get("qos") or "",
                "vc": j.get("partition") or "",
                "cpus": number(j.get("cpus")),
                "gpus": _gpus(j.get("tres_req_str"), j.get("tres_per_job"), j.get("tres_per_node")),
                "nodes": nodes,
                "mem_mb": mem,
                "time_limit": float(slurm_limit_seconds(number(j.get("time_limit")))),
                "submit_time": _epoch(j.get("submit_time")),
                "start_time": _epoch(j.get("start_time")) if "RUNNING" in st else math.nan,
                "end_time": math.nan,
                "state": st[0] if st else "UNKNOWN",
                "exit_code": math.nan,
                "priority": number(j.get("priority")),
                "site_factor": number(j.get("site_factor")),
                "reason": _reason(j.get("state_reason")),
                "node_list": j.get("nodes") or "",
                "comment": j.get("comment") or "",
                "admin_comment": j.get("admin_comment") or "",
            }
        )
    frame = _frame(rows, QUEUE_EXTRA)
    now = time.time()
    running = frame["state"] == "RUNNING"
    frame.loc[running, "run_time"] = now - frame.loc[running, "start_time"]
    return frame


def parse_sacct(payload: Mapping[str, Any] | str) -> pd.DataFrame:
    """``sacct --json`` (22.05 or 24.11) -> canonical job table + :data:`ACCT_EXTRA`."""
    if isinstance(payload, str):
        payload = _load(payload, "sacct --json")
    rows = []
    for j in payload.get("jobs", []):
        t = j.get("time") or {}
        st = states((j.get("state") or {}).get("current"))
        req = j.get("required") or {}
        tres = j.get("tres") or {}
        gpus = _tres_gpus(tres.get("requested"))
        if not gpus:
            gpus = _tres_gpus(tres.get("allocated")) or 0.0
        rows.append(
            {
                "job_id": str(j.get("job_id")),
                "user": j.get("user") or "",
                "account": j.get("account") or "",
                "partition": j.get("partition") or "",
                "job_name": j.get("name") or "",
                "qos": j.get("qos") or "",
                "vc": j.get("partition") or "",
                "cpus": number(req.get("CPUs")),
                "gpus": gpus,
                "nodes": number(j.get("allocation_nodes")),
                "mem_mb": _tres_value(tres.get("requested"), "mem"),
                "time_limit": float(slurm_limit_seconds(number(t.get("limit")))),
                "submit_time": _epoch(t.get("submission")),
                "start_time": _epoch(t.get("start")),
                "end_time": _epoch(t.get("end")),
                "state": st[0] if st else "UNKNOWN",
                "exit_code": _exit_code(j.get("exit_code")),
                "node_list": "" if j.get("nodes") == "None assigned" else j.get("nodes") or "",
                "comment": _comment(j.get("comment"), "job"),
                "admin_comment": _comment(j.get("comment"), "administrator"),
                "cluster": j.get("cluster") or "",
            }
        )
    return _frame(rows, ACCT_EXTRA)


def parse_sprio(text: str) -> dict[str, int]:
    """``sprio -h -o "%i|%S"`` output -> ``{job id: site factor}`` (bad lines skipped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        job_id, sep, factor = line.strip().partition("|")
        if sep and factor.strip().lstrip("-").isdigit():
            out[job_id.strip()] = int(factor)
    return out


@dataclass(frozen=True)
class NodeInfo:
    """One node as Slurm sees it."""

    name: str
    state: str  #: base state: IDLE, ALLOCATED, MIXED, DOWN, ...
    flags: tuple[str, ...]  #: DRAIN, POWERED_DOWN, POWERING_UP, NOT_RESPONDING, ...
    cpus: int
    alloc_cpus: int
    gpus: int
    features: tuple[str, ...]
    partitions: tuple[str, ...]
    reason: str = ""

    @property
    def state_text(self) -> str:
        return "+".join((self.state, *self.flags))

    @property
    def powered_down(self) -> bool:
        return "POWERED_DOWN" in self.flags or "POWER_DOWN" in self.flags

    @property
    def available(self) -> bool:
        """Up and schedulable: IDLE/MIXED/ALLOCATED, not drained, down, or powered off."""
        bad = {
            "DRAIN",
            "DRAINING",
            "DRAINED",
            "NOT_RESPONDING",
            "POWERED_DOWN",
            "POWER_DOWN",
            "POWERING_DOWN",
            "POWERING_UP",
            "INVALID_REG",
            "FAIL",
            "MAINTENANCE",
        }
        return self.state in {"IDLE", "MIXED", "ALLOCATED", "COMPLETING"} and not bad & set(
            self.flags
        )


def parse_nodes(payload: Mapping[str, Any] | str) -> list[NodeInfo]:
    """``scontrol show nodes --json`` (22.05 or 24.11) -> :class:`NodeInfo` list."""
    if isinstance(payload, str):
        payload = _load(payload, "scontrol show nodes --json")
    out = []
    for n in payload.get("nodes", []):
        words = states(n.get("state")) + states(n.get("state_flags"))
        base = words[0] if words else "UNKNOWN"
        flags = tuple(dict.fromkeys(w for w in words[1:] if w != base))
        out.append(
            NodeInfo(
                name=str(n.get("name")),
                state=base,
                flags=flags,
                cpus=int(number(n.get("cpus")) or 0),
                alloc_cpus=int(number(n.get("alloc_cpus")) or 0),
                gpus=_node_gpus(n.get("gres")),
                features=tuple(as_list(n.get("active_features") or n.get("features"))),
                partitions=tuple(as_list(n.get("partitions"))),
                reason=_reason(n.get("reason")),
            )
        )
    return out


# --------------------------------------------------------------------- adapter
class SlurmAdapter:
    """Queue, nodes, accounting, job updates and power control, whatever Slurm version."""

    def __init__(self, runner: Runner | None = None) -> None:
        self._runner = runner or local_runner()
        self._nodes_argv: list[str] | None = None

    def run(self, argv: Sequence[str], *, check: bool = True) -> str:
        """Run one Slurm command through the runner; '' instead of raising if not ``check``."""
        try:
            return self._runner(argv)
        except SlurmCommandError:
            if check:
                raise
            return ""

    def _json(self, argv: Sequence[str]) -> dict[str, Any]:
        try:
            return _load(self.run(argv), shlex.join(argv))
        except ValueError as exc:
            raise SlurmCommandError(argv, 0, str(exc)) from exc

    def config(self) -> dict[str, str]:
        """Slurm's running configuration (``scontrol show config``) as {key: value}."""
        return parse_config(self.run(["scontrol", "show", "config"]))

    def version(self) -> str:
        """Slurm's version, e.g. ``22.05.8``."""
        return self.run(["scontrol", "--version"]).split()[-1]

    def queue(
        self,
        *,
        states: Iterable[str] = ("PENDING", "RUNNING"),
        users: Iterable[str] | None = None,
        partitions: Iterable[str] | None = None,
        with_site_factor: bool = True,
    ) -> pd.DataFrame:
        """Jobs in the queue (pending and running by default), filtered client-side.

        Neither version's squeue JSON carries the site factor; with ``with_site_factor``
        the ``site_factor`` column of pending jobs comes from ``sprio`` (one more call).
        """
        frame = parse_squeue(self._json(["squeue", "--all", "--json"]))
        keep = frame["state"].isin({s.upper() for s in states})
        if users is not None:
            keep &= frame["user"].isin(set(users))
        if partitions is not None:
            keep &= frame["partition"].isin(set(partitions))
        frame = frame[keep].reset_index(drop=True)
        if with_site_factor and (frame["state"] == "PENDING").any():
            factors = self.site_factors()
            frame["site_factor"] = frame["job_id"].map(factors).astype(float)
        return frame

    def site_factors(self) -> dict[str, int]:
        """``{job id: site factor}`` of pending jobs, from ``sprio`` (both versions)."""
        out = self.run(["sprio", "-h", "-o", "%i|%S"], check=False)
        return parse_sprio(out)

    def nodes(self, names: Iterable[str] | None = None) -> list[NodeInfo]:
        """Every node (or those named), with state, CPUs, GPUs, features and partitions."""
        if self._nodes_argv is None:
            # 24.11: `scontrol show nodes --json`; 22.05's scontrol has no --json, but its
            # `sinfo --json` lists the same node records (24.11's sinfo groups them instead).
            try:
                payload = self._json(["scontrol", "show", "nodes", "--json"])
                self._nodes_argv = ["scontrol", "show", "nodes", "--json"]
            except SlurmCommandError as exc:
                if "--json" not in exc.stderr:
                    raise
                self._nodes_argv = ["sinfo", "--json"]
                payload = self._json(self._nodes_argv)
        else:
            payload = self._json(self._nodes_argv)
        nodes = parse_nodes(payload)
        if names is not None:
            wanted = set(names)
            nodes = [n for n in nodes if n.name in wanted]
        return nodes

    def jobs(
        self,
        since: float | datetime,
        until: float | datetime | None = None,
        *,
        states: Iterable[str] | None = None,
    ) -> pd.DataFrame:
        """Jobs from accounting (``sacct``) that ended (or were still active) since ``since``."""
        start = since.timestamp() if isinstance(since, datetime) else float(since)
        end = (
            time.time()
            if until is None
            else (until.timestamp() if isinstance(until, datetime) else float(until))
        )
        fmt = "%Y-%m-%dT%H:%M:%S"
        argv = [
            "sacct",
            "--json",
            "-a",
            "-X",
            "-S",
            time.strftime(fmt, time.localtime(start)),
            "-E",
            time.strftime(fmt, time.localtime(end + 1)),
        ]
        frame = parse_sacct(self._json(argv))
        ended = frame["end_time"]
        keep = ended.isna() | ((ended >= start) & (ended <= end + 1))
        if states is not None:
            keep &= frame["state"].isin({s.upper() for s in states})
        return frame[keep].drop_duplicates("job_id", keep="last").reset_index(drop=True)

    def update_job(
        self, job_id: int | str, *, site_factor: int | None = None, admin_comment: str | None = None
    ) -> None:
        """``scontrol update`` a job's site factor and/or admin comment (one call)."""
        fields = []
        if site_factor is not None:
            fields.append(f"SiteFactor={int(site_factor)}")
        if admin_comment is not None:
            fields.append(f"AdminComment={admin_comment}")
        if not fields:
            raise ValueError("update_job needs site_factor and/or admin_comment")
        self.run(["scontrol", "update", f"JobId={job_id}", *fields])

    def power_node(
        self, names: str | Iterable[str], action: Literal["up", "down"], *, force: bool = False
    ) -> None:
        """Ask Slurm to power nodes up or down (``state=power_up|power_down[_force]``)."""
        if action not in ("up", "down"):
            raise ValueError(f"action must be 'up' or 'down', not {action!r}")
        hostlist = names if isinstance(names, str) else ",".join(names)
        if not hostlist:
            raise ValueError("power_node needs at least one node name")
        state = f"power_{action}" + ("_force" if force and action == "down" else "")
        self.run(["scontrol", "update", f"NodeName={hostlist}", f"State={state}"])
