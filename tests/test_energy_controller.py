"""The live controller against an in-memory cluster: safety, journal, recovery."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from energy.controller import Controller, check_power_settings, current_plan
from energy.journal import Journal
from energy.planner import NodeInfo, PlannerConfig

GOOD = {"SuspendProgram": "/etc/slurm/suspend.sh", "ResumeProgram": "/etc/slurm/resume.sh",
        "ResumeTimeout": "600 sec"}
CFG = PlannerConfig(wake_buffer=1, wake_margin=2, keep_buffer=1, min_on_dwell_s=0,
                    max_down_per_step=100, lookback_steps=1)


class FakeView:
    """An in-memory cluster; ``power`` checks the journal already holds the intent."""

    def __init__(self, nodes: list[NodeInfo], journal: Path | None = None) -> None:
        self.by_name = {n.name: n for n in nodes}
        self.pending = 0
        self.settings = dict(GOOD)
        self.calls: list[tuple[str, str]] = []
        self.journal = journal
        self.broken: str | None = None
        self.fail_power = False

    def nodes(self) -> list[NodeInfo]:
        if self.broken:
            raise RuntimeError(self.broken)
        return list(self.by_name.values())

    def pending_nodes(self) -> int:
        return self.pending

    def power_settings(self) -> dict[str, str]:
        return self.settings

    def power(self, names: list[str], action: str) -> None:
        for name in names:
            if self.journal is not None:
                intents = [r for r in Journal(self.journal).records()
                           if r.get("kind") == "intent" and r["node"] == name]
                assert intents, f"{name} powered {action} before its journal entry"
            if self.fail_power:
                raise RuntimeError("scontrol failed")
            self.calls.append((name, action))
            power = "off" if action == "down" else "powering_up"
            self.by_name[name] = replace(self.by_name[name], power=power)


def cluster(idle: int = 6, busy: int = 2) -> list[NodeInfo]:
    return [NodeInfo(f"busy{i}", "on", busy=True) for i in range(busy)] + [
        NodeInfo(f"idle{i}", "on") for i in range(idle)
    ]


def make(tmp_path: Path, nodes: list[NodeInfo], apply: bool) -> tuple[Controller, FakeView]:
    view = FakeView(nodes, tmp_path / "energy" / "journal.jsonl")
    return Controller(view, config=CFG, apply=apply, home=tmp_path / "energy"), view


def test_dry_run_journals_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(), apply=False)
    report = ctl.step(now=1_000.0)
    assert report.status == "planned" and len(report.power_down) == 5  # keep 2 busy + 1
    assert view.calls == []
    intents = [r for r in ctl.journal.records() if r["kind"] == "intent"]
    assert len(intents) == 5 and all(r["dry_run"] for r in intents)


def test_apply_journals_before_acting_and_records_outcomes(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(), apply=True)
    report = ctl.step(now=1_000.0)
    assert report.status == "acted" and len(view.calls) == 5
    kinds = [r["kind"] for r in ctl.journal.records()]
    assert kinds.count("intent") == 5 and kinds.count("done") == 5
    assert ctl.journal.in_doubt() == []


def test_never_powers_down_busy_reserved_or_excluded_nodes(tmp_path: Path) -> None:
    nodes = [
        *cluster(idle=0, busy=2),
        NodeInfo("res", "on", reserved=True), NodeInfo("exc", "on", excluded=True),
        NodeInfo("drained", "on", available=False),
    ]
    ctl, view = make(tmp_path, nodes, apply=True)
    report = ctl.step(now=1_000.0)
    assert view.calls == [] and report.power_down == []
    assert set(report.refused) == {"res", "exc", "drained"}


def test_unreadable_slurm_means_do_nothing_and_say_why(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(), apply=True)
    view.broken = "slurmctld not responding"
    report = ctl.step(now=1_000.0)
    assert report.status == "skipped" and "slurmctld not responding" in report.reason
    assert view.calls == []


def test_missing_power_saving_config_is_named_and_blocks_apply(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(), apply=True)
    view.settings = {"SuspendProgram": "(null)", "ResumeTimeout": "60"}
    report = ctl.step(now=1_000.0)
    assert report.status == "held" and view.calls == []
    assert "SuspendProgram is not set" in report.reason and "ResumeProgram" in report.reason
    assert any("ResumeTimeout=60s" in p for p in check_power_settings(view.settings, CFG))


def test_wakes_nodes_when_pending_demand_arrives(tmp_path: Path) -> None:
    nodes = [*cluster(idle=0, busy=2), *(NodeInfo(f"off{i}", "off") for i in range(5))]
    ctl, view = make(tmp_path, nodes, apply=True)
    view.pending = 2
    report = ctl.step(now=1_000.0)
    assert len(report.power_up) == 5 and {a for _, a in view.calls} == {"up"}


def test_releases_the_unused_wake_up_batch_once_demand_stops_rising(tmp_path: Path) -> None:
    cfg = replace(CFG, min_on_dwell_s=86400, wake_margin=6, release_quiet_steps=2,
                  release_buffer=1, min_on_dwell_node_s=0)
    nodes = [*cluster(idle=0, busy=2), *(NodeInfo(f"off{i}", "off") for i in range(8))]
    view = FakeView(nodes)
    ctl = Controller(view, config=cfg, apply=True, home=tmp_path / "energy")
    view.pending = 1  # demand 3 > 2 powered: wake 3 + 1 + 6 - 2 = 8
    assert len(ctl.step(now=0.0).power_up) == 8
    assert ctl.state.wake_peak == 3
    view.pending = 0
    for name, node in view.by_name.items():  # the boots complete
        view.by_name[name] = replace(node, power="on")
    held = ctl.step(now=600.0)  # one step after the peak: still within the dwell
    assert held.power_down == [] and "dwell" in held.reason
    released = ctl.step(now=1200.0)  # no new high for 2 steps: down to peak 3 + 1
    assert len(released.power_down) == 10 - 4 and "release" in released.reason


def test_crash_after_intent_is_recovered_once(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(idle=2, busy=1), apply=True)
    journal = ctl.journal
    # crash 1: intent written, action never taken; crash 2: action taken, outcome lost
    lost = journal.intent("power_down", "idle0", "test", dry_run=False)
    taken = journal.intent("power_down", "idle1", "test", dry_run=False)
    view.by_name["idle1"] = replace(view.by_name["idle1"], power="off")
    with journal.path.open("ab") as fh:  # a torn last line, as a crash mid-write leaves
        fh.write(b'{"id": "x", "kind": "do')
    restarted = Controller(view, config=CFG, apply=True, home=tmp_path / "energy")
    outcomes = {r["id"]: r for r in restarted.recover()}
    assert outcomes[lost["id"]]["kind"] == "done" and view.calls == [("idle0", "down")]
    assert outcomes[taken["id"]]["detail"] == "confirmed after restart"
    assert restarted.recover() == [] and view.calls == [("idle0", "down")]  # no repeat


def test_recovery_abandons_an_action_no_longer_safe(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(idle=1, busy=0), apply=True)
    rec = ctl.journal.intent("power_down", "idle0", "test", dry_run=False)
    view.by_name["idle0"] = replace(view.by_name["idle0"], busy=True)
    out = ctl.recover()
    assert out[0]["id"] == rec["id"] and out[0]["kind"] == "abandoned" and view.calls == []


def test_failed_power_call_is_journaled_as_failed(tmp_path: Path) -> None:
    ctl, view = make(tmp_path, cluster(), apply=True)
    view.fail_power = True
    ctl.step(now=1_000.0)
    assert {r["kind"] for r in ctl.journal.records()} >= {"intent", "failed"}


def test_current_plan_is_json_and_takes_no_action(tmp_path: Path) -> None:
    view = FakeView(cluster())
    plan = current_plan(view, config=CFG, home=tmp_path / "energy")
    json.dumps(plan)
    assert plan["status"] == "planned" and len(plan["power_down"]) == 5 and view.calls == []
    assert not (tmp_path / "energy" / "journal.jsonl").exists()


@pytest.mark.parametrize("status", ["skipped"])
def test_current_plan_without_slurm_says_why(
    tmp_path: Path, status: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = FakeView(cluster())
    view.broken = "no slurm here"
    assert current_plan(view, home=tmp_path)["status"] == status


def test_cli_run_once_is_dry_run_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, foresight_home: Path
) -> None:
    from typer.testing import CliRunner

    import energy.slurm_view
    from predictor.cli import app

    fake = FakeView(cluster())
    monkeypatch.setattr(energy.slurm_view, "SlurmClusterView",
                        lambda adapter=None, exclude=None: fake)
    settings = tmp_path / "planner.json"
    settings.write_text(json.dumps({k: getattr(CFG, k) for k in (
        "wake_buffer", "wake_margin", "keep_buffer", "min_on_dwell_s", "lookback_steps")}))
    out = CliRunner().invoke(app, ["energy", "run", "--once", "--planner", str(settings)])
    assert out.exit_code == 0, out.output
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"] == "planned" and fake.calls == []
    journal = Journal(foresight_home / "energy" / "journal.jsonl").records()
    assert journal and all(r["dry_run"] for r in journal if r["kind"] == "intent")
    fake.broken = "cannot connect"
    out = CliRunner().invoke(app, ["energy", "run", "--once", "--apply", "--planner",
                                   str(settings)])
    assert out.exit_code == 2 and "cannot connect" in out.stdout


class HistoryView(FakeView):
    """A FakeView whose accounting says 3 nodes were in demand at every past step."""

    def __init__(self, nodes: list[NodeInfo], broken: str | None = None) -> None:
        super().__init__(nodes)
        self.asked: list[tuple[float, float, float]] = []
        self.history_broken = broken

    def demand_history(self, since: float, until: float, step_s: float) -> pd.Series:
        self.asked.append((since, until, step_s))
        if self.history_broken:
            raise RuntimeError(self.history_broken)
        index = pd.to_datetime(np.arange(since // step_s, until // step_s + 1) * step_s, unit="s")
        return pd.Series(3, index=index)


def test_a_new_controller_seeds_its_history_from_accounting_once(tmp_path: Path) -> None:
    view = HistoryView(cluster())
    ctl = Controller(view, config=CFG, home=tmp_path / "energy", history_steps=288)
    live = pd.Timestamp(86_400 * 10 - 1200, unit="s").isoformat()
    ctl.state.history[live] = 7  # a step the controller saw itself keeps its value
    now = 86_400.0 * 10
    ctl.step(now=now)
    assert view.asked == [(now - 288 * 600, now, 600)]
    history = ctl.state.history
    assert history[live] == 7 and len(history) == 288  # 287 seeded + live + now, capped at 288
    assert history[pd.Timestamp(now - 600, unit="s").isoformat()] == 3
    assert history[pd.Timestamp(now, unit="s").isoformat()] == 2  # the live step: 2 busy
    notes = [r for r in ctl.journal.records() if r["kind"] == "history"]
    assert notes[0]["detail"] == "seeded 287 steps of demand history from accounting"
    ctl.step(now=now + 600)
    assert len(view.asked) == 1  # once per process


def test_history_is_not_seeded_when_a_day_is_recorded_or_accounting_fails(tmp_path: Path) -> None:
    view = HistoryView(cluster())
    ctl = Controller(view, config=CFG, home=tmp_path / "a")
    for i in range(144):
        ctl.state.history[pd.Timestamp(600.0 * i, unit="s").isoformat()] = 1
    ctl.step(now=600.0 * 144)
    assert view.asked == []
    broken = HistoryView(cluster(), broken="sacct: Connection refused")
    ctl = Controller(broken, config=CFG, home=tmp_path / "b")
    report = ctl.step(now=1_000.0)
    assert report.status == "planned"  # the step goes on from live steps only
    (note,) = [r for r in ctl.journal.records() if r["kind"] == "history"]
    assert note["detail"] == "history not seeded from accounting: sacct: Connection refused"
