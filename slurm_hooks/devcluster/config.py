"""The dev cluster's shape (nodes, ports) and the Slurm files rendered from ``docker/templates``."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from predictor.state import PROJECT_ROOT, state_dir

TEMPLATES = PROJECT_ROOT / "docker" / "templates"
HOOKS_DIR = PROJECT_ROOT / "slurm_hooks"
CLUSTER_NAME = "foresight"
DEFAULT_VERSION = "22.05"


@dataclass(frozen=True)
class NodeSpec:
    """One compute node: its own container and slurmd on 127.0.0.1:``port``."""

    name: str
    port: int
    gpus: int
    cpus: int = 4
    memory_mb: int = 4000

    @property
    def features(self) -> str:
        return "gpu" if self.gpus else "cpu"


def default_nodes(n_gpu: int = 4, n_cpu: int = 2, first_port: int = 17001) -> tuple[NodeSpec, ...]:
    """``n1..n{n_gpu}`` with two fake GPUs each, then CPU-only nodes."""
    total = n_gpu + n_cpu
    return tuple(
        NodeSpec(f"n{i}", first_port + i - 1, 2 if i <= n_gpu else 0) for i in range(1, total + 1)
    )


def _port(env: str, default: int) -> int:
    return int(os.environ.get(env, default))


@dataclass(frozen=True)
class ClusterSpec:
    """Everything that decides the rendered configuration of one dev cluster."""

    version: str = DEFAULT_VERSION
    nodes: tuple[NodeSpec, ...] = field(default_factory=default_nodes)
    db_port: int = field(default_factory=lambda: _port("FORESIGHT_DB_PORT", 16306))
    dbd_port: int = field(default_factory=lambda: _port("FORESIGHT_DBD_PORT", 16819))
    ctld_port: int = field(default_factory=lambda: _port("FORESIGHT_CTLD_PORT", 16817))
    service_port: int = field(default_factory=lambda: _port("FORESIGHT_SERVICE_PORT", 8765))
    srun_ports: str = "17100-17199"
    #: Global SuspendTime (enables power saving); partitions set INFINITE (see docs/cluster.md).
    suspend_time: int = 3600
    suspend_timeout: int = 10
    resume_timeout: int = 60
    slurmd_timeout: int = 15
    hostname: str = field(default_factory=lambda: socket.gethostname().split(".")[0])

    @property
    def gpu_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if n.gpus]

    @property
    def cpu_nodes(self) -> list[str]:
        return [n.name for n in self.nodes if not n.gpus]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def partitions(self) -> dict[str, list[str]]:
        """Partition name -> nodes: ``batch`` (all, default), ``gpu`` and ``cpu``."""
        parts = {"batch": self.node_names, "gpu": self.gpu_nodes, "cpu": self.cpu_nodes}
        return {k: v for k, v in parts.items() if v}


def cluster_dir() -> Path:
    """Where rendered configuration and cluster state (replay users) live on the host."""
    path = state_dir() / "cluster"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _db_password(root: Path) -> str:
    path = root / "db-password"
    if not path.exists():
        path.write_text(secrets.token_hex(12) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _node_lines(spec: ClusterSpec) -> str:
    lines = []
    for n in spec.nodes:
        gres = f" Gres=gpu:{n.gpus}" if n.gpus else ""
        lines.append(
            f"NodeName={n.name} NodeAddr=127.0.0.1 Port={n.port} CPUs={n.cpus} "
            f"RealMemory={n.memory_mb}{gres} Features={n.features} State=UNKNOWN"
        )
    return "\n".join(lines)


def _partition_lines(spec: ClusterSpec) -> str:
    lines = []
    for name, nodes in spec.partitions().items():
        default = "YES" if name == "batch" else "NO"
        lines.append(
            f"PartitionName={name} Nodes={','.join(nodes)} Default={default} MaxTime=INFINITE "
            "State=UP SuspendTime=INFINITE"
        )
    return "\n".join(lines)


def render(spec: ClusterSpec, conf_dir: Path | None = None) -> tuple[Path, str]:
    """Write every configuration file into ``conf_dir``; return it and a hash of its content."""
    root = cluster_dir()
    conf_dir = conf_dir or root / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    power = "/opt/foresight/slurm_hooks/power"
    values = {
        "cluster": CLUSTER_NAME,
        "hostname": spec.hostname,
        "ctld_port": spec.ctld_port,
        "dbd_port": spec.dbd_port,
        "db_port": spec.db_port,
        "db_password": _db_password(root),
        "first_node_port": spec.nodes[0].port,
        "srun_ports": spec.srun_ports,
        "slurmd_timeout": spec.slurmd_timeout,
        "suspend_program": f"{power}/suspend",
        "resume_program": f"{power}/resume",
        "suspend_time": spec.suspend_time,
        "suspend_timeout": spec.suspend_timeout,
        "resume_timeout": spec.resume_timeout,
        "node_lines": _node_lines(spec),
        "partition_lines": _partition_lines(spec),
        "gres_lines": "\n".join(
            f"NodeName={n.name} Name=gpu File=/dev/nvidia[0-{n.gpus - 1}]"
            for n in spec.nodes
            if n.gpus
        ),
    }
    digest = hashlib.sha256(spec.version.encode())
    for tmpl in sorted(TEMPLATES.glob("*.tmpl")):
        text = Template(tmpl.read_text()).substitute(values)
        (conf_dir / tmpl.name.removesuffix(".tmpl")).write_text(text)
        digest.update(text.encode())
    passthrough = TEMPLATES / "job_submit.passthrough.lua"
    (conf_dir / passthrough.name).write_text(passthrough.read_text())
    power_conf = (
        "# Test-cluster power backend: stop/start the node's container (Docker API socket).\n"
        'backend = "docker"\n'
        f'container_prefix = "{CLUSTER_NAME}-"\n'
        'docker_socket = "/var/run/docker.sock"\n'
        "# Start again a node Slurm has not seen register 20 s after power-on (ResumeTimeout 60).\n"
        "confirm_s = 20\n"
    )
    (conf_dir / "foresight-power.toml").write_text(power_conf)
    digest.update(power_conf.encode())
    # A hook appearing (or going) changes what slurmctld must load, and slurmctld
    # mounts the hooks of ONE tree: a cluster made from another checkout is not current.
    digest.update(str((HOOKS_DIR / "job_submit.lua").exists()).encode())
    digest.update(str(HOOKS_DIR.resolve()).encode())
    digest.update(str(conf_dir).encode())
    return conf_dir, digest.hexdigest()[:12]
