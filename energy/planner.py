"""The power plan: how many nodes to keep on, and which nodes to switch.

Two layers, both pure functions so the replay and the live controller share them:

* :func:`decide` works on counts. ``need = max(busy now, forecast peak over the
  horizon)``. If ``need + wake_buffer`` exceeds the nodes powered (on or booting),
  wake enough for ``need + wake_buffer + wake_margin`` -- one wake-up event that
  covers a rise, instead of many small ones. Otherwise, once ``min_on_dwell`` has
  passed since the last wake-up, power down toward ``max(lookback max of busy,
  need) + keep_buffer``, at most ``max_down_per_step`` nodes a step. The gap
  between the wake and the power-down thresholds is the hysteresis.
* **Release after a wake-up**: within the dwell, once demand has made no new
  high for ``release_quiet_steps`` (the rise that caused the wake-up has
  stopped), the batch goes down toward ``max(keep-on, highest demand since the
  wake-up + release_buffer)``: the nodes the rise did not use are released
  instead of being held for the whole dwell.
* :func:`choose_power_down` / :func:`choose_power_up` pick nodes: idle longest
  first; never a node that is excluded (``SuspendExcNodes``/excluded partitions),
  runs a job, is reserved for a pending job, or was powered up less than
  ``min_on_dwell_node`` ago; wake the nodes that have been off the longest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PlannerConfig:
    """Tunables of the plan (times in seconds, counts in nodes)."""

    step_s: int = 600
    boot_s: int = 300
    horizon_steps: int = 6
    wake_buffer: int = 2
    wake_margin: int = 40
    keep_buffer: int = 10
    lookback_steps: int = 6
    lookback_decay: float = 0.0
    peak_window: int = 72
    peak_quantile: float = 0.8
    trend_steps: int = 6
    wake_trend: float = 0.0
    min_on_dwell_s: int = 24 * 3600
    release_quiet_steps: int = 36  # 0 = hold the whole dwell
    release_buffer: int = 20
    min_on_dwell_node_s: int = 1800
    min_off_dwell_s: int = 1800
    max_down_per_step: int = 20
    max_up_per_step: int = 10_000
    min_on: int = 0
    #: Buffers above are sized for a cluster whose 99th-percentile demand change
    #: over the boot lead is this many nodes; ``scaled_to`` rescales them (0 = never).
    reference_swing: float = 28.0

    @property
    def ready_steps(self) -> int:
        """Steps from a wake-up at the end of step ``t`` until the node takes work.

        The boot starts at the end of step ``t`` and the node counts as on from
        the step in which its boot completes: ``t + 1 + boot_s // step_s`` (a boot
        shorter than a step serves step ``t + 1``; the same rule for every policy).
        """
        return 1 + max(0, self.boot_s) // self.step_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def scaled_to(self, demand: np.ndarray) -> PlannerConfig:
        """Buffers and rate limits rescaled to the swing of ``demand`` (past steps only).

        The swing is the 99th percentile of absolute demand changes over the boot
        lead (``ready_steps + 1`` steps); a cluster with half the swing gets half
        the buffers. Unchanged if ``reference_swing`` is 0 or history is too short.
        """
        d = np.asarray(demand, dtype=np.float64)
        lead = self.ready_steps + 1
        if self.reference_swing <= 0 or len(d) < 144 + lead:
            return self
        swing = float(np.percentile(np.abs(d[lead:] - d[:-lead]), 99))
        factor = max(swing, 1.0) / self.reference_swing

        def scale(value: int, floor: int) -> int:
            return max(floor, round(value * factor))

        return replace(
            self,
            wake_buffer=scale(self.wake_buffer, 0),
            wake_margin=scale(self.wake_margin, 1),
            keep_buffer=scale(self.keep_buffer, 0),
            release_buffer=scale(self.release_buffer, 0),
            max_down_per_step=scale(self.max_down_per_step, 1),
            lookback_decay=self.lookback_decay * factor,
            reference_swing=0.0,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlannerConfig:
        """Build from a mapping; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown planner setting(s): {', '.join(unknown)}")
        types = {f.name: f.type for f in fields(cls)}
        return cls(**{k: float(v) if types[k] == "float" else int(v) for k, v in data.items()})


def lookback_peak(demand: np.ndarray, window: int, decay: float = 0.0) -> np.ndarray:
    """Per step ``t``: ``max over k < window of demand[t - k] - decay * k`` (past only).

    With ``decay`` 0 this is the trailing maximum; a positive decay lets an old
    peak fade gradually instead of dropping out of the window all at once.
    """
    d = np.asarray(demand, dtype=np.float64)
    out = d.copy()
    for k in range(1, min(window, len(d))):
        np.maximum(out[k:], d[:-k] - decay * k, out=out[k:])
    return out


