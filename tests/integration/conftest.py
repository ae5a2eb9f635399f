"""The dockerized Slurm cluster for integration tests: up once per session, or reused.

``FORESIGHT_SLURM`` (or ``--slurm`` when ``tests/integration`` is named on the
command line) picks the version: ``22.05`` (default), ``24.11``, or ``both`` to
run every cluster test on each. On a machine without Docker the session
runs ``scripts/install-docker.sh``; the tests skip, with its exact reason, only
if Docker truly cannot run. A cluster this session started is taken down at
the end (set ``FORESIGHT_KEEP_CLUSTER=1`` to keep it) unless another test
session is still using it; one that was already running is reused and left
running. The Foresight service container is built
and started only with ``FORESIGHT_CLUSTER_SERVICE=1`` (it costs a ``pip install``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slurm_hooks.devcluster import ClusterSpec, DevCluster, DockerError, DockerUnavailable
from slurm_hooks.devcluster.docker import ensure_engine
from slurm_hooks.slurm_adapter import SlurmAdapter

VERSIONS = ("22.05", "24.11")
USERS_LOCK = Path("/tmp/foresight-devcluster.users")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--slurm`` (when this folder is named on the command line, e.g. ``pytest tests/integration
    --slurm 24.11``; from the root use ``FORESIGHT_SLURM``)."""
    parser.addoption(
        "--slurm",
        choices=[*VERSIONS, "both"],
        default=None,
        help="Slurm version of the dev cluster (default: $FORESIGHT_SLURM or 22.05)",
    )


def _versions(config: pytest.Config) -> list[str]:
    wanted = config.getoption("--slurm", default=None) or os.environ.get("FORESIGHT_SLURM", "22.05")
    if wanted == "both":
        return list(VERSIONS)
    if wanted not in VERSIONS:
        raise pytest.UsageError(f"FORESIGHT_SLURM={wanted!r}: expected 22.05, 24.11 or both")
    return [wanted]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every cluster test on each selected Slurm version."""
    if "cluster" in metafunc.fixturenames:
        metafunc.parametrize("cluster", _versions(metafunc.config), indirect=True, scope="session")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder drives the cluster: mark it ``cluster``."""
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[DevCluster]:
    """A running dev cluster of the requested Slurm version."""
    try:
        ensure_engine()
    except DockerUnavailable as exc:
        pytest.skip(f"Docker cannot run on this machine: {exc}")
    dev = DevCluster(ClusterSpec(version=request.param))
    reused = dev.running_version() == request.param and dev.is_up()
    try:
        # Idempotent: a no-op when the running cluster is current. The service container is
        # built only on request (FORESIGHT_CLUSTER_SERVICE=1): tests that need a service can
        # run one on the host's 127.0.0.1, which slurmctld reaches over the host network.
        dev.up(with_service=os.environ.get("FORESIGHT_CLUSTER_SERVICE") == "1", timeout=900)
    except (DockerError, TimeoutError) as exc:
        pytest.fail(f"foresight cluster up --slurm {request.param} failed: {exc}")
    # Every session using the cluster holds a shared lock; the one that started it takes it
    # down at the end only if it can upgrade to an exclusive lock (nobody else is using it).
    with USERS_LOCK.open("a") as users:
        fcntl.flock(users, fcntl.LOCK_SH)
        yield dev
        if not reused and os.environ.get("FORESIGHT_KEEP_CLUSTER") != "1":
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another test session is still using it: leave it running
            dev.down()


@pytest.fixture
def slurm(cluster: DevCluster) -> SlurmAdapter:
    """The adapter, running commands on the cluster's login node."""
    return cluster.adapter()


@pytest.fixture
def sbatch(slurm: SlurmAdapter) -> Iterator[Callable[..., str]]:
    """``submit(*ARGS)`` runs ``sbatch --parsable ARGS``; jobs left queued are cancelled after."""
    submitted: list[str] = []

    def submit(*args: str) -> str:
        job_id = slurm.run(["sbatch", "--parsable", "-o", "/dev/null", *args]).strip()
        submitted.append(job_id.split(";")[0])
        return submitted[-1]

    yield submit
    if submitted:
        slurm.run(["scancel", *submitted], check=False)
