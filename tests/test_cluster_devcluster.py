"""The dev cluster without Docker: rendered Slurm files, image tags, replay mapping."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from predictor.logs.schema import to_canonical
from slurm_hooks.devcluster import ClusterSpec, DevCluster, images
from slurm_hooks.devcluster.config import render
from slurm_hooks.devcluster.replay import plan, uid_for, unix_name


def conf(text: str) -> dict[str, list[str]]:
    """``key -> [values]`` of a slurm.conf-style file (comments dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_rendered_slurm_conf_has_what_the_cluster_needs(foresight_home: Path) -> None:
    spec = ClusterSpec(version="24.11")
    conf_dir, digest = render(spec)
    slurm = conf((conf_dir / "slurm.conf").read_text())
    assert slurm["ProctrackType"] == ["proctrack/linuxproc"]
    assert slurm["TaskPlugin"] == ["task/none"]
    assert slurm["PriorityType"] == ["priority/multifactor"]
    assert slurm["AccountingStoreFlags"] == ["job_comment"]
    assert slurm["JobSubmitPlugins"] == ["lua"]
    assert "NoInAddrAny" in slurm["CommunicationParameters"][0]
    assert slurm["SlurmctldHost"][0].endswith("(127.0.0.1)")
    assert int(slurm["SuspendTime"][0]) > 0  # power saving on globally...
    partitions = slurm["PartitionName"]
    assert all("SuspendTime=INFINITE" in p for p in partitions)  # ...idle timer off per partition
    nodes = slurm["NodeName"]
    assert len(nodes) == 6 and all("NodeAddr=127.0.0.1" in n for n in nodes)
    assert [n.split()[0] for n in nodes if "Gres=gpu:2" in n] == ["n1", "n2", "n3", "n4"]
    gres = (conf_dir / "gres.conf").read_text()
    assert "NodeName=n1 Name=gpu File=/dev/nvidia[0-1]" in gres and "n5" not in gres
    dbd = conf((conf_dir / "slurmdbd.conf").read_text())
    assert dbd["DbdAddr"] == ["127.0.0.1"] and dbd["StorageHost"] == ["127.0.0.1"]
    assert render(spec)[1] == digest  # stable
    assert render(ClusterSpec(version="22.05"))[1] != digest


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'23\.02'.*22\.05, 24\.11"):
        DevCluster(ClusterSpec(version="23.02"))


def test_image_tags_carry_a_hash_of_their_inputs() -> None:
    assert images.base_tag("bookworm").startswith("foresight-base:bookworm-")
    a, b = images.slurm_tag("22.05"), images.slurm_tag("24.11")
    assert a.startswith("foresight-slurm:22.05-") and b.startswith("foresight-slurm:24.11-")
    assert a != b and images.slurm_tag("22.05") == a
    assert images.service_tag("22.05").startswith("foresight-service:22.05-")
    assert any(r.startswith("pandas") for r in images.requirements())


def test_names_and_uids_are_valid_and_stable() -> None:
    assert unix_name("123", "user") == "u123"
    assert unix_name("Alice Smith", "user") == "alice_smith"
    assert unix_name("", "acct") == "acct"
    long = unix_name("x" * 80, "user")
    assert len(long) <= 30 and long == unix_name("x" * 80, "user")
    assert 20000 <= uid_for("alice") < 60000 and uid_for("alice") == uid_for("alice")


def test_plan_maps_log_jobs_onto_the_cluster() -> None:
    jobs = to_canonical(
        pd.DataFrame(
            {
                "job_id": ["1", "2", "3"],
                "user": ["42", "bob", ""],
                "account": ["physics", "", ""],
                "partition": ["q1", "q2", ""],
                "cpus": [64, 2, math.nan],
                "gpus": [0, 5, 0],
                "nodes": [math.nan, 1, math.nan],
                "time_limit": [7200, 600, math.nan],
                "submit_time": [1000, 1060, 1120],
                "start_time": [1010, 1100, 1130],
                "end_time": [4610, 1400, 1131],
            }
        )
    )
    cluster = DevCluster(ClusterSpec())
    out = plan(jobs, cluster, speedup=60, max_sleep=30, log_name="x.swf")
    big, gpu, tiny = out
    assert [j.offset_s for j in out] == [0, 1, 2]
    assert big.user == "u42" and big.account == "physics" and big.partition == "batch"
    assert big.nodes == 6 and big.cpus == 24  # 64 CPUs: as many as the cluster has
    assert big.sleep_s == 30 and big.time_limit_min == 2  # 3600 s / 60 capped; 7200 s / 60
    assert gpu.partition == "gpu" and gpu.nodes == 3 and gpu.gpus_per_node == 2
    assert gpu.account == "bob"  # no account: the user's name
    assert "--gres=gpu:2" in gpu.sbatch_args()
    assert tiny.sleep_s == 1 and tiny.time_limit_min == 1 and tiny.user == "user"
    assert "job=1 user=42 partition=q1" in big.comment
    with pytest.raises(ValueError, match="speedup"):
        plan(jobs, cluster, speedup=0, max_sleep=30, log_name="x")


def test_up_says_exactly_what_is_missing_when_docker_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slurm_hooks.devcluster import DockerUnavailable
    from slurm_hooks.devcluster import docker as dk

    script = tmp_path / "install-docker.sh"
    script.write_text(
        'echo "install-docker: MISSING: dockerd binary (Debian package docker.io)" >&2\nexit 1\n'
    )
    monkeypatch.setattr(dk, "INSTALL_SCRIPT", script)
    monkeypatch.setattr(dk, "engine_answers", lambda: False)
    with pytest.raises(DockerUnavailable, match=r"^MISSING: dockerd binary \(Debian package"):
        dk.ensure_engine()
    with pytest.raises(DockerUnavailable, match="no docker engine answers"):
        dk.ensure_engine(install=False)
