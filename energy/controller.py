"""The live controller: read the cluster, plan, journal, (optionally) power nodes.

It talks to the cluster only through :class:`ClusterView`, so tests drive it
with an in-memory fake and production binds it to Slurm (:mod:`energy.slurm_view`).
One :meth:`Controller.step`:

1. reads nodes, pending demand and the power-saving settings -- if any read
   fails it does nothing and says why;
2. checks that Slurm power saving is configured (what is missing is named; with
   ``apply`` it refuses to act until fixed);
3. records busy demand, forecasts the peak over the horizon, and asks
   :func:`energy.planner.decide` for counts, then picks nodes (never one with a
   job, a reservation, or excluded);
4. journals every action *before* taking it, then takes it (``apply``) and
   journals the outcome. Dry-run (the default) journals the plan only.

State (demand history, last wake-up, idle-since per node) lives in
``$FORESIGHT_HOME/energy/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from energy.journal import Journal
from energy.planner import (
    NodeInfo,
    PlannerConfig,
    can_power_down,
    choose_power_down,
    choose_power_up,
    decide,
    lookback_peak,
)
from predictor.state import atomic_write_json, state_dir

REQUIRED_SETTINGS = ("SuspendProgram", "ResumeProgram")
SEED_BELOW_STEPS = 144  # a day of 10-minute steps
_UNSET = {"", "(null)", "none", "n/a"}


class ClusterView(Protocol):
    """What the controller reads from and does to the cluster."""

    def nodes(self) -> list[NodeInfo]:
        """Every node with its power state, busy/reserved/excluded flags."""
        ...

    def pending_nodes(self) -> int:
        """Nodes requested by pending jobs (demand not yet running)."""
        ...

    def power_settings(self) -> dict[str, str]:
        """Slurm's power-saving settings (``SuspendProgram``, ``ResumeTimeout``, ...)."""
        ...

    def demand_history(self, since: float, until: float, step_s: float) -> pd.Series:
        """Demand (busy + pending nodes) per step from accounting, to seed a new history.

        Optional: a view without it starts with an empty history.
        """
        ...

    def power(self, names: list[str], action: str) -> None:
        """Power the named nodes ``up`` or ``down``."""
        ...


def check_power_settings(settings: dict[str, str], config: PlannerConfig) -> list[str]:
    """What is missing or risky in Slurm's power-saving configuration (empty = fine)."""
    problems = []
    for key in REQUIRED_SETTINGS:
        if str(settings.get(key, "")).strip().lower() in _UNSET:
            problems.append(f"{key} is not set in slurm.conf (power saving is not configured)")
    resume = _seconds(settings.get("ResumeTimeout"))
    if resume is not None and resume < config.boot_s:
        problems.append(
            f"ResumeTimeout={resume}s is shorter than the boot latency {config.boot_s}s: "
            "Slurm would mark booting nodes DOWN"
        )
    return problems


def _seconds(value: str | None) -> int | None:
    if value is None:
        return None
    text = str(value).strip().lower().replace("sec", "").strip()
    try:
        return int(float(text))
    except ValueError:
        return None


@dataclass
class StepReport:
    """What one controller step saw and did."""

    time: float
    status: str  # "acted", "planned" (dry-run), "held", "skipped"
    reason: str
    problems: list[str] = field(default_factory=list)
    busy: int = 0
    pending: int = 0
    powered: int = 0
    capacity: int = 0
    need: int = 0
    keep_on: int = 0
    forecast_peak: float = 0.0
    power_down: list[str] = field(default_factory=list)
    power_up: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ControllerState:
    """What the controller remembers between steps (persisted as JSON)."""

    history: dict[str, int] = field(default_factory=dict)  # step start (ISO) -> max demand
    last_wake: float | None = None
    idle_since: dict[str, float] = field(default_factory=dict)
    powered_at: dict[str, float] = field(default_factory=dict)
    wake_peak: float | None = None  # highest demand since the last wake-up, and when
    wake_peak_at: float | None = None

    @classmethod
    def load(cls, path: Path) -> ControllerState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(**{k: data.get(k, v) for k, v in asdict(cls()).items()})


