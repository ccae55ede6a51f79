"""Rules (feature vectors → states), ramps, config validation and the hysteresis tracker."""

from __future__ import annotations

import dataclasses

import pytest

from bus.messages import FocusState
from modules.analysis_features import WindowFeatures
from modules.analysis_rules import (
    AnalysisConfig,
    Classification,
    StateTracker,
    classify,
    down,
    up,
)
from skelly.config import ConfigError, load

CFG = AnalysisConfig()
S = FocusState

# Reference signatures (docs/ANALYSIS.md §3), as plain feature vectors.
TYPING = dict(key_count=120.0, iki_n=115.0, iki_mean_ms=160.0, iki_median_ms=150.0)
FLOW = WindowFeatures(
    duration_s=30,
    keys_per_min=240,
    iki_rcv=0.28,
    iki_cv=0.4,
    typing_duty=0.5,
    longest_pause_s=5.0,
    dominant_app_share=1.0,
    quiet_tail_s=0.5,
    work_share=1.0,
    **TYPING,
)
HYPER = dataclasses.replace(
    FLOW, keys_per_min=420, typing_duty=0.9, longest_pause_s=1.5, iki_rcv=0.18
)
DISTRACTED = WindowFeatures(
    duration_s=30,
    key_count=30,
    iki_n=20,
    keys_per_min=60,
    iki_median_ms=280,
    iki_rcv=0.9,
    switches=5,
    switches_per_min=10,
    dominant_app_share=0.35,
    visit_min_s=3.0,
    rapid_switch_ratio=0.8,
    comm_share=0.5,
    leisure_share=0.3,
    mouse_active_frac=0.7,
    quiet_tail_s=1.0,
)
IDLE = WindowFeatures(duration_s=30, quiet_tail_s=30.0, dominant_app_share=1.0)
NEUTRAL = WindowFeatures(
    duration_s=30,
    key_count=20,
    iki_n=15,
    keys_per_min=40,
    iki_median_ms=220,
    iki_rcv=0.5,
    mouse_active_frac=0.5,
    dominant_app_share=1.0,
    quiet_tail_s=2.0,
    visit_min_s=30.0,
)
TRANSITIONING = dataclasses.replace(
    NEUTRAL, switches=1, switches_per_min=2.5, dominant_app_share=0.6, visit_min_s=20.0
)


@pytest.mark.parametrize(
    ("features", "state"),
    [
        (FLOW, S.FLOW),
        (HYPER, S.HYPERFOCUS),
        (DISTRACTED, S.DISTRACTED),
        (IDLE, S.IDLE),
        (NEUTRAL, S.NEUTRAL),
        (TRANSITIONING, S.TRANSITIONING),
    ],
)
def test_reference_signatures_classify_clearly(features: WindowFeatures, state: S) -> None:
    c = classify(features, CFG)
    assert c.state is state
    assert c.confidence >= 0.8
    assert {s for s, _ in c.scores} == set(S)


def test_ramps() -> None:
    assert up(1.0, (2.0, 4.0)) == 0.0 and up(3.0, (2.0, 4.0)) == 0.5 and up(9, (2.0, 4.0)) == 1
    assert down(3.0, (2.0, 4.0)) == 0.5 and down(1.0, (2.0, 4.0)) == 1.0
    assert up(0.6, (0.75, 0.55)) == pytest.approx(0.75)  # reversed ends: decreasing
    assert up(5.0, (5.0, 5.0)) == 1.0 and up(4.9, (5.0, 5.0)) == 0.0  # hard threshold


def test_slow_hunting_typing_is_not_flow() -> None:
    slow = dataclasses.replace(FLOW, iki_median_ms=400.0, keys_per_min=100)
    assert classify(slow, CFG).state is not S.FLOW


def test_erratic_rhythm_is_not_flow() -> None:
    erratic = dataclasses.replace(FLOW, iki_rcv=0.9)
    assert classify(erratic, CFG).state is not S.FLOW


def test_hopping_between_apps_breaks_flow_even_with_typing() -> None:
    hop = dataclasses.replace(
        FLOW, switches=5, switches_per_min=10, dominant_app_share=0.3, visit_min_s=4.0
    )
    assert classify(hop, CFG).state is S.DISTRACTED


