"""Slurm accounting as ``sacct --json`` prints it, in both shapes Foresight meets.

* Slurm 22.05 (``openapi/dbv0.0.38``): plain numbers (``time.limit`` =
  minutes), ``state.current`` a string, ``exit_code.return_code`` a number.
* Slurm 23.11+/24.11 (``data_parser/v0.0.40+``): optional numbers are
  ``{"set": .., "infinite": .., "number": ..}`` objects (unset or infinite =
  NaN), ``state.current`` a list of flags (the first is the state).

Per job: ``job_id``; ``user``; ``account``; ``partition`` (also ``vc``);
``name``; ``qos``; ``time.submission/start/end`` (epoch seconds, 0 =
unknown); ``time.limit`` (minutes); ``tres.requested`` (else ``allocated``)
for cpu, mem (MiB), node and ``gres`` ``gpu``/``gpu:TYPE`` counts, falling
back to ``required.CPUs`` and ``allocation_nodes``; ``exit_code.return_code``.

The ``jobs`` array is decoded one job at a time from a sliding text buffer,
so memory stays bounded by ``chunk_rows`` jobs, not by the file. A job's
line number is the line on which its object starts. A JSON syntax error
cannot be skipped past: it is reported (or raised when strict) and reading stops.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from predictor.logs.errors import ErrorSink, LogFormatError
from predictor.logs.sacct import slurm_limit_seconds
from predictor.logs.states import normalize_state
from predictor.logs.textio import open_text
from predictor.logs.validate import SeenJobIds, finish_chunk

FORMAT = "sacct-json"
READ_CHARS = 1 << 20
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\r\n"


class JsonSyntaxError(ValueError):
    """The JSON text is malformed at ``line``."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _Stream:
    """A sliding window over a text file that decodes JSON values one at a time."""

    def __init__(self, fh: IO[str]):
        self.fh = fh
        self.buf = ""
        self.pos = 0
        self.eof = False
        # Line-number cursor: buf[self._mark] is on line self._line. It only moves
        # forward, so counting newlines costs O(file) in all.
        self._mark = 0
        self._line = 1

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.fh.read(READ_CHARS)
        if not chunk:
            self.eof = True
            return False
        self._line = self.line_at(self.pos)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = self._mark = 0
        return True

    def line_at(self, pos: int) -> int:
        """The 1-based line of ``buf[pos]`` (``pos`` at or after the last one asked about)."""
        if pos < self._mark:  # only after an error looked back: count afresh from the mark
            return self._line - self.buf.count("\n", pos, self._mark)
        self._line += self.buf.count("\n", self._mark, pos)
        self._mark = pos
        return self._line

    def peek(self) -> str:
        """The next non-blank character ("" at end of file)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise JsonSyntaxError(self.line_at(self.pos), f"expected {char!r}, found {found!r}")
        self.pos += 1

    def value(self) -> tuple[Any, int]:
        """Decode the next JSON value; return it and the line it starts on."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                # Maybe the value runs past the buffer: read more and retry.
                if self._more():
                    continue
                raise JsonSyntaxError(self.line_at(exc.pos), f"invalid JSON: {exc.msg}") from exc
            # A number at the buffer's end may continue in the next chunk.
            if end == len(self.buf) and not self.eof and self._more():
                continue
            line = self.line_at(self.pos)
            self.pos = end
            return obj, line


def _iter_array(stream: _Stream) -> Iterator[tuple[Any, int]]:
    stream.expect("[")
    if stream.peek() == "]":
        stream.pos += 1
        return
    while True:
        yield stream.value()
        sep = stream.peek()
        stream.pos += 1
        if sep == "]":
            return
        if sep != ",":
            raise JsonSyntaxError(
                stream.line_at(stream.pos - 1), f"expected ',' or ']', found {sep!r}"
            )


def iter_jobs(fh: IO[str]) -> Iterator[tuple[Any, int]]:
    """Yield ``(job, line)`` for each element of the top-level ``jobs`` array (or bare list)."""
    stream = _Stream(fh)
    first = stream.peek()
    if first == "[":
        yield from _iter_array(stream)
        return
    stream.expect("{")
    found = False
    while stream.peek() not in ("}", ""):
        key, _ = stream.value()
        stream.expect(":")
        if key == "jobs":
            found = True
            yield from _iter_array(stream)
        else:
            stream.value()
        if stream.peek() == ",":
            stream.pos += 1
    stream.expect("}")
    if not found:
        raise LogFormatError('no "jobs" array at the top level (is this sacct --json output?)')


