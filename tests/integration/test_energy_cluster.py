"""``foresight energy run --apply`` live on the dev cluster: only safe nodes go down, via Slurm.

Each run is ``foresight energy run --once --dev-cluster --planner P --exclude X``
(in-process, so the ``scontrol update`` can be watched): the plan asks to power
down every node but the busy one; only the idle nodes outside the excluded set
may go. A crash is simulated just after, then just before, the ``scontrol
update`` (a ``BaseException`` the controller does not catch, as a kill would
leave it); the next run (a restart: ``recover()`` first) must neither repeat
nor lose the action.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import poll_for, wait_until
from typer.testing import CliRunner

from energy.journal import Journal
from energy.planner import PlannerConfig
from energy.slurm_view import SlurmClusterView
from predictor.cli import app
from slurm_hooks.devcluster import DevCluster
from slurm_hooks.devcluster.cluster import CTLD_LOG
from slurm_hooks.slurm_adapter import SlurmAdapter

POWER_LOG = "/var/log/slurm/foresight-power.log"
#: Keep only busy demand on (no buffer, no dwell) so the plan asks for every idle node;
#: boot 60 s = the dev cluster's ResumeTimeout; no rescaling to a recorded history.
CONFIG = PlannerConfig(
    keep_buffer=0,
    wake_buffer=0,
    wake_margin=1,
    min_on_dwell_s=0,
    min_on_dwell_node_s=0,
    max_down_per_step=100,
    lookback_steps=1,
    peak_window=0,
    boot_s=60,
    reference_swing=0,
)


class Crash(BaseException):
    """Stands in for the controller being killed (not caught by its ``except Exception``)."""


class PowerSpy:
    """Wraps ``SlurmClusterView.power``: checks the intent is journaled first, counts the
    real calls, and can crash just before or just after the ``scontrol update``."""

    def __init__(self, journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journal, self.crash = journal, None
        self.calls: list[tuple[str, str]] = []
        real = SlurmClusterView.power

        def power(view: SlurmClusterView, names: list[str], action: str) -> None:
            applied = [
                r["node"]
                for r in Journal(journal).records()
                if r["kind"] == "intent" and not r["dry_run"]
            ]
            for name in names:  # one applied intent per call, written before it
                done = sum(name in called.split(",") for called, _ in self.calls)
                assert applied.count(name) > done, f"{name} powered {action} before journaling"
            if self.crash == "before":
                raise Crash
            real(view, names, action)
            self.calls.append((",".join(names), action))
            if self.crash == "after":
                raise Crash

        monkeypatch.setattr(SlurmClusterView, "power", power)


def suspends(slurm: SlurmAdapter, name: str) -> int:
    """How many times the cluster's SuspendProgram has powered ``name`` down so far."""
    return slurm.run(["cat", POWER_LOG], check=False).count(f"suspend {name} via docker")


def powered_down(slurm: SlurmAdapter, name: str) -> bool:
    return "POWERED_DOWN" in slurm.nodes([name])[0].flags


@pytest.fixture
def scene(
    cluster: DevCluster, slurm: SlurmAdapter, sbatch: Callable[..., str]
) -> Iterator[dict[str, Any]]:
    """A job on the first CPU node; all GPU nodes but the last excluded; two safe targets."""
    busy = cluster.spec.cpu_nodes[0]
    targets = [cluster.spec.gpu_nodes[-1], cluster.spec.cpu_nodes[-1]]  # in the order chosen
    excluded = set(cluster.spec.gpu_nodes[:-1])
    wait_until(lambda: all(n.available for n in slurm.nodes()), 90, "every node idle/usable")
    job = sbatch("-J", "it-energy", "-w", busy, "--wrap", "sleep 300")
    wait_until(
        lambda: slurm.nodes([busy])[0].state in ("ALLOCATED", "MIXED"),
        60,
        f"job {job} running on {busy}",
    )
    yield {"busy": busy, "targets": targets, "excluded": excluded}
    gone = [n.name for n in slurm.nodes(targets) if not n.available]
    if gone:  # give the nodes back, powered up
        wait_until(lambda: all(powered_down(slurm, n) for n in gone), 60, f"{gone} POWERED_DOWN")
        give_back(cluster, slurm, gone)


def give_back(cluster: DevCluster, slurm: SlurmAdapter, names: list[str]) -> None:
    """Power ``names`` up and wait until they are idle; the next tests need them.

    A node that does not come back within Slurm's ResumeTimeout is marked DOWN:
    it is then resumed once more (so later tests still have it), and the test
    fails either way, with the nodes' states and the power and slurmctld logs.
    """
    slurm.power_node(names, "up")
    if poll_for(lambda: all(n.available for n in slurm.nodes(names)), 90):
        return
    why = _diagnosis(cluster, slurm, names)
    stuck = [n.name for n in slurm.nodes(names) if not n.available]
    cluster.exec(["scontrol", "update", f"nodename={','.join(stuck)}", "state=resume"])
    slurm.power_node(stuck, "up")
    back = poll_for(lambda: all(n.available for n in slurm.nodes(names)), 90)
    pytest.fail(f"{names} not idle 90 s after power_up ({'recovered' if back else 'still not'} "
                f"after a resume):\n{why}")  # fmt: skip


