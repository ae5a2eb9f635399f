"""The count-level decision and the node choice of the power plan."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from energy.planner import (
    NodeInfo,
    PlannerConfig,
    choose_power_down,
    choose_power_up,
    decide,
    lookback_peak,
)

CFG = PlannerConfig(wake_buffer=3, wake_margin=20, keep_buffer=5, min_on_dwell_s=3600,
                    max_down_per_step=4)


def call(**kw: float) -> object:
    args = {"busy": 50, "forecast_peak": 50.0, "lookback_max": 50, "powered": 80,
            "capacity": 100, "steps_since_wake": 1e9, "config": CFG}
    args.update(kw)
    return decide(**args)


def test_wakes_once_with_margin_when_need_nears_powered() -> None:
    d = call(busy=70, forecast_peak=78.0, powered=80, capacity=200)
    assert d.wake == 78 + 3 + 20 - 80 and d.power_down == 0
    assert call(busy=90, forecast_peak=99.0, powered=95).wake == 5  # capped by capacity


def test_powers_down_gradually_toward_keep_on_after_dwell() -> None:
    d = call(busy=40, forecast_peak=41.0, lookback_max=45, powered=80)
    assert d.power_down == 4 and d.keep_on == 76  # rate limit of 4 per step
    held = call(busy=40, forecast_peak=41.0, lookback_max=45, powered=80, steps_since_wake=2)
    assert held.power_down == 0 and "dwell" in held.reason
    assert call(busy=40, forecast_peak=41.0, lookback_max=72, powered=80).power_down == 3


def test_hysteresis_band_holds() -> None:
    d = call(busy=70, forecast_peak=70.0, lookback_max=72, powered=77)
    assert d.wake == 0 and d.power_down == 0


def test_releases_the_unused_part_of_a_wake_up_once_the_rise_has_stopped() -> None:
    cfg = replace(CFG, release_quiet_steps=3, release_buffer=2, min_on_dwell_s=6000)
    args = {"busy": 40, "forecast_peak": 40.0, "lookback_max": 40, "powered": 70,
            "capacity": 100, "steps_since_wake": 5, "wake_peak": 50.0}
    rising = decide(**args, config=cfg, steps_since_peak=2)
    assert rising.power_down == 0 and "dwell" in rising.reason  # still making new highs
    quiet = decide(**args, config=cfg, steps_since_peak=3)
    assert quiet.power_down == 4 and "toward 52" in quiet.reason  # rate-limited to 4
    assert decide(**{**args, "powered": 53}, config=cfg, steps_since_peak=3).power_down == 1
    held = replace(cfg, release_quiet_steps=0)  # 0: hold the whole dwell
    assert decide(**args, config=held, steps_since_peak=99).power_down == 0


def test_lookback_peak_is_trailing_and_decays() -> None:
    d = np.array([0, 10, 0, 0, 0, 0], dtype=float)
    assert lookback_peak(d, 3).tolist() == [0, 10, 10, 10, 0, 0]
    assert lookback_peak(d, 10, decay=2).tolist() == [0, 10, 8, 6, 4, 2]


def node(name: str, **kw: object) -> NodeInfo:
    return NodeInfo(name=name, power=kw.pop("power", "on"), **kw)  # type: ignore[arg-type]


def test_power_down_picks_idle_longest_and_skips_unsafe_nodes() -> None:
    nodes = [
        node("a", idle_since=300.0), node("b", idle_since=100.0), node("c", busy=True),
        node("d", reserved=True, idle_since=0.0), node("e", excluded=True, idle_since=0.0),
        node("f", power="off"), node("g", available=False, idle_since=0.0),
        node("h", idle_since=0.0, power_changed_at=9_900.0),
    ]
    chosen = choose_power_down(nodes, 10, now=10_000.0, config=CFG)
    assert [n.name for n in chosen] == ["b", "a"]


def test_power_up_prefers_nodes_off_longest() -> None:
    nodes = [node("x", power="off", power_changed_at=9_990.0),
             node("y", power="off", power_changed_at=100.0), node("z", power="on"),
             node("w", power="off", excluded=True)]
    assert [n.name for n in choose_power_up(nodes, 5, 10_000.0, CFG)] == ["y", "x"]


@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans(),
                          st.sampled_from(["on", "off", "powering_up"])), max_size=30),
       st.integers(0, 40))
def test_never_powers_down_a_node_with_work_reservation_or_exclusion(
    flags: list[tuple[bool, bool, bool, bool, str]], count: int
) -> None:
    nodes = [node(f"n{i}", busy=b, reserved=r, excluded=e, available=a, power=p)
             for i, (b, r, e, a, p) in enumerate(flags)]
    for n in choose_power_down(nodes, count, 1e6, CFG):
        assert n.power == "on" and n.available
        assert not (n.busy or n.reserved or n.excluded)
