"""Service building blocks that need no model: auth, site factors, gunicorn options."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from predictor.config import load_config
from predictor.service.auth import TokenAuth, ensure_token_file
from predictor.service.errors import ApiError
from predictor.service.scoring import (
    SITE_FACTOR_SCALE,
    absolute_site_factor,
    absolute_site_factor_one,
)


def test_token_file_created_private_once(tmp_path: Path) -> None:
    path = tmp_path / "token"
    assert ensure_token_file(path) is True
    token = path.read_text()
    assert len(token.strip()) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ensure_token_file(path) is False and path.read_text() == token


def _status(auth: TokenAuth, header: str | None) -> int:
    try:
        auth.check(header)
    except ApiError as exc:
        return exc.status
    return 200


def test_token_checks_and_rotation(tmp_path: Path) -> None:
    path = tmp_path / "token"
    auth = TokenAuth(path)
    assert _status(auth, "Bearer x") == 503  # no token configured: locked, says where
    path.write_text("s3cret\n")
    assert _status(auth, "Bearer s3cret") == 200
    assert _status(auth, "bearer s3cret") == 200
    assert _status(auth, "Bearer wrong") == 401
    assert _status(auth, "Basic s3cret") == 401
    assert _status(auth, None) == 401
    path.write_text("rotated\n")
    os.utime(path, ns=(1, 1))  # a different mtime even within the same clock tick
    assert _status(auth, "Bearer s3cret") == 401
    assert _status(auth, "Bearer rotated") == 200


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12), min_size=2, max_size=20))
def test_absolute_site_factor_is_monotone_and_bounded(values: list[float]) -> None:
    p = np.sort(np.asarray(values))
    factors = absolute_site_factor(p)
    assert np.all(np.diff(factors) >= 0)
    assert factors.min() >= 0 and factors.max() <= SITE_FACTOR_SCALE


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(-1e14, 1e14), st.sampled_from([0.0, -0.0, 1e12, -1e10, 0.5, -0.5])))
def test_one_priority_gets_the_site_factor_of_the_vectorised_mapping(priority: float) -> None:
    assert absolute_site_factor_one(priority) == absolute_site_factor(np.array([priority]))[0]


def test_site_factor_midpoint_is_priority_zero() -> None:
    assert absolute_site_factor(np.array([0.0]))[0] == SITE_FACTOR_SCALE // 2


def test_gunicorn_options_follow_config(tmp_path: Path) -> None:
    from predictor.cli.serve import gunicorn_options

    cfg = load_config(environ={}, state_dir=tmp_path, port=9999, workers=3)
    opts = gunicorn_options(cfg)
    assert opts["bind"] == "127.0.0.1:9999"
    assert (opts["workers"], opts["threads"]) == (3, 2)
    assert opts["worker_class"] == "predictor.service.worker.StickyThreadWorker"
    assert opts["control_socket"].startswith(str(tmp_path))


def test_unknown_policy_is_refused() -> None:
    from predictor.service.scoring import Scorer

    with pytest.raises(ValueError, match="known policies"):
        Scorer("nope")


def test_oracle_policy_cannot_run_live() -> None:
    from predictor.service.scoring import Scorer

    with pytest.raises(ValueError, match=r"cannot score pending jobs.*run_time"):
        Scorer("sjf").check_policy()
    for name in ("fifo", "qssf", "las", "multifactor"):
        Scorer(name).check_policy()
