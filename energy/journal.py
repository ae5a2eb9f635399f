"""Write-ahead journal of power actions: intent first, outcome after.

Each record is one JSON line appended with a single ``write`` on an
``O_APPEND`` descriptor and fsynced, so a crash leaves at most one torn last
line (ignored on read). An ``intent`` without a later ``done``/``failed``/
``abandoned`` record with the same ``id`` is *in doubt*: the controller
resolves it on restart (see :meth:`energy.controller.Controller.recover`).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

OUTCOMES = ("done", "failed", "abandoned")


class Journal:
    """Append-only JSON-lines journal at ``path``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Durably append ``record`` (``ts`` added); returns it."""
        record = {"ts": time.time(), **record}
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # close a line torn by a crash; it stays unparseable
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def intent(self, action: str, node: str, reason: str, *, dry_run: bool) -> dict[str, Any]:
        """Record that ``action`` on ``node`` is about to be taken; returns the record."""
        return self.append({
            "id": uuid.uuid4().hex, "kind": "intent", "action": action, "node": node,
            "reason": reason, "dry_run": dry_run,
        })

    def outcome(self, intent_id: str, kind: str, detail: str = "") -> dict[str, Any]:
        """Record how the intent ``intent_id`` ended (``done``/``failed``/``abandoned``)."""
        if kind not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {kind!r}")
        return self.append({"id": intent_id, "kind": kind, "detail": detail})

    def records(self) -> list[dict[str, Any]]:
        """All complete records; a torn (unparseable) line is skipped."""
        if not self.path.exists():
            return []
        out = []
        for raw in self.path.read_bytes().splitlines():
            try:
                out.append(json.loads(raw))
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
        return out

    def in_doubt(self) -> list[dict[str, Any]]:
        """Applied intents (not dry-run) with no outcome recorded yet, oldest first."""
        records = self.records()
        closed = {r["id"] for r in records if r.get("kind") in OUTCOMES}
        return [
            r for r in records
            if r.get("kind") == "intent" and not r.get("dry_run") and r["id"] not in closed
        ]