def number(value: Any) -> float:
    """A Slurm number: plain, or ``{"set", "infinite", "number"}`` (unset/infinite -> NaN)."""
    if isinstance(value, dict):
        if not value.get("set", True) or value.get("infinite", False):
            return np.nan
        value = value.get("number")
    if isinstance(value, bool) or value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def timestamp(value: Any) -> float:
    """An epoch time; Slurm writes 0 for 'not yet'."""
    seconds = number(value)
    return np.nan if seconds == 0 else seconds


def _tres(entries: Any) -> dict[str, float]:
    """cpu/mem/node/gpu counts from a TRES list ``[{"type", "name", "count"}, ...]``."""
    out: dict[str, float] = {}
    if not isinstance(entries, list):
        return out
    for item in entries:
        if not isinstance(item, dict):
            continue
        kind, name, count = item.get("type"), item.get("name") or "", number(item.get("count"))
        if kind in ("cpu", "mem", "node"):
            out[kind] = count
        elif kind == "gres" and (name == "gpu" or name.startswith("gpu:")):
            out["gpu"] = out.get("gpu", 0.0) + count
    return out


def _state(value: Any) -> str:
    current = value.get("current") if isinstance(value, dict) else value
    if isinstance(current, list):
        current = current[0] if current else ""
    return normalize_state(str(current or ""))


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, dict | list) else str(value)


def job_row(job: Any) -> dict[str, Any] | str:
    """The canonical fields of one sacct JSON job, or why it cannot be read."""
    if not isinstance(job, dict):
        return f"job record is a {type(job).__name__}, not an object"
    if job.get("job_id") is None:
        return "job record has no job_id"
    tres = _get(job, "tres") or {}
    requested, allocated = _tres(tres.get("requested")), _tres(tres.get("allocated"))

    def pick(key: str) -> float:
        return requested.get(key, allocated.get(key, np.nan))

    cpus = pick("cpu")
    if np.isnan(cpus):
        cpus = number(_get(job, "required", "CPUs"))
    nodes = pick("node")
    if np.isnan(nodes):
        nodes = number(job.get("allocation_nodes"))
    gpus = pick("gpu")
    if np.isnan(gpus) and (requested or allocated):
        gpus = 0.0
    time = job.get("time") if isinstance(job.get("time"), dict) else {}
    submit = timestamp(time.get("submission"))
    if np.isnan(submit):
        return "job record has no time.submission"
    start = timestamp(time.get("start"))
    end = timestamp(time.get("end"))
    return {
        "job_id": _text(job.get("job_id")),
        "user": _text(job.get("user")),
        "account": _text(job.get("account")),
        "partition": _text(job.get("partition")),
        "job_name": _text(job.get("name")),
        "qos": _text(job.get("qos")),
        "vc": _text(job.get("partition")),
        "cpus": cpus,
        "gpus": gpus,
        "nodes": nodes,
        "mem_mb": pick("mem"),
        "time_limit": float(slurm_limit_seconds(number(time.get("limit")))),
        "submit_time": submit,
        "start_time": start,
        "end_time": end,
        "run_time": end - start,
        "wait_time": start - submit,
        "state": _state(job.get("state")),
        "exit_code": number(_get(job, "exit_code", "return_code")),
    }


def _named(jobs: Iterator[tuple[Any, int]], path: str | Path) -> Iterator[tuple[Any, int]]:
    """``jobs``, with a :class:`LogFormatError` from it naming ``path``."""
    try:
        yield from jobs
    except LogFormatError as exc:
        raise LogFormatError(f"{path}: {exc}") from exc


def iter_sacct_json(path: str | Path, sink: ErrorSink, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield canonical job chunks from ``sacct --json`` output (22.05 or 24.11 shapes)."""
    seen = SeenJobIds()
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    reasons: list[str] = []

    def flush() -> pd.DataFrame:
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"job_id": []})
        out = finish_chunk(frame, lines, np.array(reasons, dtype=object), sink, seen)
        rows.clear()
        lines.clear()
        reasons.clear()
        return out

    with open_text(path) as fh:
        try:
            for job, line in _named(iter_jobs(fh), path):
                row = job_row(job)
                rows.append({"job_id": ""} if isinstance(row, str) else row)
                reasons.append(row if isinstance(row, str) else "")
                lines.append(line)
                if len(rows) >= chunk_rows:
                    yield flush()
        except JsonSyntaxError as exc:
            if rows:
                yield flush()
            sink.add(exc.line, exc.reason)
            return
    if rows:
        yield flush()
