"""How the service reaches Slurm (``slurm_runner``): a :class:`SlurmAdapter`, or None."""

from __future__ import annotations

from typing import TYPE_CHECKING

from predictor.config import ServiceConfig

if TYPE_CHECKING:
    from slurm_hooks.slurm_adapter import SlurmAdapter


def slurm_adapter(config: ServiceConfig) -> SlurmAdapter | None:
    """``local`` -> commands on this host; ``docker:<name>`` -> ``docker exec <name>``;
    ``none`` -> None (no hints, and ``/v1/energy/plan`` answers 503)."""
    spec = config.slurm_runner
    if spec == "none":
        return None
    from slurm_hooks.slurm_adapter import SlurmAdapter, docker_runner, local_runner

    if spec == "local":
        return SlurmAdapter(local_runner(config.slurm_timeout_s))
    return SlurmAdapter(docker_runner(spec.split(":", 1)[1], config.slurm_timeout_s))