class Controller:
    """One controller over a :class:`ClusterView`; dry-run unless ``apply``."""

    def __init__(
        self,
        view: ClusterView,
        *,
        config: PlannerConfig | None = None,
        forecaster: Any | None = None,
        peak_forecaster: Any | None = None,
        apply: bool = False,
        home: Path | None = None,
        history_steps: int = 7 * 144,
    ) -> None:
        self.view = view
        self.config = config or PlannerConfig()
        self.forecaster = forecaster
        self.peak_forecaster = peak_forecaster
        self.apply = apply
        self.home = Path(home) if home else state_dir() / "energy"
        self.home.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.home / "journal.jsonl")
        self.state_path = self.home / "controller_state.json"
        self.state = ControllerState.load(self.state_path)
        self.history_steps = history_steps
        self._seeded = False

    # ------------------------------------------------------------------ recovery
    def recover(self) -> list[dict[str, Any]]:
        """Resolve intents left in doubt by a crash: confirm, finish once, or abandon."""
        doubtful = self.journal.in_doubt()
        if not doubtful:
            return []
        try:
            nodes = {n.name: n for n in self.view.nodes()}
        except Exception as exc:  # cannot resolve now; leave them in doubt
            return [{"id": r["id"], "kind": "unresolved", "detail": f"cannot read Slurm: {exc}"}
                    for r in doubtful]
        now = time.time()
        out = []
        for rec in doubtful:
            node = nodes.get(rec["node"])
            want = {"power_down": ("off", "powering_down"), "power_up": ("on", "powering_up")}
            if node is None:
                out.append(self.journal.outcome(rec["id"], "abandoned", "node no longer exists"))
            elif node.power in want[rec["action"]]:
                out.append(self.journal.outcome(rec["id"], "done", "confirmed after restart"))
            elif rec["action"] == "power_down" and not can_power_down(node, now, self.config)[0]:
                why = can_power_down(node, now, self.config)[1]
                out.append(self.journal.outcome(rec["id"], "abandoned", f"no longer safe: {why}"))
            else:
                out.append(self._execute(rec, finishing=True))
        return out

    # ---------------------------------------------------------------------- step
    def step(self, now: float | None = None) -> StepReport:
        """Plan (and with ``apply``, take) one step's actions."""
        now = time.time() if now is None else now
        if not self._seeded:
            note = self.seed_history(now)
            if note:
                self.journal.append({"kind": "history", "detail": note})
        report = self.plan(now)
        if report.status == "skipped":
            self.journal.append({"kind": "skipped", "reason": report.reason})
            return report
        self._save_state()
        actions = [("power_down", n) for n in report.power_down] + [
            ("power_up", n) for n in report.power_up
        ]
        if not actions:
            return report
        if self.apply and report.problems:
            report.status = "held"
            report.reason = "not acting: " + "; ".join(report.problems)
            self.journal.append({"kind": "held", "reason": report.reason})
            return report
        for action, node in actions:
            rec = self.journal.intent(action, node, report.reason, dry_run=not self.apply)
            if self.apply:
                self._execute(rec)
        if self.apply:
            self.state.last_wake = now if report.power_up else self.state.last_wake
            if report.power_up:
                self.state.wake_peak = float(report.busy + report.pending)
                self.state.wake_peak_at = now
            for node in report.power_up:
                self.state.powered_at[node] = now
            self._save_state()
            report.status = "acted"
        return report

    def plan(self, now: float) -> StepReport:
        """Read the cluster and compute the step's plan (no journal, no actions)."""
        try:
            nodes = self.view.nodes()
            pending = int(self.view.pending_nodes())
            settings = self.view.power_settings()
        except Exception as exc:
            return StepReport(now, "skipped", f"doing nothing: cannot read Slurm: {exc}")
        if not nodes:
            return StepReport(now, "skipped", "doing nothing: Slurm reported no nodes")
        problems = check_power_settings(settings, self.config)
        nodes = [self._with_memory(n, now) for n in nodes]
        busy = sum(n.busy for n in nodes)
        demand = busy + pending
        self._record(now, demand)
        capacity = sum(1 for n in nodes if n.available)
        powered = sum(1 for n in nodes if n.available and n.power in ("on", "powering_up"))
        cfg = self.config.scaled_to(self.history_series().to_numpy())
        peak, lookback = self._forecast(demand, cfg)
        last = self.state.last_wake
        since = now - last if last is not None else float("inf")
        st = self.state
        if st.wake_peak is not None and demand > st.wake_peak:
            st.wake_peak, st.wake_peak_at = float(demand), now
        since_peak = now - st.wake_peak_at if st.wake_peak_at is not None else 0.0
        dec = decide(
            busy=demand, forecast_peak=peak, lookback_max=lookback, powered=powered,
            capacity=capacity, steps_since_wake=since / cfg.step_s, config=cfg,
            rise=self._rise(demand, cfg), wake_peak=st.wake_peak,
            steps_since_peak=since_peak / cfg.step_s,
        )
        report = StepReport(
            now, "planned", dec.reason, problems, busy, pending, powered, capacity, dec.need,
            dec.keep_on, round(peak, 1),
        )
        if dec.power_down:
            chosen = choose_power_down(nodes, dec.power_down, now, cfg)
            report.power_down = [n.name for n in chosen]
        if dec.wake:
            report.power_up = [n.name for n in choose_power_up(nodes, dec.wake, now, cfg)]
        report.refused = {
            n.name: why
            for n in nodes
            if n.power == "on" and not n.busy
            for ok, why in [can_power_down(n, now, cfg)]
            if not ok
        }
        return report

    # ------------------------------------------------------------------ helpers
    def _execute(self, rec: dict[str, Any], finishing: bool = False) -> dict[str, Any]:
        action = "down" if rec["action"] == "power_down" else "up"
        try:
            self.view.power([rec["node"]], action)
        except Exception as exc:
            return self.journal.outcome(rec["id"], "failed", str(exc))
        detail = "finished after restart" if finishing else ""
        return self.journal.outcome(rec["id"], "done", detail)

    def _with_memory(self, node: NodeInfo, now: float) -> NodeInfo:
        """Fill idle-since / powered-at from what earlier steps saw."""
        if node.busy or node.power != "on":
            self.state.idle_since.pop(node.name, None)
        else:
            self.state.idle_since.setdefault(node.name, now)
        from dataclasses import replace

        return replace(
            node,
            idle_since=node.idle_since or self.state.idle_since.get(node.name),
            power_changed_at=node.power_changed_at or self.state.powered_at.get(node.name),
        )

    def _record(self, now: float, demand: int) -> None:
        key = pd.Timestamp(now, unit="s").floor(f"{self.config.step_s}s").isoformat()
        self.state.history[key] = max(demand, self.state.history.get(key, 0))
        if len(self.state.history) > self.history_steps:
            for old in sorted(self.state.history)[: -self.history_steps]:
                del self.state.history[old]

    def seed_history(self, now: float) -> str | None:
        """Fill the steps this controller never saw from accounting, once per process.

        Only while the recorded history is shorter than a day (a new controller, or
        one back from a long stop): the forecasters then work from the first step.
        Steps already recorded keep their live value. Returns what happened.
        """
        self._seeded = True
        reader = getattr(self.view, "demand_history", None)
        if reader is None or len(self.state.history) >= SEED_BELOW_STEPS:
            return None
        step_s = self.config.step_s
        current = pd.Timestamp(now, unit="s").floor(f"{step_s}s")
        try:
            series = reader(now - self.history_steps * step_s, now, step_s)
        except Exception as exc:  # accounting unreadable: start from live steps only
            return f"history not seeded from accounting: {exc}"
        added = 0
        for when, demand in series.items():
            step = pd.Timestamp(when)
            if step < current and step.isoformat() not in self.state.history:
                self.state.history[step.isoformat()] = int(demand)
                added += 1
        return f"seeded {added} steps of demand history from accounting"

    def history_series(self) -> pd.Series:
        """Recorded demand per step (gaps carried forward, as in the replay)."""
        if not self.state.history:
            return pd.Series(dtype="float64")
        s = pd.Series(self.state.history).sort_index()
        s.index = pd.DatetimeIndex(s.index)
        return s.resample(f"{self.config.step_s}s").max().ffill()

    def _forecast(self, demand: int, cfg: PlannerConfig) -> tuple[float, float]:
        series = self.history_series()
        look = float(lookback_peak(series.to_numpy(), cfg.lookback_steps,
                                   cfg.lookback_decay)[-1]) if len(series) else demand
        if len(series) < 145:
            return float(demand), look
        if self.peak_forecaster is not None:
            look = max(look, float(self.peak_forecaster.predict(series).iloc[-1]))
        if self.forecaster is None:
            return float(demand), look
        fc = self.forecaster.predict(series).iloc[-1]
        horizons = [h for h in fc.index if h <= cfg.horizon_steps] or list(fc.index)
        return float(fc[horizons].max()), look

    def _rise(self, demand: int, cfg: PlannerConfig) -> float:
        """Growth of demand over the last ``trend_steps`` recorded steps."""
        series = self.history_series()
        if len(series) <= cfg.trend_steps:
            return 0.0
        return float(demand - series.iloc[-1 - cfg.trend_steps])

    def _save_state(self) -> None:
        atomic_write_json(self.state_path, asdict(self.state))


