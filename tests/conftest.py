"""Shared fixtures: where the real data lives, and an isolated state directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from predictor.state import data_dir


@pytest.fixture(scope="session")
def data() -> Path:
    """The real data folder (``../shared/data``); tests that need it skip if absent."""
    path = data_dir()
    if not (path / "README.md").exists():
        pytest.skip(f"real data not found at {path}")
    return path


@pytest.fixture
def foresight_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``$FORESIGHT_HOME`` for one test."""
    home = tmp_path / "foresight-home"
    monkeypatch.setenv("FORESIGHT_HOME", str(home))
    return home