def test_hopping_among_work_apps_scores_lower_than_among_chat_and_video() -> None:
    work = dataclasses.replace(DISTRACTED, comm_share=0.0, leisure_share=0.0, work_share=1.0)
    work = dataclasses.replace(work, rapid_switch_ratio=0.0, iki_rcv=0.3)
    assert classify(work, CFG).score(S.DISTRACTED) < classify(DISTRACTED, CFG).score(S.DISTRACTED)


def test_twenty_silent_seconds_end_a_window_as_idle() -> None:
    gone = dataclasses.replace(FLOW, quiet_tail_s=21.0, keys_per_min=80)
    assert classify(gone, CFG).state is S.IDLE


def test_typing_while_hopping_between_short_visits_is_not_flow() -> None:
    hopping = dataclasses.replace(
        FLOW, switches=2, switches_per_min=4, dominant_app_share=0.75, visit_mean_s=22.0
    )
    trip = dataclasses.replace(hopping, visit_mean_s=150.0)  # editor 290 s, terminal 10 s
    assert classify(trip, CFG).state is S.FLOW
    assert classify(hopping, CFG).state is not S.FLOW


def test_a_single_app_switch_in_flow_is_still_flow() -> None:
    one = dataclasses.replace(
        FLOW, switches=1, switches_per_min=2, dominant_app_share=0.8, visit_min_s=300
    )
    assert classify(one, CFG).state is S.FLOW


def test_ambiguous_window_has_low_confidence() -> None:
    middle = dataclasses.replace(FLOW, keys_per_min=95.0)  # halfway up the flow_kpm ramp
    c = classify(middle, CFG)
    assert c.state in (S.FLOW, S.NEUTRAL)
    assert c.confidence < 0.8


def test_doubt_between_flow_and_hyperfocus_is_no_doubt_about_focus() -> None:
    middle = dataclasses.replace(FLOW, keys_per_min=330, typing_duty=0.75, longest_pause_s=3.75)
    c = classify(middle, CFG)
    assert c.state in (S.FLOW, S.HYPERFOCUS)
    assert 0.2 < c.score(S.FLOW) < 0.8 and 0.2 < c.score(S.HYPERFOCUS) < 0.8
    assert c.confidence >= 0.9


def test_thresholds_come_from_config() -> None:
    strict = AnalysisConfig(flow_kpm=(300.0, 350.0))
    assert classify(FLOW, CFG).state is S.FLOW
    assert classify(FLOW, strict).state is not S.FLOW


# --- config --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_s": -1.0}, "analysis.pause_s must be a positive number"),
        ({"flow_kpm": (1.0,)}, "analysis.flow_kpm must be a ramp"),
        ({"flow_kpm": (-5.0, 3.0)}, "analysis.flow_kpm must be a ramp"),
        ({"change_min_confidence": 1.5}, "from 0 to 1"),
        ({"burst_min_keys": 1}, "at least 2"),
    ],
)
def test_bad_config_is_refused_with_the_key_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AnalysisConfig(**kwargs)  # type: ignore[arg-type]


