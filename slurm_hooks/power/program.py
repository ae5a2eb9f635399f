"""Power nodes off and on for Slurm's power saving (SuspendProgram / ResumeProgram).

Standard library only: it runs inside slurmctld's host, usually without the
Foresight virtualenv. Configuration is a TOML file (``$FORESIGHT_POWER_CONFIG``
or ``/etc/slurm/foresight-power.toml``) whose ``backend`` selects how:

``docker`` (the dev cluster)
    stop / restart the node's container through the Docker API socket
    (``container_prefix`` + node name). Restarting runs ``slurmd -b``, so the
    node registers with a boot time newer than the power-up request, which is
    what Slurm waits for.
``ipmi`` (real sites)
    ``ipmitool -I lanplus -H <bmc> -U <user> -f <password_file> chassis power
    off|on``; ``bmc`` is a template such as ``"{node}-ipmi"``.
``command`` (real sites)
    a site command run once per node, e.g.
    ``command = ["/usr/local/sbin/node-power", "{action}", "{node}"]`` with
    ``{action}`` ``off`` or ``on``.

With ``confirm_s = N`` a resume checks, N seconds after powering on, which
nodes Slurm still shows powering up (they have not registered) and powers
those on once more. Set it below ``ResumeTimeout`` and above a normal boot;
it is off (0) unless configured. The dev cluster sets 20 s.

Slurm starts these programs with SIGTERM blocked and a PATH without
``/usr/sbin``; :func:`main` resets both, then detaches (double fork, new
session) so slurmctld is not kept waiting, and logs one line per node.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("/etc/slurm/foresight-power.toml")
DEFAULT_LOG = Path("/var/log/slurm/foresight-power.log")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
ACTIONS = {"suspend": "off", "resume": "on"}


class PowerError(RuntimeError):
    """A node could not be powered off or on; the message names the node and why."""


def reset_process_state() -> None:
    """Undo what slurmctld leaves behind: blocked/ignored SIGTERM and a short PATH."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    os.environ["PATH"] = SAFE_PATH + ":" + os.environ.get("PATH", "")


def detach(log_path: Path) -> bool:
    """Double-fork into a new session with stdio on ``log_path``; True in the child."""
    if os.fork() > 0:
        return False
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    try:
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        log_fd = os.open(os.devnull, os.O_WRONLY)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # slurmctld may have started us with fds 0-2 closed, leaving sys.stdout None.
    sys.stdout = sys.stderr = os.fdopen(1, "w", buffering=1, closefd=False)
    return True