@dataclass(frozen=True)
class Decision:
    """What to do this step, in counts, and why."""

    need: int
    keep_on: int
    wake: int
    power_down: int
    reason: str


def decide(
    *,
    busy: int,
    forecast_peak: float,
    lookback_max: float,
    powered: int,
    capacity: int,
    steps_since_wake: float,
    config: PlannerConfig,
    rise: float = 0.0,
    wake_peak: float | None = None,
    steps_since_peak: float = 0.0,
) -> Decision:
    """The count-level decision for one step (see module docstring).

    ``rise`` is how much busy demand grew over the last ``trend_steps``; a wake-up
    during a steep rise adds ``wake_trend * rise`` nodes so one event covers it.
    ``wake_peak`` is the highest busy demand since the last wake-up, reached
    ``steps_since_peak`` steps ago (for the release within the dwell).
    """
    need = max(int(busy), math.ceil(forecast_peak), config.min_on)
    need = min(need, capacity)
    keep = min(capacity, max(math.ceil(lookback_max), need, config.min_on) + config.keep_buffer)
    if need + config.wake_buffer > powered and powered < capacity:
        extra = config.wake_margin + round(config.wake_trend * max(0.0, rise))
        target = min(capacity, need + max(config.wake_buffer, 0) + extra)
        wake = min(target - powered, config.max_up_per_step)
        return Decision(
            need, powered + wake, wake, 0,
            f"need {need} (+{config.wake_buffer} buffer) exceeds {powered} powered: "
            f"wake {wake} toward {target}",
        )
    if powered > keep and steps_since_wake >= config.min_on_dwell_s / config.step_s:
        down = min(powered - keep, config.max_down_per_step)
        return Decision(
            need, powered - down, 0, down,
            f"{powered} powered > keep-on {keep} (lookback peak {lookback_max:.0f}, need {need}, "
            f"+{config.keep_buffer}): power down {down}",
        )
    quiet = config.release_quiet_steps > 0 and steps_since_peak >= config.release_quiet_steps
    if powered > keep and quiet and wake_peak is not None:
        floor = min(capacity, max(keep, math.ceil(wake_peak) + config.release_buffer))
        if powered > floor:
            down = min(powered - floor, config.max_down_per_step)
            return Decision(
                need, powered - down, 0, down,
                f"within dwell, no new high for {steps_since_peak:.0f} steps: release {down} "
                f"toward {floor} (peak since wake-up {wake_peak:.0f} +{config.release_buffer})",
            )
    why = "within dwell after a wake-up" if powered > keep else "powered matches keep-on"
    return Decision(need, powered, 0, 0, f"hold {powered} ({why}; keep-on {keep})")


@dataclass(frozen=True)
class NodeInfo:
    """One node as the planner needs it (times are epoch seconds)."""

    name: str
    power: str  # "on", "off", "powering_up", "powering_down"
    busy: bool = False  # runs a job (allocated/mixed/completing)
    reserved: bool = False  # held for a pending job / reservation
    excluded: bool = False  # SuspendExcNodes, excluded partition, or admin-excluded
    available: bool = True  # not down/drained/failed
    idle_since: float | None = None
    power_changed_at: float | None = None
    partitions: tuple[str, ...] = field(default_factory=tuple)


def can_power_down(node: NodeInfo, now: float, config: PlannerConfig) -> tuple[bool, str]:
    """Whether ``node`` may be powered down now, and why not."""
    if node.power != "on":
        return False, f"power state is {node.power}"
    if node.excluded:
        return False, "excluded from power saving"
    if node.busy:
        return False, "runs a job"
    if node.reserved:
        return False, "reserved for a pending job"
    if not node.available:
        return False, "not available (down/drained)"
    if node.power_changed_at is not None and now - node.power_changed_at < (
        config.min_on_dwell_node_s
    ):
        return False, "powered up too recently (min on dwell)"
    return True, ""


def choose_power_down(
    nodes: list[NodeInfo], count: int, now: float, config: PlannerConfig
) -> list[NodeInfo]:
    """Up to ``count`` nodes to power down: eligible ones, idle longest first."""
    eligible = [n for n in nodes if can_power_down(n, now, config)[0]]
    eligible.sort(key=lambda n: (n.idle_since if n.idle_since is not None else now, n.name))
    return eligible[: max(0, count)]


def choose_power_up(
    nodes: list[NodeInfo], count: int, now: float, config: PlannerConfig
) -> list[NodeInfo]:
    """Up to ``count`` powered-off nodes to wake: off longest first, rested ones before."""
    off = [n for n in nodes if n.power == "off" and n.available and not n.excluded]

    def key(n: NodeInfo) -> tuple[int, float, str]:
        since = n.power_changed_at if n.power_changed_at is not None else 0.0
        rested = now - since >= config.min_off_dwell_s
        return (0 if rested else 1, since, n.name)

    off.sort(key=key)
    return off[: max(0, count)]
