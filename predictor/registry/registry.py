"""``ModelRegistry``: versioned run-time model artifacts with atomic activation.

Layout under ``root`` (default ``<state dir>/models``)::

    duration/<version>/model.pkl       the pickled DurationModel
    duration/<version>/metadata.json   digest, feature schema, metrics, versions, log
    duration/ACTIVE                    the active version (written atomically)
    duration/HISTORY                   activation history, one version a line (for rollback)

A version folder is written under a temporary name and renamed into place
only when complete, so a failed training never leaves a half version behind.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from predictor.features import FEATURE_SCHEMA_VERSION
from predictor.models.duration import MODEL_FILE, DurationModel, ModelSchemaError
from predictor.state import atomic_write_bytes, atomic_write_json, state_dir

METADATA_FILE = "metadata.json"
ACTIVE_FILE = "ACTIVE"
HISTORY_FILE = "HISTORY"
AREA = "duration"


class ModelLoadError(RuntimeError):
    """A model artifact could not be loaded; the message names the path and the reason."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot load model at {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model artifact depends on."""
    import numpy
    import pandas
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
        "xgboost": xgboost.__version__,
    }


class ModelRegistry:
    """Versioned duration models under ``root`` with an atomically switched active pointer."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir() / "models"
        self.area = self.root / AREA

    # --- writing -------------------------------------------------------------
    def save(
        self,
        model: DurationModel,
        *,
        data_digest: str = "",
        metrics: dict[str, Any] | None = None,
        training_log: list[str] | None = None,
        extra: dict[str, Any] | None = None,
        activate: bool = True,
    ) -> str:
        """Store ``model`` as a new version (activated unless ``activate=False``); returns it."""
        self.area.mkdir(parents=True, exist_ok=True)
        version = self._new_version()
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=self.area))
        tmp.chmod(0o755)
        try:
            model.save(tmp)
            meta = {
                "version": version,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "data_digest": data_digest,
                "metrics": metrics or {},
                "libraries": library_versions(),
                "training_log": training_log or [],
                **model.metadata(),
                **(extra or {}),
            }
            atomic_write_json(tmp / METADATA_FILE, meta)
            os.rename(tmp, self.area / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if activate:
            self.activate(version)
        return version

    def _new_version(self) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        taken = set(self.versions())
        n = 1
        while f"{stamp}-{n:03d}" in taken:
            n += 1
        return f"{stamp}-{n:03d}"

    def activate(self, version: str) -> None:
        """Make ``version`` active (atomic pointer write); it must load cleanly."""
        self.load(version)  # refuse to activate a broken or incompatible artifact
        atomic_write_bytes(self.area / ACTIVE_FILE, (version + "\n").encode())
        history = [v for v in self._history() if v != version] + [version]
        atomic_write_bytes(self.area / HISTORY_FILE, ("\n".join(history) + "\n").encode())

    def rollback(self) -> str:
        """Re-activate the previously active version; returns it."""
        history = self._history()
        if len(history) < 2:
            raise ModelLoadError(self.area / HISTORY_FILE, "no earlier active version")
        previous = history[-2]
        atomic_write_bytes(self.area / ACTIVE_FILE, (previous + "\n").encode())
        atomic_write_bytes(self.area / HISTORY_FILE, ("\n".join(history[:-1]) + "\n").encode())
        return previous

    # --- reading ---------------------------------------------------------------
    def versions(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.area.is_dir():
            return []
        return sorted(
            p.name for p in self.area.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    def _history(self) -> list[str]:
        path = self.area / HISTORY_FILE
        if not path.exists():
            return []
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    def active(self) -> str | None:
        """The active version, or None if none was activated."""
        path = self.area / ACTIVE_FILE
        if not path.exists():
            return None
        return path.read_text().strip() or None

    def metadata(self, version: str) -> dict[str, Any]:
        """The ``metadata.json`` of ``version``."""
        path = self.area / version / METADATA_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(path, "no such version or metadata missing") from None
        except (OSError, ValueError) as exc:
            raise ModelLoadError(path, f"unreadable metadata: {exc}") from exc

    def load(self, version: str | None = None) -> DurationModel:
        """Load ``version`` (default: the active one).

        Raises :class:`ModelLoadError` for a missing/corrupted artifact or a
        feature schema that differs from the code's.
        """
        version = version or self.active()
        if version is None:
            raise ModelLoadError(self.area / ACTIVE_FILE, "no active model; run `foresight train`")
        folder = self.area / version
        meta = self.metadata(version)
        schema = meta.get("feature_schema_version")
        if schema != FEATURE_SCHEMA_VERSION:
            raise ModelLoadError(
                folder,
                f"feature schema v{schema} but this code builds v{FEATURE_SCHEMA_VERSION}; "
                "retrain with `foresight train`",
            )
        try:
            return DurationModel.load(folder)
        except ModelSchemaError as exc:
            raise ModelLoadError(folder / MODEL_FILE, str(exc)) from exc
        except FileNotFoundError:
            raise ModelLoadError(folder / MODEL_FILE, "model file missing") from None
        except Exception as exc:  # unpickling garbage raises many types
            raise ModelLoadError(folder / MODEL_FILE, f"corrupted ({type(exc).__name__}: {exc})"
                                 ) from exc