def model_dir(home: Path | None = None) -> Path:
    """Where ``energy replay --save-model`` stores the forecasters."""
    return (home or state_dir() / "energy") / "demand_model"


def load_forecaster(home: Path | None = None, name: str = "short") -> Any | None:
    """A saved forecaster (``short``: per-horizon demand; ``peak``), or None if absent."""
    from predictor.models.demand import load

    path = model_dir(home) / name
    return load(path) if (path / "demand.json").exists() else None


def current_plan(
    view: ClusterView | None = None,
    *,
    config: PlannerConfig | None = None,
    home: Path | None = None,
) -> dict[str, Any]:
    """The next plan as a JSON-able dict (for ``GET /v1/energy/plan`` and ``energy plan``).

    Reads the cluster (Slurm through the adapter unless ``view`` is given) and
    returns what a dry-run step would do; takes no action and journals nothing.
    """
    if view is None:
        try:
            from energy.slurm_view import SlurmClusterView

            view = SlurmClusterView()
        except Exception as exc:
            return StepReport(time.time(), "skipped", f"cannot reach Slurm: {exc}").to_dict()
    controller = Controller(view, config=config, forecaster=load_forecaster(home),
                            peak_forecaster=load_forecaster(home, "peak"), home=home)
    return controller.plan(time.time()).to_dict()