def expand_hostlist(expr: str, run: Callable[..., Any] = subprocess.run) -> list[str]:
    """Node names in a Slurm hostlist (``n[1-3],gpu7``), via ``scontrol show hostnames``."""
    proc = run(["scontrol", "show", "hostnames", expr], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise PowerError(f"scontrol show hostnames {expr!r} failed: {proc.stderr.strip()}")
    return proc.stdout.split()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def docker_power(node: str, on: bool, cfg: dict[str, Any]) -> None:
    """Stop (off) or restart (on) the node's container through the Docker API."""
    container = f"{cfg.get('container_prefix', '')}{node}"
    verb = "restart?t=2" if on else "stop?t=5"
    conn = _UnixHTTPConnection(cfg.get("docker_socket", "/var/run/docker.sock"), timeout=60)
    try:
        conn.request("POST", f"/containers/{container}/{verb}")
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace").strip()
    except OSError as exc:
        raise PowerError(f"{node}: docker API unreachable: {exc}") from exc
    finally:
        conn.close()
    if resp.status not in (204, 304):  # 304: already stopped
        raise PowerError(f"{node}: docker {verb.split('?')[0]} {container}: {resp.status} {body}")


def ipmi_power(node: str, on: bool, cfg: dict[str, Any]) -> None:
    """``ipmitool chassis power on|off`` against the node's BMC."""
    argv = [
        cfg.get("ipmitool", "ipmitool"),
        "-I",
        cfg.get("interface", "lanplus"),
        "-H",
        str(cfg.get("bmc", "{node}-ipmi")).format(node=node),
        "-U",
        str(cfg.get("user", "ADMIN")),
        "-f",
        str(cfg.get("password_file", "/etc/slurm/ipmi.pass")),
        "chassis",
        "power",
        "on" if on else str(cfg.get("off_verb", "soft")),
    ]
    _run_checked(node, argv)


def command_power(node: str, on: bool, cfg: dict[str, Any]) -> None:
    """Run the configured site command for this node."""
    template = cfg.get("command")
    if not isinstance(template, list) or not template:
        raise PowerError('backend \'command\' needs command = ["prog", "{action}", "{node}"]')
    action = "on" if on else "off"
    _run_checked(node, [str(a).format(node=node, action=action) for a in template])


def _run_checked(node: str, argv: Sequence[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        raise PowerError(f"{node}: {' '.join(argv)} exited {proc.returncode}: {err}")


BACKENDS: dict[str, Callable[[str, bool, dict[str, Any]], None]] = {
    "docker": docker_power,
    "ipmi": ipmi_power,
    "command": command_power,
}


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Read the TOML configuration; PowerError naming the file and the bad setting."""
    path = path or Path(os.environ.get("FORESIGHT_POWER_CONFIG", DEFAULT_CONFIG))
    try:
        cfg = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PowerError(f"cannot read power configuration {path}: {exc}") from exc
    backend = cfg.get("backend")
    if backend not in BACKENDS:
        raise PowerError(f"{path}: backend = {backend!r}; expected one of {', '.join(BACKENDS)}")
    confirm = cfg.get("confirm_s", 0)
    if isinstance(confirm, bool) or not isinstance(confirm, int | float) or confirm < 0:
        raise PowerError(f"{path}: confirm_s = {confirm!r}; expected seconds >= 0 (0: off)")
    return cfg


def _log(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}", flush=True)


def _apply(action: str, node: str, cfg: dict[str, Any], note: str = "") -> bool:
    """Power one node off or on with the configured backend; log a line; True if it worked."""
    t0 = time.monotonic()
    try:
        BACKENDS[cfg["backend"]](node, ACTIONS[action] == "on", cfg)
        status = "ok"
    except (PowerError, subprocess.TimeoutExpired, OSError) as exc:
        status = f"FAILED: {exc}"
    _log(f"{action} {node} via {cfg['backend']}{note} ({time.monotonic() - t0:.1f}s): {status}")
    return status == "ok"


def powering_up(nodes: Sequence[str], run: Callable[..., Any] = subprocess.run) -> list[str]:
    """Those of ``nodes`` that Slurm still shows powering up (not registered since power-on)."""
    try:
        proc = run(["scontrol", "show", "node", "-o", ",".join(nodes)],
                   capture_output=True, text=True, check=False, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PowerError(f"scontrol show node failed: {exc}") from exc
    if proc.returncode != 0:
        raise PowerError(f"scontrol show node failed: {proc.stderr.strip()}")
    waiting = set()
    for line in proc.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if {"POWER_UP", "POWERING_UP"} & set(fields.get("State", "").split("+")):
            waiting.add(fields.get("NodeName"))
    return [n for n in nodes if n in waiting]


def confirm_resumed(
    nodes: Sequence[str],
    cfg: dict[str, Any],
    *,
    run: Callable[..., Any] = subprocess.run,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Power on once more each node still powering up ``confirm_s`` s after power-on; failures."""
    wait = float(cfg.get("confirm_s", 0))
    if wait <= 0 or not nodes:
        return 0
    deadline = time.monotonic() + wait
    pending = list(nodes)
    while pending and time.monotonic() < deadline:
        sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        try:
            pending = powering_up(pending, run)
        except PowerError as exc:
            _log(f"resume: cannot confirm: {exc}")
            return 1
    note = f" again (not registered {wait:g} s after power-on)"
    return sum(not _apply("resume", node, cfg, note) for node in pending)


def power(action: str, nodes: Sequence[str], cfg: dict[str, Any]) -> int:
    """Apply ``action`` (suspend/resume) to every node; log a line each; count failures."""
    failures = sum(not _apply(action, node, cfg) for node in nodes)
    if action == "resume":
        failures += confirm_resumed(nodes, cfg)
    return failures


def main(action: str, argv: Sequence[str], *, foreground: bool | None = None) -> int:
    """Entry point of ``suspend`` / ``resume``: ``argv[0]`` is Slurm's hostlist expression."""
    if action not in ACTIONS or len(argv) != 1:
        print(f"usage: {action} HOSTLIST", file=sys.stderr)
        return 2
    reset_process_state()
    if foreground is None:
        foreground = os.environ.get("FORESIGHT_POWER_FOREGROUND") == "1"
    if not foreground and not detach(Path(os.environ.get("FORESIGHT_POWER_LOG", DEFAULT_LOG))):
        return 0  # the parent returns at once; the detached child does the work
    try:
        cfg = load_config()
        failures = power(action, expand_hostlist(argv[0]), cfg)
    except PowerError as exc:
        _log(f"{action} {argv[0]}: FAILED: {exc}")
        failures = 1
    if not foreground:
        os._exit(1 if failures else 0)
    return 1 if failures else 0
