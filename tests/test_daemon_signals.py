"""``systemctl stop`` (SIGTERM) ends each daemon loop at once, with exit status 0.

Each command runs for real; where this host has no Slurm commands (or no
service) its cycle fails and is logged, which is all the test needs: the
signal arrives while the loop sleeps out its 600-second interval.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from slurm_hooks.stopping import Stop

FORESIGHT = str(Path(sys.executable).with_name("foresight"))
NO_SERVICE = "http://127.0.0.1:9"  # discard port: nothing answers
LOOPS = {
    "priority-daemon": (["priority-daemon", "--interval", "600", "--service", NO_SERVICE],
                        "foresight.priority_daemon", "stopping (SIGTERM)"),
    "completion-feed": (["completion-feed", "--interval", "600", "--service", NO_SERVICE],
                        "foresight.completion_feed", "stopping (SIGTERM)"),
    "energy-run": (["energy", "run", "--interval", "600"], '"status": ', "controller stopped"),
}  # fmt: skip


def _lines(stream, out: queue.Queue) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(LOOPS))
def test_sigterm_ends_the_loop_at_once_with_status_0(name, tmp_path):
    args, first_cycle, stopped = LOOPS[name]
    proc = subprocess.Popen(
        [FORESIGHT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "FORESIGHT_HOME": str(tmp_path)},
    )  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(proc.stdout, lines), daemon=True).start()
    seen = []
    try:
        while not any(first_cycle in line for line in seen):  # the loop is in its sleep
            line = lines.get(timeout=60)
            assert line is not None, f"{name} ended before its first cycle:\n{''.join(seen)}"
            seen.append(line)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name} still runs 30 s after SIGTERM:\n{''.join(seen)}")
        took = time.monotonic() - sent
    finally:
        proc.kill()
    while (line := lines.get(timeout=10)) is not None:
        seen.append(line)
    output = "".join(seen)
    assert status == 0, output
    assert stopped in output
    assert took < 20, f"{name} took {took:.1f} s to stop"


@pytest.mark.timeout(120)
def test_a_signal_at_any_moment_of_the_wait_ends_it_and_the_old_handler_comes_back():
    """The handler takes no lock, so a signal landing anywhere in wait() cannot deadlock it."""
    before = signal.getsignal(signal.SIGTERM)
    for i in range(20):
        with Stop().on_signals() as stop:
            kill = threading.Timer(i * 0.001, os.kill, (os.getpid(), signal.SIGTERM))
            kill.start()
            started = time.monotonic()
            assert stop.wait(60) is True
            assert time.monotonic() - started < 5
            kill.join()
        assert signal.getsignal(signal.SIGTERM) is before