def test_config_loads_ramps_from_toml_and_environment(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.toml"
    path.write_text("[analysis]\nflow_kpm = [60, 100]\nhold_windows = 2\n", encoding="utf-8")
    cfg = load(path, env={"SKELLY_ANALYSIS__HOP_SPM": "[2.5, 5]"})
    assert cfg.analysis.flow_kpm == (60.0, 100.0) and cfg.analysis.hold_windows == 2
    assert cfg.analysis.hop_spm == (2.5, 5.0)
    with pytest.raises(ConfigError, match="flow_kpm"):
        load(env={"SKELLY_ANALYSIS__FLOW_KPM": "[60]"})


# --- tracker -------------------------------------------------------------------------------


def cls(state: S, confidence: float = 0.9) -> Classification:
    scores = tuple((s, confidence if s is state else 0.0) for s in S)
    return Classification(state, confidence, scores)


def feed(tracker: StateTracker, states: list[S], start: float = 0.0) -> list[S]:
    out = []
    for i, s in enumerate(states):
        step = tracker.update(start + 10.0 * (i + 1), cls(s), cls(s), cls(s))
        out.append(step.state)
    return out


def test_one_odd_window_does_not_flip_the_state() -> None:
    t = StateTracker()
    states = feed(t, [S.FLOW] * 5 + [S.DISTRACTED] + [S.FLOW] * 5)
    assert states == [S.FLOW] * 11


def test_two_corroborating_windows_flip_and_time_in_state_restarts() -> None:
    t = StateTracker()
    steps = []
    for i, s in enumerate([S.FLOW] * 4 + [S.DISTRACTED] * 3):
        steps.append(t.update(10.0 * (i + 1), cls(s), cls(s), cls(s)))
    assert [s.state for s in steps] == [S.FLOW] * 5 + [S.DISTRACTED] * 2
    change = steps[5].transition
    assert change is not None
    assert (change.previous, change.current, change.at) == (S.FLOW, S.DISTRACTED, 60.0)
    assert change.previous_duration_s == 50.0  # FLOW since the first window (10 s)
    assert steps[5].time_in_state_s == 0.0 and steps[6].time_in_state_s == 10.0
    assert steps[4].time_in_state_s == 40.0


def test_the_recent_slice_of_the_previous_window_corroborates() -> None:
    t = StateTracker()
    t.update(10.0, cls(S.FLOW), cls(S.FLOW), cls(S.FLOW))
    t.update(20.0, cls(S.FLOW), cls(S.IDLE), cls(S.FLOW))  # the last 10 s were silent
    step = t.update(30.0, cls(S.IDLE), cls(S.IDLE), cls(S.IDLE))
    assert step.state is S.IDLE and step.transition is not None


def test_the_late_part_can_propose_the_change() -> None:
    t = StateTracker()
    t.update(10.0, cls(S.FLOW), cls(S.FLOW), cls(S.FLOW))
    t.update(20.0, cls(S.FLOW), cls(S.NEUTRAL), cls(S.FLOW))
    step = t.update(30.0, cls(S.FLOW), cls(S.NEUTRAL), cls(S.NEUTRAL))
    assert step.state is S.NEUTRAL and step.raw_state is S.FLOW


def test_low_confidence_windows_do_not_propose_changes() -> None:
    t = StateTracker(change_min_confidence=0.5)
    t.update(10.0, cls(S.FLOW), cls(S.FLOW), cls(S.FLOW))
    t.update(20.0, cls(S.NEUTRAL, 0.3), cls(S.NEUTRAL, 0.3), cls(S.NEUTRAL, 0.3))
    step = t.update(30.0, cls(S.NEUTRAL, 0.3), cls(S.NEUTRAL, 0.3), cls(S.NEUTRAL, 0.3))
    assert step.state is S.FLOW


def test_hyperfocus_must_last_three_windows() -> None:
    t = StateTracker(hyperfocus_hold_windows=3)
    states = feed(t, [S.FLOW] * 3 + [S.HYPERFOCUS] * 4)
    assert states == [S.FLOW] * 6 + [S.HYPERFOCUS]


def test_duplicate_or_older_windows_are_ignored() -> None:
    t = StateTracker()
    t.update(10.0, cls(S.FLOW), None, None)
    t.update(20.0, cls(S.FLOW), None, None)
    step = t.update(20.0, cls(S.IDLE), cls(S.IDLE), cls(S.IDLE))
    assert not step.accepted and step.state is S.FLOW
    assert t.update(5.0, cls(S.IDLE), None, None).accepted is False


def test_a_long_gap_restarts_the_tracker_and_reports_the_change() -> None:
    t = StateTracker(reset_gap_s=120.0)
    feed(t, [S.FLOW] * 3)
    step = t.update(500.0, cls(S.IDLE), None, None)
    assert step.state is S.IDLE and step.transition is not None
    assert step.transition.previous_duration_s == 20.0  # FLOW from 10 s to the last window, 30 s


def test_first_window_sets_the_state_without_a_change() -> None:
    step = StateTracker().update(10.0, cls(S.NEUTRAL), None, None)
    assert step.state is S.NEUTRAL and step.transition is None and step.time_in_state_s == 0
