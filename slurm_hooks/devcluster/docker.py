"""A thin layer over the ``docker`` CLI (subprocess), with errors that say what is wrong."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from predictor.state import PROJECT_ROOT

INSTALL_SCRIPT = PROJECT_ROOT / "scripts" / "install-docker.sh"


class DockerError(RuntimeError):
    """A docker command failed; the message carries the command and its stderr."""


class DockerUnavailable(DockerError):
    """Docker cannot run on this machine; the message says exactly what is missing."""


def docker(
    *args: str,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS`` and return the completed process (raise on failure if ``check``)."""
    exe = shutil.which("docker")
    if exe is None:
        raise DockerUnavailable("the docker CLI is not installed (run scripts/install-docker.sh)")
    try:
        proc = subprocess.run(
            [exe, *args],
            text=True,
            input=stdin,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"docker {' '.join(args[:3])} ... timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or "").strip()
        raise DockerError(f"`docker {' '.join(args)}` failed (rc={proc.returncode}): {err}")
    return proc


def engine_answers() -> bool:
    """True when a docker engine answers ``docker info``."""
    if shutil.which("docker") is None:
        return False
    return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=30).returncode == 0


def ensure_engine(install: bool = True) -> None:
    """Make sure a docker engine answers, running ``scripts/install-docker.sh`` if needed.

    Raises :class:`DockerUnavailable` with the script's own explanation when it cannot.
    """
    if engine_answers() and shutil.which("debootstrap"):
        return
    if not install:
        raise DockerUnavailable("no docker engine answers (run scripts/install-docker.sh)")
    proc = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], text=True, capture_output=True, check=False, timeout=900
    )
    if proc.returncode != 0 or not engine_answers():
        err = proc.stderr.splitlines()
        lines = [ln for ln in err if "MISSING" in ln] or err
        reason = lines[-1] if lines else f"{INSTALL_SCRIPT} exited {proc.returncode}"
        raise DockerUnavailable(reason.removeprefix("install-docker: "))


def image_exists(tag: str) -> bool:
    """True when the image ``tag`` is present locally."""
    return docker("image", "inspect", tag, check=False).returncode == 0


def container_states(label: str) -> dict[str, str]:
    """``{container name: state}`` for every container carrying ``label`` (``key=value``)."""
    out = docker(
        "ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}\t{{.State}}"
    ).stdout
    states: dict[str, str] = {}
    for line in out.splitlines():
        name, _, state = line.partition("\t")
        if name:
            states[name] = state
    return states


def container_label(name: str, key: str) -> str | None:
    """The value of label ``key`` on container ``name`` (None when absent or no container)."""
    proc = docker("inspect", "--format", f'{{{{index .Config.Labels "{key}"}}}}', name, check=False)
    if proc.returncode != 0:
        return None
    value = proc.stdout.strip()
    return value if value and value != "<no value>" else None


def exec_args(
    container: str, argv: Sequence[str], *, user: str | None = None, interactive: bool = False
) -> list[str]:
    """The ``docker exec`` argument list running ``argv`` in ``container``."""
    args = ["exec"]
    if interactive:
        args.append("-i")
    if user:
        args += ["--user", user]
    return [*args, container, *argv]


def docker_cli_path() -> Path:
    """The host's docker CLI, to mount into slurmctld for the power programs (static binary)."""
    exe = shutil.which("docker")
    if exe is None:
        raise DockerUnavailable("the docker CLI is not installed")
    return Path(exe).resolve()
