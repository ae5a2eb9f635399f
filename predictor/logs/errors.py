"""What a log reader reports when a line is bad: :class:`LogError`, :class:`LogFormatError`.

:class:`ErrorSink` collects the bad lines of one read: it keeps the first
``keep`` of them, counts all, and in strict mode raises on the first.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

MAX_KEPT_ERRORS = 100


class LogError(NamedTuple):
    """One bad line: the file, its 1-based physical line number and why it was rejected."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


class LogFormatError(ValueError):
    """The log cannot be read: unknown format, missing columns, or a bad line in strict mode."""


class ErrorSink:
    """Collects the bad lines of one log read (first ``keep`` kept, all counted)."""

    def __init__(self, path: str | Path, *, strict: bool = False, keep: int = MAX_KEPT_ERRORS):
        self.path = str(path)
        self.strict = strict
        self.keep = keep
        self.errors: list[LogError] = []
        self.count = 0

    def add(self, line: int, reason: str) -> None:
        """Record that ``line`` was rejected for ``reason``; raise if strict."""
        error = LogError(self.path, int(line), reason)
        if self.strict:
            raise LogFormatError(str(error))
        self.count += 1
        if len(self.errors) < self.keep:
            self.errors.append(error)
