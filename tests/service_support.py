"""Shared fixtures of the service tests: a state directory with a real trained model.

The model is trained once per session, with the duration engineer's API, on a
slice of the KTH SP2 log (small and quick); tests copy the directory
(:func:`make_home`) before changing anything in it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TOKEN = "service-test-token-0123456789abcdef"
LOG = "hpc_swf/KTH-SP2-1996-2.1-cln.swf.gz"
SLICE = 3000
JOBS_FILE = "sample_jobs.json"


def _descriptors(jobs: Any) -> list[dict[str, Any]]:
    out = []
    for row in jobs.itertuples(index=False):
        body: dict[str, Any] = {
            "job_id": f"kth-{row.job_id}",
            "user": row.user or "nobody",
            "account": row.account,
            "partition": row.partition,
            "name": row.job_name,
            "time_limit": float(row.time_limit) if row.time_limit > 0 else 3600.0,
            "cpus": int(row.cpus) if np.isfinite(row.cpus) and row.cpus >= 1 else 1,
            "submit_time": float(row.submit_time),
        }
        out.append(body)
    return out


_TRAINED: dict[str, Path] = {}


def trained_home_dir(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``FORESIGHT_HOME`` with an active model, its history and an admin token (once per run).

    Each test module wraps this in its own session fixture named ``trained_home``.
    """
    if "home" in _TRAINED:
        return _TRAINED["home"]
    from predictor.features import causal_features
    from predictor.history import HistoryStore
    from predictor.logs import read_log
    from predictor.models.duration import DurationConfig, DurationModel
    from predictor.registry import ModelRegistry

    home = tmp_path_factory.mktemp("service") / "home"
    jobs = read_log(data / LOG).jobs.head(SLICE)
    jobs = jobs[jobs["run_time"] > 0].sort_values("submit_time").reset_index(drop=True)
    train, pending = jobs.iloc[:-200], jobs.iloc[-200:]
    features = causal_features(train)
    config = DurationConfig(n_estimators=30)  # small and quick; the API is what is tested
    model = DurationModel(config).fit(features.X, train["run_time"].to_numpy())
    ModelRegistry(home / "models").save(model, training_log=["service test fixture"])
    store = HistoryStore(home / "history.sqlite")
    store.add_completed(train)
    store.close()
    (home / "token").write_text(TOKEN + "\n")
    (home / JOBS_FILE).write_text(json.dumps(_descriptors(pending)))
    _TRAINED["home"] = home
    return home


def make_home(source: Path, target: Path) -> Path:
    """A private copy of a prepared state directory."""
    shutil.copytree(source, target)
    return target


def sample_jobs(home: Path, n: int) -> list[dict[str, Any]]:
    """``n`` job descriptors of real jobs that are not in the model's training slice."""
    return json.loads((home / JOBS_FILE).read_text())[:n]


def _version_dir(registry: Any, version: str) -> Path:
    root = Path(registry.root)
    matches = [p for p in root.rglob(version) if p.is_dir()]
    if len(matches) != 1:
        raise AssertionError(f"cannot find the folder of version {version} under {root}")
    return matches[0]


def duplicate_version(registry: Any, version: str, suffix: str = "copy") -> str:
    """A second valid version: a copy of ``version``'s artifact folder under a new name."""
    source = _version_dir(registry, version)
    new = f"{version}-{suffix}"
    shutil.copytree(source, source.with_name(new))
    meta = source.with_name(new) / "metadata.json"
    if meta.exists():
        doc = json.loads(meta.read_text())
        if doc.get("version") == version:
            doc["version"] = new
            meta.write_text(json.dumps(doc))
    return new


def corrupt_version(registry: Any, version: str) -> str:
    """A version whose model file(s) are garbage (metadata intact)."""
    new = duplicate_version(registry, version, "corrupt")
    for path in _version_dir(registry, new).iterdir():
        if path.is_file() and path.name != "metadata.json":
            path.write_bytes(b"\x00not a model\xff" * 8)
    return new


class FakeSlurm:
    """An in-memory stand-in for :class:`SlurmAdapter` (``queue``, ``nodes``, ``run``).

    ``jobs``: running jobs as dicts with ``job_id``, ``user``, ``account``,
    ``job_name``, ``node_list``; ``nodes``: :class:`slurm_hooks.slurm_adapter.NodeInfo`;
    ``hostnames``: what ``scontrol show hostnames EXPR`` answers. Counts reads.
    """

    def __init__(self, jobs: list[dict[str, Any]], nodes: list[Any],
                 hostnames: dict[str, list[str]] | None = None) -> None:  # fmt: skip
        self.jobs, self._nodes, self.hostnames = jobs, nodes, hostnames or {}
        self.queue_calls = self.run_calls = 0
        self.fail: Exception | None = None

    def queue(self, *, states: Any = ("PENDING", "RUNNING"), **_: Any) -> Any:
        import pandas as pd

        self.queue_calls += 1
        if self.fail is not None:
            raise self.fail
        frame = pd.DataFrame(
            [{**job, "state": job.get("state", "RUNNING")} for job in self.jobs],
            columns=["job_id", "user", "account", "job_name", "node_list", "state"],
        )
        return frame[frame["state"].isin(set(states))].reset_index(drop=True)

    def nodes(self) -> list[Any]:
        return list(self._nodes)

    def run(self, argv: list[str], *, check: bool = True) -> str:
        self.run_calls += 1
        if list(argv[:3]) == ["scontrol", "show", "hostnames"]:
            return " ".join(self.hostnames[argv[3]])
        raise AssertionError(f"unexpected Slurm command {argv}")


def node(name: str, partitions: tuple[str, ...] = ("gpu",), state: str = "MIXED",
         flags: tuple[str, ...] = ()) -> Any:  # fmt: skip
    """A Slurm node record as the adapter returns it."""
    from slurm_hooks.slurm_adapter import NodeInfo

    return NodeInfo(name=name, state=state, flags=flags, cpus=64, alloc_cpus=8, gpus=8,
                    features=(), partitions=partitions)  # fmt: skip


class FakeView:
    """An in-memory :class:`energy.controller.ClusterView`."""

    def __init__(self, settings: dict[str, str], fail: Exception | None = None) -> None:
        self.settings, self.fail, self.powered = settings, fail, []

    def nodes(self) -> list[Any]:
        if self.fail is not None:
            raise self.fail
        from energy.planner import NodeInfo

        return [NodeInfo("g1", "on", busy=True), NodeInfo("g2", "on"), NodeInfo("g3", "on")]

    def pending_nodes(self) -> int:
        return 0

    def power_settings(self) -> dict[str, str]:
        return self.settings

    def power(self, names: list[str], action: str) -> None:
        self.powered.append((names, action))


POWER_OK = {"SuspendProgram": "/usr/sbin/foresight-suspend", "ResumeProgram": "/usr/sbin/r",
            "ResumeTimeout": "600"}  # fmt: skip
