"""Keeping each worker's in-memory :class:`HistoryStore` in step with the shared SQLite file.

Every gunicorn worker holds its own ``HistoryStore`` (in-memory buckets
replayed from ``history.sqlite``). A completed job posted to one worker is
written to the file; the other workers fold it in when their watcher calls
:meth:`HistorySync.pull` (and before each ``/complete``, so a replay sent to
another worker is still recognised as a replay). Rows are read by ``rowid``
watermark, so a pull costs one indexed query. Submissions recorded by batch
scoring are queued and written by the watcher (:meth:`HistorySync.flush`), so
the SQLite commit stays off the request path.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from predictor.history import HistoryStore
from predictor.logs.schema import to_canonical

_TABLES = ("ended", "submitted")
#: rows folded per lock hold, so a completion never waits behind a whole large pull
CHUNK = 256


class HistorySync:
    """Owns the worker's store plus the lock that serialises its writers.

    Readers (scoring) take no lock; see :func:`predictor.service.scoring.feature_row`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._pending_lock = threading.Lock()
        self._pull_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._reader = sqlite3.connect(path, check_same_thread=False)
        self._marks = dict.fromkeys(_TABLES, 0)
        # The store creates the tables; read the watermarks first so nothing
        # written between its replay and our first pull is missed (re-folding is idempotent).
        if self._tables_exist():
            self._marks = {t: self._max_rowid(t) for t in _TABLES}
        self.store = HistoryStore(path)

    def _tables_exist(self) -> bool:
        rows = self._reader.execute(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name IN (?, ?)", _TABLES
        ).fetchone()
        return bool(rows and rows[0] == len(_TABLES))

    def _max_rowid(self, table: str) -> int:
        row = self._reader.execute(f"SELECT coalesce(max(rowid), 0) FROM {table}").fetchone()
        return int(row[0])

    def _new_rows(self, table: str) -> pd.DataFrame | None:
        """Rows of ``table`` written since the last pull; None when there are none.

        That is the common case, once a second in every worker, so it builds no
        DataFrame: two empty frames cost ~3 ms of CPU, during which a score request
        arriving at the worker waits for the GIL.
        """
        cursor = self._reader.execute(
            f"SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid", (self._marks[table],)
        )
        rows = cursor.fetchall()
        if not rows:
            return None
        frame = pd.DataFrame(rows, columns=[d[0] for d in cursor.description])
        self._marks[table] = int(frame["rowid"].max())
        return frame.drop(columns="rowid")

    def _fold(self, jobs: pd.DataFrame, completed: bool) -> int:
        add = self.store.add_completed if completed else self.store.add_submitted
        added = 0
        for start in range(0, len(jobs), CHUNK):
            with self.lock:
                added += add(jobs.iloc[start : start + CHUNK])
        return added

    def pull(self) -> int:
        """Fold in rows other processes wrote since the last pull; returns how many were new."""
        with self._pull_lock:
            if not self._tables_exist():
                return 0
            submitted = self._new_rows("submitted")
            ended = self._new_rows("ended")
        added = 0
        if submitted is not None:
            added += self._fold(to_canonical(submitted), completed=False)
        if ended is not None:
            added += self._fold(to_canonical(ended), completed=True)
        return added

    def add_completed(self, jobs: pd.DataFrame) -> int:
        """Pull first, then fold ``jobs`` in; returns how many were new (idempotent per id)."""
        self.pull()
        with self.lock:
            return self.store.add_completed(jobs)

    def queue_submitted(self, rows: list[dict[str, Any]]) -> None:
        """Queue submissions (rows with a ``job_id``) for :meth:`flush`, off the request path."""
        with self._pending_lock:
            self._pending.extend(rows)

    def flush(self) -> int:
        """Record queued submissions (one commit); returns how many were new."""
        with self._pending_lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        return self._fold(to_canonical(pd.DataFrame.from_records(rows)), completed=False)

    def writable(self) -> tuple[bool, str]:
        """Whether the store's file and folder can be written (for ``/readyz``)."""
        for target in (self.path, self.path.parent):
            if not os.access(target, os.W_OK):
                return False, f"history store {target} is not writable"
        return True, "ok"

    def close(self) -> None:
        """Close both connections."""
        self._reader.close()
        self.store.close()
