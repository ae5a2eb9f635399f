"""Solo job profiles: validation naming the field, sacct usage parsing, the fallback store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from predictor.interference.profiles import (
    JobProfile,
    ProfileError,
    ProfileStore,
    parse_profile,
    profile_from_usage,
    usage_from_sacct,
)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"gpu_util": 120}, "gpu_util"),
        ({"gpu_util": 50, "gmem_mb": -1}, "gmem_mb"),
        ({"gpu_util": 50, "gmem_util": 101}, "gmem_util"),
        ({"gpu_util": 50, "batch_size": 0}, "batch_size"),
        ({"gpu_util": float("nan")}, "gpu_util"),
        ({"gmem_mb": 10}, "gpu_util"),
        ({"gpu_util": 50, "colour": "red"}, "colour"),
        ({"gpu_util": -1}, "gpu_util"),
        ({"gpu_util": float("inf")}, "gpu_util"),
        ({"gpu_util": "high"}, "gpu_util"),
        ({"gpu_util": 50, "cpu_util": 150}, "cpu_util"),
        ({"gpu_util": 50, "mem_mb": -5}, "mem_mb"),
        ({"gpu_util": 50, "batch_size": -32}, "batch_size"),
    ],
)
def test_impossible_profiles_are_rejected_naming_the_field(data: dict, field: str) -> None:
    with pytest.raises(ProfileError, match=rf"\b{field}\b"):
        parse_profile(data)


def test_valid_profile_round_trips() -> None:
    p = parse_profile({"gpu_util": 55.5, "gmem_mb": 4096, "amp": True, "batch_size": 64})
    assert p == JobProfile(gpu_util=55.5, gmem_mb=4096, amp=True, batch_size=64)


def test_profile_from_usage_divides_multi_gpu_sums() -> None:
    ave = "cpu=00:10:00,energy=0,fs/disk=1,gres/gpumem=6000M,gres/gpuutil=170,mem=1G"
    peak = "cpu=00:10:00,gres/gpumem=8000M,gres/gpuutil=200,mem=2G"
    p = profile_from_usage(ave, peak, gpus=2, cpus=4, elapsed_s=600)
    assert p is not None
    assert p.gpu_util == pytest.approx(85)
    assert p.gmem_mb == pytest.approx(4000)
    assert p.mem_mb == pytest.approx(2048)
    assert p.cpu_util == pytest.approx(25)


def test_profile_from_usage_without_gpu_accounting_is_none() -> None:
    assert profile_from_usage("cpu=00:01:00,mem=1G") is None


@pytest.mark.parametrize(
    ("ave", "gpus"),
    [("gres/gpuutil=-5", 1), ("gres/gpuutil=inf", 1), ("gres/gpuutil=250", 2),
     ("gres/gpuutil=180", 1)],
)  # fmt: skip
def test_impossible_accounting_utilisation_is_rejected_naming_it(ave: str, gpus: int) -> None:
    with pytest.raises(ProfileError, match="gres/gpuutil"):
        profile_from_usage(ave, gpus=gpus)


def test_accounting_rounding_over_100_is_capped() -> None:
    p = profile_from_usage("gres/gpuutil=200.8", gpus=2)
    assert p is not None and p.gpu_util == 100


def _usage(job_id: str, user: str, name: str, account: str, util: int) -> dict:
    return {"job_id": job_id, "user": user, "job_name": name, "account": account,
            "tres_usage_ave": f"gres/gpuutil={util},gres/gpumem=1000M", "tres_usage_max": "",
            "gpus": 1}  # fmt: skip


def test_store_learns_idempotently_and_falls_back(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "profiles.db")
    rows = pd.DataFrame([_usage("1", "ann", "train", "lab", 80), _usage("2", "ann", "train",
                         "lab", 60), _usage("3", "bob", "eval", "lab", 20)])  # fmt: skip
    assert store.add_completed(rows) == 3
    assert store.add_completed(rows) == 0  # replay: nothing double-counted
    corrupt = pd.DataFrame([_usage("4", "ann", "train", "lab", 400)])
    assert store.add_completed(corrupt) == 0  # skipped (logged), the profile is unchanged
    hit = store.lookup("ann", "train", "lab")
    assert (hit.source, hit.samples, hit.profile.gpu_util) == ("user_name", 2, 70)
    assert store.lookup("ann", "other", "lab").source == "user"
    fallback = store.lookup("carol", "x", "lab")
    assert fallback.source == "account"
    assert fallback.profile.gpu_util == pytest.approx(160 / 3)
    unknown = store.lookup("dave", "x", "elsewhere")
    assert (unknown.source, unknown.profile) == ("unknown", None)
    store.close()
    reopened = ProfileStore(tmp_path / "profiles.db")
    assert reopened.lookup("ann", "train").profile.gpu_util == 70


def test_posted_profile_wins_and_is_validated() -> None:
    store = ProfileStore()
    store.add_completed(pd.DataFrame([_usage("1", "ann", "train", "lab", 80)]))
    store.post("ann", "train", {"gpu_util": 30, "amp": True})
    hit = store.lookup("ann", "train", "lab")
    assert (hit.source, hit.profile.gpu_util, hit.profile.amp) == ("explicit", 30, True)
    with pytest.raises(ProfileError, match="gpu_util"):
        store.post("ann", "train", {"gpu_util": 300})
    with pytest.raises(ValueError, match="lacks column"):
        store.add_completed(pd.DataFrame({"user": ["x"]}))


def test_usage_from_sacct_takes_steps_usage_and_parent_identity(tmp_path: Path) -> None:
    path = tmp_path / "sacct.txt"
    path.write_text(
        "JobIDRaw|User|Account|JobName|AllocTRES|NCPUS|ElapsedRaw|TRESUsageInAve|TRESUsageInMax\n"
        "10|ann|lab|train|cpu=4,gres/gpu=2|4|600||\n"
        "10.batch|||batch|||600|cpu=00:00:01,gres/gpuutil=0|gres/gpuutil=0\n"
        "10.0|||python|||600|cpu=00:20:00,gres/gpuutil=150,gres/gpumem=9000M|gres/gpumem=9000M\n"
        "11|bob|lab|idle|cpu=1|1|60||\n"
    )
    usage = usage_from_sacct(path)
    assert usage["job_id"].tolist() == ["10"]
    store = ProfileStore()
    assert store.add_completed(usage) == 1
    p = store.lookup("ann", "train").profile
    assert p.gpu_util == pytest.approx(75)
    assert p.gmem_mb == pytest.approx(4500)
    assert p.cpu_util == pytest.approx(50)
