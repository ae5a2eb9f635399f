"""The model being served, swapped atomically without dropping requests.

A new model is loaded completely (in the request thread of ``/reload`` or
``/activate``, or in this worker's watcher thread) while the current one keeps
answering; only then is the reference replaced, under a lock. A file that fails
to load is refused with its path and reason and the old model stays. An
XGBoost model is served through :func:`~predictor.service.fast_trees.lean_model`
(the same trees, a cheaper single-row call).

Every gunicorn worker has its own slot. The registry's active marker and a
reload stamp on disk are the shared truth: each worker's watcher notices a
change within ``poll_s`` seconds and loads the new model itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from predictor.registry import ModelLoadError, ModelRegistry
from predictor.service.fast_trees import lean_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A fully loaded model and the registry version it came from."""

    version: str
    model: Any
    loaded_at: float


class ModelSlot:
    """Holds the served :class:`LoadedModel`; loads and swaps under a lock."""

    def __init__(
        self,
        registry: ModelRegistry,
        stamp_file: Path,
        on_swap: Callable[[str | None, str | None], None] | None = None,
        on_refuse: Callable[[ModelLoadError], None] | None = None,
    ) -> None:
        self.registry = registry
        self.stamp_file = stamp_file
        self._on_swap = on_swap
        self._on_refuse = on_refuse
        self._current: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._seen: tuple[str | None, int] = (None, 0)
        self.last_error: ModelLoadError | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The served model (a plain reference read: never blocks)."""
        return self._current

    def _stamp(self) -> int:
        try:
            return self.stamp_file.stat().st_mtime_ns
        except OSError:
            return 0

    def _marker(self) -> tuple[str | None, int]:
        return self.registry.active(), self._stamp()

    def load(self, version: str) -> LoadedModel:
        """Load ``version`` completely and swap it in; ``ModelLoadError`` leaves the old one."""
        with self._swap_lock:
            previous = self._current
            try:
                model = lean_model(self.registry.load(version))
            except ModelLoadError as exc:
                self.last_error = exc
                if self._on_refuse is not None:
                    self._on_refuse(exc)
                raise
            self._current = LoadedModel(version=version, model=model, loaded_at=time.time())
            self.last_error = None
        log.info("serving model %s (was %s)", version, previous and previous.version)
        if self._on_swap is not None:
            self._on_swap(version, previous.version if previous else None)
        return self._current

    def load_active(self) -> LoadedModel | None:
        """Load the registry's active version (None when there is none)."""
        marker = self._marker()
        self._seen = marker
        version = marker[0]
        return self.load(version) if version is not None else None

    def activate(self, version: str) -> LoadedModel:
        """Load ``version``, then make it the registry's active one (a bad file changes nothing)."""
        previous = self._current
        loaded = self.load(version)
        try:
            self.registry.activate(version)
        except Exception:
            with self._swap_lock:  # the registry refused: keep serving what it says is active
                self._current = previous
            if self._on_swap is not None:
                self._on_swap(previous.version if previous else None, version)
            raise
        self._seen = self._marker()
        return loaded

    def request_reload(self) -> LoadedModel | None:
        """Reload the active version here and tell the other workers (touch the stamp)."""
        self.stamp_file.parent.mkdir(parents=True, exist_ok=True)
        self.stamp_file.touch()
        return self.load_active()

    def poll(self) -> None:
        """Load the active version if the marker changed since last seen (watcher step)."""
        marker = self._marker()
        if marker == self._seen:
            return
        self._seen = marker
        if marker[0] is None:
            return
        try:
            self.load(marker[0])
        except ModelLoadError as exc:
            log.error("refused model %s: %s (still serving %s)", marker[0], exc,
                      self._current and self._current.version)  # fmt: skip


class Watcher:
    """A daemon thread calling ``steps`` every ``interval`` seconds (errors logged, not fatal).

    With ``immediate`` the steps also run once as soon as the thread starts.
    """

    def __init__(self, interval: float, steps: list[Callable[[], None]], *,
                 name: str = "foresight-watch", immediate: bool = False) -> None:
        self.interval = interval
        self.steps = steps
        self.name = name
        self.immediate = immediate
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        if self.immediate:
            self._steps()
        while not self._stop.wait(self.interval):
            self._steps()

    def _steps(self) -> None:
        for step in self.steps:
            try:
                step()
            except Exception:
                log.exception("%s step failed", self.name)