def _diagnosis(cluster: DevCluster, slurm: SlurmAdapter, names: list[str]) -> str:
    nodes = "\n".join(f"  {n.name}: {n.state_text} reason={n.reason!r}" for n in slurm.nodes(names))
    pattern = "|".join(names)
    logs = subprocess.run(
        ["docker", "exec", cluster.name("slurmctld"), "sh", "-c",
         f"tail -n 8 {POWER_LOG}; grep -E '{pattern}|auth|regist' {CTLD_LOG} | tail -n 12"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    states, containers = cluster.containers(), ""
    for name in map(cluster.name, names):  # the node container's log: slurmd's stderr
        tail = subprocess.run(["docker", "logs", "--tail", "15", name], capture_output=True,
                              text=True, check=False)  # fmt: skip
        containers += f"container {name} ({states.get(name)}):\n{tail.stdout}{tail.stderr}"
    return f"{nodes}\n{logs.stdout}{logs.stderr}{containers}"


def test_apply_powers_down_only_safe_nodes_and_a_crash_is_neither_repeated_nor_lost(
    slurm: SlurmAdapter,
    scene: dict[str, Any],
    tmp_path: Path,
    foresight_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy, (first, second), excluded = scene["busy"], scene["targets"], scene["excluded"]
    settings = tmp_path / "planner.json"
    settings.write_text(json.dumps(asdict(CONFIG)))
    journal = Journal(foresight_home / "energy" / "journal.jsonl")
    spy = PowerSpy(journal.path, monkeypatch)
    before = {n: suspends(slurm, n) for n in (first, second)}

    def run(*extra: str) -> dict[str, Any]:
        argv = ["energy", "run", "--once", "--dev-cluster", "--planner", str(settings)]
        out = CliRunner().invoke(
            app, [*argv, "--exclude", ",".join(sorted(excluded)), *extra], catch_exceptions=False
        )
        assert out.exit_code == 0, out.output
        return json.loads(out.stdout.strip().splitlines()[-1])

    # 0. dry-run (the default): the plan asks to power down 5 nodes; only the two idle,
    #    non-excluded ones are chosen, and nothing is done.
    plan = run()
    assert plan["status"] == "planned" and plan["problems"] == []  # power saving configured
    assert plan["power_down"] == [first, second] and "power down 5" in plan["reason"]
    assert busy not in plan["power_down"] and set(plan["refused"]) >= excluded
    assert spy.calls == [] and journal.in_doubt() == []
    # the new controller's demand history was seeded from the cluster's sacct
    (seeded,) = [r for r in journal.records() if r["kind"] == "history"]
    assert seeded["detail"].startswith("seeded ") and "from accounting" in seeded["detail"]

    # 1. --apply, killed right AFTER `scontrol update` for the first node.
    spy.crash = "after"
    with pytest.raises(Crash):
        run("--apply")
    (doubt,) = journal.in_doubt()
    assert (doubt["action"], doubt["node"]) == ("power_down", first)
    assert spy.calls == [(first, "down")]

    # 2. restart: the action in doubt is confirmed, not repeated; the step goes on with
    #    the second node and is killed right BEFORE its `scontrol update`.
    spy.crash = "before"
    with pytest.raises(Crash):
        run("--apply")
    assert {r["id"]: r["detail"] for r in journal.records() if r["kind"] == "done"} == {
        doubt["id"]: "confirmed after restart"
    }
    (doubt,) = journal.in_doubt()
    assert doubt["node"] == second and spy.calls == [(first, "down")]

    # 3. restart: the journaled action that never ran is finished, exactly once; then
    #    nothing is left that may go.
    spy.crash = None
    report = run("--apply")
    assert report["power_down"] == [] and journal.in_doubt() == []
    assert spy.calls == [(first, "down"), (second, "down")]
    done = {r["id"]: r["detail"] for r in journal.records() if r["kind"] == "done"}
    assert done[doubt["id"]] == "finished after restart"
    wait_until(
        lambda: all(powered_down(slurm, n) for n in (first, second)),
        60,
        f"{first} and {second} POWERED_DOWN",
    )
    assert {n: suspends(slurm, n) for n in (first, second)} == {n: k + 1 for n, k in before.items()}
    nodes = {n.name: n for n in slurm.nodes()}
    assert nodes[busy].state in ("ALLOCATED", "MIXED") and not nodes[busy].powered_down
    assert not any(nodes[n].powered_down for n in excluded)
