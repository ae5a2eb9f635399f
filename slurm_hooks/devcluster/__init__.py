"""The dockerized Slurm dev cluster: images, configuration, lifecycle, workload replay."""

from .cluster import DevCluster, UpReport, service_available
from .config import ClusterSpec, NodeSpec
from .docker import DockerError, DockerUnavailable

__all__ = [
    "ClusterSpec",
    "DevCluster",
    "DockerError",
    "DockerUnavailable",
    "NodeSpec",
    "UpReport",
    "service_available",
]
