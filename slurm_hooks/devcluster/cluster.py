"""Bring the dockerized Slurm cluster up and down: one container per role, host networking only.

Containers (all ``--network host --init``, daemons bound to 127.0.0.1):
``foresight-mariadb``, ``foresight-slurmdbd``, ``foresight-slurmctld`` (also the
login node), ``foresight-n1..n6`` (one slurmd each) and, optionally,
``foresight-service`` (``foresight serve`` from this tree's ``pip install .``).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import shlex
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from slurm_hooks.slurm_adapter import SlurmAdapter, SlurmCommandError, docker_runner

from . import images
from .config import CLUSTER_NAME, HOOKS_DIR, ClusterSpec, cluster_dir, render
from .docker import DockerError, container_label, container_states, docker, ensure_engine

LABEL = f"foresight.cluster={CLUSTER_NAME}"
CTLD = f"{CLUSTER_NAME}-slurmctld"
SERVICE = f"{CLUSTER_NAME}-service"
CTLD_LOG = "/var/log/slurm/slurmctld.log"  # SlurmctldLogFile in slurm.conf.tmpl
Progress = Callable[[str], None]
#: Container names are global to the docker engine: one lock for every session that drives them.
LOCK_PATH = Path("/tmp/foresight-devcluster.lock")


@contextlib.contextmanager
def _cluster_lock() -> Iterator[None]:
    """Serialise up/down between concurrent sessions (e.g. two pytest runs)."""
    with LOCK_PATH.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def service_available() -> bool:
    """True once this tree has a Foresight service (``predictor.service``) to run."""
    return importlib.util.find_spec("predictor.service") is not None


@dataclass
class UpReport:
    """What ``up`` did and how long it took."""

    version: str
    built: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    recreated: bool = False
    service: bool = False
    seconds: float = 0.0


class DevCluster:
    """The dev cluster for one Slurm version (``22.05`` or ``24.11``)."""

    def __init__(self, spec: ClusterSpec | None = None, progress: Progress | None = None) -> None:
        self.spec = spec or ClusterSpec()
        images.suite_for(self.spec.version)  # validates the version early
        self.progress: Progress = progress or (lambda msg: None)

    # ------------------------------------------------------------------ names
    def name(self, role: str) -> str:
        """Container name of a role (``slurmctld``, ``n3``, ...)."""
        return f"{CLUSTER_NAME}-{role}"

    @property
    def roles(self) -> list[str]:
        return ["mariadb", "slurmdbd", "slurmctld", *self.spec.node_names]

    def adapter(self) -> SlurmAdapter:
        """A :class:`SlurmAdapter` whose commands run on the login node (slurmctld container)."""
        return SlurmAdapter(runner=docker_runner(CTLD))

    # ----------------------------------------------------------------- status
    def containers(self) -> dict[str, str]:
        """``{container: state}`` of every container of the cluster (any version)."""
        return container_states(LABEL)

    def running_version(self) -> str | None:
        """The Slurm version of the running cluster, if any."""
        return container_label(CTLD, "foresight.slurm")

    def is_up(self) -> bool:
        """True when every container runs, Slurm has every node idle, and sacct answers."""
        states = self.containers()
        if any(states.get(self.name(r)) != "running" for r in self.roles):
            return False
        try:
            return self._nodes_ready() and self._sacct_answers()
        except (SlurmCommandError, DockerError):
            return False

    # --------------------------------------------------------------------- up
    def up(self, *, with_service: bool | None = None, timeout: float = 300) -> UpReport:
        """Build what is missing, (re)create what changed, wait until usable. Idempotent."""
        with _cluster_lock():
            return self._up(with_service, timeout)

    def _up(self, with_service: bool | None, timeout: float) -> UpReport:
        t0 = time.monotonic()
        report = UpReport(self.spec.version)
        ensure_engine()
        if with_service is None and os.environ.get("FORESIGHT_CLUSTER_SERVICE") in ("0", "1"):
            with_service = os.environ["FORESIGHT_CLUSTER_SERVICE"] == "1"
        want_service = service_available() if with_service is None else with_service
        tags = {"slurm": images.slurm_tag(self.spec.version)}
        if want_service:
            tags["service"] = images.service_tag(self.spec.version)
        if not images.image_exists(tags["slurm"]):
            tags["slurm"] = images.build_slurm(self.spec.version, self.progress)
            report.built.append(tags["slurm"])
        if want_service and not images.image_exists(tags["service"]):
            try:  # the source may change during a long build: use the tag that was built
                tags["service"] = images.build_service(self.spec.version, self.progress)
                report.built.append(tags["service"])
            except DockerError as exc:
                if with_service:  # asked for explicitly: fail
                    raise
                self.progress(f"service image not built, continuing without it: {exc}"[:400])
                want_service = False
        conf_dir, conf_hash = render(self.spec)
        config_id = f"{tags['slurm']}|{conf_hash}"
        current = container_label(CTLD, "foresight.config")
        if current is not None and current != config_id:
            self.progress(f"configuration changed ({current} -> {config_id}): recreating")
            self._remove_all()
            report.recreated = True
        mounts = self._mounts(conf_dir)
        states = self.containers()
        for role in self.roles:
            if self._ensure(role, tags["slurm"], config_id, mounts, states):
                report.started.append(role)
        if want_service and self._ensure("service", tags["service"], config_id, mounts, states):
            report.started.append("service")
        self.wait_ready(timeout=max(30.0, timeout - (time.monotonic() - t0)))
        self._ensure_accounting()
        if want_service:
            report.service = self.wait_service()
        report.seconds = time.monotonic() - t0
        return report

    def _mounts(self, conf_dir: Path) -> dict[str, list[str]]:
        base = [
            "-v",
            f"{conf_dir}:/etc/foresight/conf:ro",
            "-v",
            f"{cluster_dir() / 'state'}:/etc/foresight/state",
        ]
        ctld = [
            *base,
            "-v",
            f"{HOOKS_DIR}:/opt/foresight/slurm_hooks:ro",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ]
        return {"base": base, "slurmctld": ctld}

    def _env(self, role: str) -> list[str]:
        s = self.spec
        env = {
            "FORESIGHT_DB_PORT": s.db_port,
            "FORESIGHT_DBD_PORT": s.dbd_port,
            "FORESIGHT_CTLD_PORT": s.ctld_port,
        }
        node = next((n for n in s.nodes if n.name == role), None)
        if node is not None:
            env |= {"FORESIGHT_NODE": node.name, "FORESIGHT_GPUS": node.gpus}
        if role == "service":
            default = f"foresight serve --host 127.0.0.1 --port {s.service_port}"
            env["FORESIGHT_SERVICE_CMD"] = os.environ.get("FORESIGHT_SERVICE_CMD", default)
            env["FORESIGHT_HOME"] = "/var/lib/foresight"
        out: list[str] = []
        for key, value in env.items():
            out += ["-e", f"{key}={value}"]
        return out

    def _ensure(
        self,
        role: str,
        image: str,
        config_id: str,
        mounts: dict[str, list[str]],
        states: dict[str, str],
    ) -> bool:
        """Create or start one role's container; True if it had to."""
        name = self.name(role)
        state = states.get(name)
        if state is not None and container_label(name, "foresight.image") != image:
            self.progress(f"{name} runs an older image: recreating it")
            docker("rm", "-f", name)
            state = None
        if state == "running":
            return False
        if state is not None:
            if role in self.spec.node_names and self._powered_down(role):
                return False  # Slurm powered it off on purpose; power_up brings it back
            self.progress(f"starting {name}")
            docker("start", name)
            return True
        entry = "slurmd" if role in self.spec.node_names else role
        self.progress(f"creating {name}")
        docker(
            "run",
            "-d",
            "--pull",
            "never",
            "--init",
            "--network",
            "host",
            "--name",
            name,
            "--label",
            LABEL,
            "--label",
            f"foresight.role={role}",
            "--label",
            f"foresight.slurm={self.spec.version}",
            "--label",
            f"foresight.config={config_id}",
            "--label",
            f"foresight.image={image}",
            *self._env(role),
            *mounts.get(role, mounts["base"]),
            image,
            f"foresight-{entry}",
        )
        return True

    def _powered_down(self, node: str) -> bool:
        try:
            return any(n.powered_down for n in self.adapter().nodes([node]))
        except (SlurmCommandError, DockerError):
            return False

    def _nodes_ready(self) -> bool:
        nodes = {n.name: n for n in self.adapter().nodes()}
        return all(name in nodes and nodes[name].available for name in self.spec.node_names)

    def _sacct_answers(self) -> bool:
        try:
            self.adapter().run(["sacct", "-n", "-X", "-S", "now-1minutes", "-E", "now"])
        except SlurmCommandError:
            return False
        return True

    def wait_ready(self, timeout: float = 240) -> None:
        """Wait until every node is idle and sacct answers; power up powered-down nodes."""
        deadline = time.monotonic() + timeout
        last = "slurmctld not answering yet"
        powered_up: set[str] = set()
        self.progress("waiting for every node to be idle and sacct to answer")
        while time.monotonic() < deadline:
            states = self.containers()
            dead = [
                r
                for r in ("mariadb", "slurmdbd", "slurmctld")
                if states.get(self.name(r)) != "running"
            ]
            if dead:
                raise DockerError(
                    f"container {self.name(dead[0])} is {states.get(self.name(dead[0]))}; "
                    f"its last log lines:\n{self._last_words(dead[0])}"
                )
            try:
                adapter = self.adapter()
                nodes = {n.name: n for n in adapter.nodes()}
                off = [
                    n
                    for n in self.spec.node_names
                    if n in nodes and "POWERED_DOWN" in nodes[n].flags and n not in powered_up
                ]
                if off:
                    self.progress(f"powering up {', '.join(off)}")
                    adapter.power_node(off, "up")
                    powered_up.update(off)
                waiting = [
                    f"{name}={nodes[name].state_text if name in nodes else 'missing'}"
                    for name in self.spec.node_names
                    if name not in nodes or not nodes[name].available
                ]
                if not waiting and self._sacct_answers():
                    return
                last = f"nodes not idle: {', '.join(waiting)}" if waiting else "sacct not answering"
            except (SlurmCommandError, DockerError) as exc:
                last = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            time.sleep(1)
        raise TimeoutError(f"cluster not ready after {timeout:.0f}s: {last}")

    def service_url(self, path: str = "/healthz") -> str:
        """URL of the Foresight service (host network, 127.0.0.1)."""
        return f"http://127.0.0.1:{self.spec.service_port}{path}"

    def wait_service(self, timeout: float = 60) -> bool:
        """Wait for the service's ``/healthz``; on failure say why (its log) and return False."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.service_url(), timeout=2) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            if self.containers().get(SERVICE) != "running":
                break
            time.sleep(1)
        logs = docker("logs", "--tail", "8", SERVICE, check=False)
        self.progress(
            f"Foresight service not healthy at {self.service_url()}; last log lines:\n"
            f"{logs.stdout}{logs.stderr}"
        )
        return False

    def _ensure_accounting(self) -> None:
        """Give root an association so jobs are accounted under a known account."""
        adapter = self.adapter()
        adapter.run(
            ["sacctmgr", "-i", "add", "account", "foresight", "Description=dev cluster"],
            check=False,
        )
        adapter.run(["sacctmgr", "-i", "add", "user", "root", "Account=foresight"], check=False)

    # ------------------------------------------------------------------- down
    def down(self) -> list[str]:
        """Remove every container of the cluster (any version); return their names."""
        with _cluster_lock():
            return self._remove_all()

    def _remove_all(self) -> list[str]:
        names = sorted(self.containers())
        if names:
            docker("rm", "-f", "-v", *names)
        return names

    # ------------------------------------------------------- exec, logs, service
    def exec(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        interactive: bool = False,
        tty: bool = False,
    ) -> int:
        """Run ``argv`` on the login node (slurmctld container); return its exit status."""
        args = ["docker", "exec"]
        if interactive:
            args.append("-i")
        if tty:
            args.append("-t")
        if user:
            args += ["--user", user]
        return subprocess.run([*args, CTLD, *argv], check=False).returncode

    def logs(self, role: str = "slurmctld", *, tail: int = 100, follow: bool = False) -> int:
        """Print a role's log and return the exit status.

        slurmctld writes its own log file (``SlurmctldLogFile``, as a site's does);
        the other roles log to the container's output (``docker logs``).
        """
        if role == "slurmctld":
            args = ["docker", "exec", CTLD, "tail", "-n", str(tail), *(["-F"] if follow else []),
                    CTLD_LOG]  # fmt: skip
        else:
            args = ["docker", "logs", "--tail", str(tail), *(["-f"] if follow else []),
                    self.name(role)]  # fmt: skip
        return subprocess.run(args, check=False).returncode

    def _last_words(self, role: str, lines: int = 15) -> str:
        """A stopped container's last output (slurmctld's stderr is a file inside it)."""
        out = docker("logs", "--tail", str(lines), self.name(role), check=False)
        text = out.stdout + out.stderr
        if role == "slurmctld":
            with tempfile.TemporaryDirectory() as tmp:
                docker("cp", f"{CTLD}:{CTLD_LOG}.stderr", tmp, check=False)
                err = Path(tmp, Path(CTLD_LOG).name + ".stderr")
                if err.exists():
                    text += "\n".join(err.read_text(errors="replace").splitlines()[-lines:])
        return text

    def hook_log(self, since: float) -> list[str]:
        """job_submit.lua decision lines (``foresight: ...``) slurmctld logged since ``since``.

        The log's timestamps are the container's local time, UTC.
        """
        out = subprocess.run(["docker", "exec", CTLD, "grep", "-F", "foresight:", CTLD_LOG],
                             capture_output=True, text=True, check=False)  # fmt: skip
        start = datetime.fromtimestamp(int(since) - 1, UTC).strftime("[%Y-%m-%dT%H:%M:%S")
        return [x for x in out.stdout.splitlines() if x[:20] >= start]

    def reload_hook(self) -> None:
        """Make slurmctld load job_submit.lua afresh (a new Lua state: the breaker closed).

        slurmctld reloads the script when its mtime changes; the next submission sees it.
        """
        os.utime(HOOKS_DIR / "job_submit.lua")
        time.sleep(1.1)  # mtimes have one-second resolution

    def stop_service(self) -> None:
        """Stop only the Foresight service container (outage tests)."""
        docker("stop", "-t", "5", SERVICE)

    def start_service(self) -> None:
        """Start the Foresight service container again."""
        docker("start", SERVICE)

    def kill_node(self, node: str) -> None:
        """Kill a node's container abruptly (fault tests)."""
        docker("kill", self.name(node))

    def start_node(self, node: str) -> None:
        """Start a node's container again (its slurmd re-registers)."""
        docker("start", self.name(node))

    def node_running(self, node: str) -> bool:
        """True when the node's container runs."""
        return self.containers().get(self.name(node)) == "running"

    def submit_hint(self) -> str:
        """How to submit a first job."""
        return (
            "Cluster ready. Submit a job with:\n"
            '  foresight cluster exec -- sbatch --wrap "sleep 5"\n'
            '  foresight cluster exec -- sbatch -p gpu --gres=gpu:1 --wrap "nvidia-smi || true"\n'
            "  foresight cluster exec -- squeue\n"
            f"  foresight cluster exec -- sacct -X -S now-1hours -E now\n"
            f"(inside: {shlex.join(['docker', 'exec', '-it', CTLD, 'bash'])})"
        )
