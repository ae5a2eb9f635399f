"""Small helpers shared by the cluster tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def poll_for(predicate: Callable[[], T], timeout: float, interval: float = 1.0) -> T | None:
    """Call ``predicate`` until it returns neither None nor False; that value, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(interval)
    return None


def wait_until(predicate: Callable[[], T], timeout: float, what: str, poll: float = 1.0) -> T:
    """Poll ``predicate`` until it returns neither None nor False; fail naming ``what``."""
    value = poll_for(predicate, timeout, poll)
    if value is None:
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
    return value
