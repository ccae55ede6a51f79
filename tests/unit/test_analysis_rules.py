"""Rules (feature vectors → states), ramps, config validation and the hysteresis tracker."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bus.messages import FocusState
from modules.analysis.features import WindowFeatures
from modules.analysis.rules import (
    AnalysisConfig,
    Classification,
    Context,
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
    NEUTRAL,
    switches=1,
    switches_per_min=2.0,
    new_switches_per_min=1.0,
    weighted_switches_per_min=1.0,
    unsettled_switches_per_min=1.0,
    dominant_app_share=0.6,
    visit_min_s=20.0,
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


def ctx(f: WindowFeatures, silence: float, long: WindowFeatures | None = None) -> Context:
    return Context(f, long or f, silence, 1.0)


def test_a_silence_is_idle_later_inside_focused_work() -> None:
    """Thinking pauses up to ~45 s inside focused typing are not IDLE; elsewhere 30 s are."""
    quiet = dataclasses.replace(NEUTRAL, keys_per_min=0.0, key_count=0, mouse_active_frac=0.0)
    assert classify(quiet, CFG, ctx(NEUTRAL, 35.0, long=NEUTRAL)).state is S.IDLE
    assert classify(quiet, CFG, ctx(NEUTRAL, 15.0, long=NEUTRAL)).state is not S.IDLE
    thinking = classify(FLOW, CFG, ctx(FLOW, 35.0, long=FLOW))
    assert thinking.state is S.FLOW
    assert classify(FLOW, CFG, ctx(FLOW, 45.0, long=FLOW)).state is S.IDLE


def test_typing_while_hopping_between_short_visits_is_not_flow() -> None:
    hopping = dataclasses.replace(
        FLOW, switches=2, switches_per_min=4, dominant_app_share=0.55, new_switches_per_min=4
    )
    trip = dataclasses.replace(hopping, dominant_app_share=0.85, new_switches_per_min=2)
    assert classify(trip, CFG).state is S.FLOW
    assert classify(hopping, CFG).state is not S.FLOW


def test_a_single_app_switch_in_flow_is_still_flow() -> None:
    one = dataclasses.replace(
        FLOW, switches=1, switches_per_min=2, dominant_app_share=0.8, visit_min_s=300
    )
    assert classify(one, CFG).state is S.FLOW


def test_ambiguous_window_has_low_confidence() -> None:
    middle = dataclasses.replace(FLOW, keys_per_min=sum(CFG.flow_kpm) / 2)  # halfway up
    c = classify(middle, CFG)
    assert c.state in (S.FLOW, S.NEUTRAL)
    assert c.confidence < 0.8


def test_doubt_between_flow_and_hyperfocus_is_no_doubt_about_focus() -> None:
    # halfway up the dense_excess ramp [0.22, 0.4] over the population flow duty: 0.7 + 0.31 * 0.3
    middle = dataclasses.replace(FLOW, keys_per_min=330, typing_duty=0.793, longest_pause_s=3.75)
    c = classify(middle, CFG)
    assert c.state in (S.FLOW, S.HYPERFOCUS)
    assert 0.2 < c.score(S.FLOW) < 0.8 and 0.2 < c.score(S.HYPERFOCUS) < 0.8
    assert c.confidence >= 0.9


def test_thresholds_come_from_config() -> None:
    strict = AnalysisConfig(flow_kpm=(300.0, 350.0))
    assert classify(FLOW, CFG).state is S.FLOW
    assert classify(FLOW, strict).state is not S.FLOW


# --- config --------------------------------------------------------------------------------


def test_an_excess_ramp_may_start_below_the_persons_flow_duty() -> None:
    assert AnalysisConfig(dense_settled_excess=(-0.1, 0.05)).dense_settled_excess == (-0.1, 0.05)
    # the rhythm gain (quicker + steadier than the person's flow) is signed as well
    assert AnalysisConfig(dense_rhythm=(-0.02, 0.04)).dense_rhythm == (-0.02, 0.04)
    assert AnalysisConfig(brisk_excess=(-0.1, 0.0)).brisk_excess == (-0.1, 0.0)
    assert AnalysisConfig(brisk_steadier=(-0.01, 0.01)).brisk_steadier == (-0.01, 0.01)
    with pytest.raises(ValueError, match=r"analysis\.brisk_rhythm must be a ramp"):
        AnalysisConfig(brisk_rhythm=(0.1, float("nan")))
    with pytest.raises(ValueError, match="baseline_rhythm_windows must be a positive number"):
        AnalysisConfig(baseline_rhythm_windows=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pause_s": -1.0}, "analysis.pause_s must be a positive number"),
        ({"flow_kpm": (1.0,)}, "analysis.flow_kpm must be a ramp"),
        ({"flow_kpm": (-5.0, 3.0)}, "analysis.flow_kpm must be a ramp"),
        ({"dense_settled_excess": (0.0, math.inf)}, "two finite numbers, got"),
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
    path.write_text("[analysis]\nflow_kpm = [60, 100]\nblip_s = 90\n", encoding="utf-8")
    cfg = load(path, env={"SKELLY_ANALYSIS__HOP_SPM": "[2.5, 5]"})
    assert cfg.analysis.flow_kpm == (60.0, 100.0) and cfg.analysis.blip_s == 90.0
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
        out.append(tracker.update(start + 10.0 * (i + 1), cls(s)).state)
    return out


@pytest.mark.parametrize("odd", [S.DISTRACTED, S.NEUTRAL, S.TRANSITIONING, S.HYPERFOCUS])
def test_one_odd_window_does_not_flip_the_state(odd: S) -> None:
    t = StateTracker()
    states = feed(t, [S.FLOW] * 5 + [odd] + [S.FLOW] * 5)
    assert states == [S.FLOW] * 11


def test_two_confident_windows_flip_and_time_in_state_restarts() -> None:
    t = StateTracker()
    steps = [
        t.update(10.0 * (i + 1), cls(s, 1.0))
        for i, s in enumerate([S.FLOW] * 4 + [S.DISTRACTED] * 3)
    ]
    assert [s.state for s in steps] == [S.FLOW] * 5 + [S.DISTRACTED] * 2
    change = steps[5].transition
    assert change is not None
    assert (change.previous, change.current, change.at) == (S.FLOW, S.DISTRACTED, 60.0)
    assert change.previous_duration_s == 50.0  # FLOW since the first window (10 s)
    assert steps[5].time_in_state_s == 0.0 and steps[6].time_in_state_s == 10.0
    assert steps[4].time_in_state_s == 40.0


def test_an_ordinary_change_needs_more_evidence_than_a_quick_one() -> None:
    t = StateTracker()
    states = feed(t, [S.NEUTRAL] * 3 + [S.FLOW] * 3)
    assert states == [S.NEUTRAL] * 4 + [S.FLOW] * 2  # 0.9 + 0.9 >= 1.4: two FLOW windows
    assert feed(StateTracker(), [S.NEUTRAL] * 3 + [S.DISTRACTED] * 2)[-1] is S.DISTRACTED


def test_alternating_windows_never_pile_up_evidence() -> None:
    """A steady activity whose windows flicker between two readings does not flap."""
    t = StateTracker()
    states = feed(t, [S.FLOW] * 3 + [S.NEUTRAL, S.FLOW] * 30)
    assert set(states) == {S.FLOW}


def test_idle_needs_two_windows_too() -> None:
    t = StateTracker()
    states = feed(t, [S.FLOW] * 3 + [S.IDLE] * 2)
    assert states[-2:] == [S.FLOW, S.IDLE]


def test_low_confidence_windows_do_not_propose_changes() -> None:
    t = StateTracker(change_min_confidence=0.5)
    t.update(10.0, cls(S.FLOW))
    for end in (20.0, 30.0, 40.0, 50.0):
        step = t.update(end, cls(S.NEUTRAL, 0.3))
    assert step.state is S.FLOW


def test_hyperfocus_is_entered_slower_and_left_for_flow_slower_still() -> None:
    t = StateTracker()
    states = feed(t, [S.FLOW] * 3 + [S.HYPERFOCUS] * 3)
    assert states == [S.FLOW] * 4 + [S.HYPERFOCUS] * 2  # 1.6: two windows of 0.9
    back = feed(t, [S.FLOW] * 4, start=60.0)
    assert back == [S.HYPERFOCUS] * 3 + [S.FLOW]  # 3.0 needs four


def test_a_short_excursion_keeps_the_time_in_state() -> None:
    """blip_s (90 s): away and back within a minute and a half continues the clock (a minute
    away in fact is up to that much of another state); longer restarts it."""
    t = StateTracker()
    steps = [t.update(10.0 * (i + 1), cls(s, 1.0)) for i, s in enumerate(
        [S.FLOW] * 20 + [S.NEUTRAL] * 4 + [S.FLOW] * 3
    )]  # fmt: skip
    assert [s.state for s in steps][19:] == [S.FLOW] * 2 + [S.NEUTRAL] * 4 + [S.FLOW] * 2
    left, back = steps[21], steps[25]
    assert left.transition is not None and left.time_in_state_s == 0.0
    assert back.transition is not None and back.transition.current is S.FLOW
    assert back.time_in_state_s == 250.0  # since the first window, the excursion included
    # 80 s of NEUTRAL keeps the clock too; 110 s restarts it
    for away, kept in ((8, True), (11, False)):
        t2 = StateTracker()
        steps2 = [t2.update(10.0 * (i + 1), cls(s, 1.0)) for i, s in enumerate(
            [S.FLOW] * 20 + [S.NEUTRAL] * away + [S.FLOW] * 3
        )]  # fmt: skip
        assert [s.state for s in steps2].count(S.NEUTRAL) == away
        assert steps2[-2].state is S.FLOW
        assert (steps2[-2].time_in_state_s > 0.0) is kept, away


def test_duplicate_or_older_windows_are_ignored() -> None:
    t = StateTracker()
    t.update(10.0, cls(S.FLOW))
    t.update(20.0, cls(S.FLOW))
    step = t.update(20.0, cls(S.IDLE))
    assert not step.accepted and step.state is S.FLOW
    assert t.update(5.0, cls(S.IDLE)).accepted is False


def test_a_long_gap_restarts_the_tracker_and_reports_the_change() -> None:
    t = StateTracker(reset_gap_s=120.0)
    feed(t, [S.FLOW] * 3)
    step = t.update(500.0, cls(S.IDLE))
    assert step.state is S.IDLE and step.transition is not None
    assert step.transition.previous_duration_s == 20.0  # FLOW from 10 s to the last window, 30 s


def test_first_window_sets_the_state_without_a_change() -> None:
    step = StateTracker().update(10.0, cls(S.NEUTRAL))
    assert step.state is S.NEUTRAL and step.transition is None and step.time_in_state_s == 0


def test_fluent_typing_in_the_mail_app_is_ordinary_work_not_flow() -> None:
    """Issue 8: e-mail-style work read as FLOW half of the time; steady typing counts as flow
    only in work apps (code, terminal, docs, office, design; unknown apps too)."""
    mail = dataclasses.replace(FLOW, work_share=0.0, comm_share=1.0)
    browser = dataclasses.replace(FLOW, work_share=0.0, browser_share=1.0)
    unknown = dataclasses.replace(FLOW, work_share=0.0)
    assert classify(mail, CFG).state is S.NEUTRAL
    assert classify(browser, CFG).state is S.NEUTRAL
    assert classify(unknown, CFG).state is S.FLOW


def test_distraction_is_left_for_ordinary_work_slower_than_for_flow() -> None:
    """leave_distracted_evidence (2.8): hopping that slows for a minute is not yet NEUTRAL or
    TRANSITIONING (issue 8: DISTRACTED <-> TRANSITIONING flapped ~12 times an hour); FLOW and
    IDLE take the usual evidence."""
    for calmer in (S.NEUTRAL, S.TRANSITIONING):
        t = StateTracker()
        assert feed(t, [S.DISTRACTED] * 2 + [calmer] * 4) == [S.DISTRACTED] * 5 + [calmer]
    t = StateTracker()
    assert feed(t, [S.DISTRACTED] * 2 + [S.FLOW] * 2) == [S.DISTRACTED] * 3 + [S.FLOW]
    # three calm windows, then hopping again: no change at all
    t = StateTracker()
    assert set(feed(t, [S.DISTRACTED] * 2 + [S.NEUTRAL] * 3 + [S.DISTRACTED] * 3)) == {S.DISTRACTED}


def test_hopping_over_the_last_minutes_holds_distracted_through_a_slower_minute() -> None:
    hopping = dataclasses.replace(
        DISTRACTED, duration_s=240, switches_per_min=6.0, dominant_app_share=0.3
    )
    calm_minute = dataclasses.replace(NEUTRAL, switches_per_min=1.5, dominant_app_share=0.7)
    held = classify(calm_minute, CFG, Context(calm_minute, hopping, 2.0))
    assert held.state is S.DISTRACTED
    settled = dataclasses.replace(calm_minute, switches_per_min=0.0, dominant_app_share=1.0)
    assert classify(settled, CFG, Context(settled, hopping, 2.0)).state is not S.DISTRACTED


def test_a_lighter_stretch_of_flow_inside_a_hyperfocus_session_keeps_its_clock() -> None:
    """hyperfocus_blip_s (600 s): HYPERFOCUS -> FLOW -> HYPERFOCUS within ten minutes, with
    nothing but FLOW (or stays elsewhere of at most session_break_s) between, resumes the
    session's clock; a longer stretch, or real time away from focus, starts a new session."""
    hf, flow, neutral = [S.HYPERFOCUS] * 30, [S.FLOW] * 30, [S.NEUTRAL] * 12
    t = StateTracker()
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate([*hf, *flow, *hf])]
    back = [i for i, s in enumerate(steps) if s.transition and s.transition.current is S.HYPERFOCUS]
    assert len(back) == 1 and back[0] > 60 and steps[-1].state is S.HYPERFOCUS
    # since the first window: the session's 5 minutes, the lighter stretch, and this one
    assert steps[-1].time_in_state_s == 10.0 * (len(steps) - 1)
    flow_steps = [s for s in steps[30:60] if s.state is S.FLOW]
    assert flow_steps and flow_steps[0].time_in_state_s == 0.0  # FLOW's own clock restarts

    t = StateTracker()  # eleven minutes of FLOW: a new session
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate([*hf, *[S.FLOW] * 66, *hf])]
    assert steps[-1].state is S.HYPERFOCUS and steps[-1].time_in_state_s < 300.0

    t = StateTracker()  # two minutes of ordinary work in between: the session ended
    steps = [
        t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate([*hf, *flow, *neutral, *flow, *hf])
    ]
    assert S.NEUTRAL in {s.state for s in steps}
    assert steps[-1].state is S.HYPERFOCUS and steps[-1].time_in_state_s < 300.0

    # a 40-second blip into NEUTRAL inside the lighter stretch does not end the session
    t = StateTracker()
    seq = [*hf, *flow[:15], *[S.NEUTRAL] * 6, *flow[:15], *hf]
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate(seq)]
    assert S.NEUTRAL in {s.state for s in steps}
    assert steps[-1].time_in_state_s == 10.0 * (len(steps) - 1)

    # 80 s of NEUTRAL (over session_break_s, within blip_s) ends the session, though FLOW's own
    # clock runs on through it
    t = StateTracker()
    seq = [*hf, *flow[:15], *[S.NEUTRAL] * 8, *flow[:15], *hf]
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate(seq)]
    states = [s.state for s in steps]
    assert states.count(S.NEUTRAL) == 8
    back_in_flow = next(s for s in steps if s.transition and s.transition.previous is S.NEUTRAL)
    assert back_in_flow.time_in_state_s > 100.0
    assert steps[-1].state is S.HYPERFOCUS and steps[-1].time_in_state_s < 300.0


def test_flow_after_a_settled_session_stays_a_lighter_stretch_of_it_until_a_real_break() -> None:
    """in_session (docs §5): FLOW within hyperfocus_blip_s of leaving HYPERFOCUS is a lighter
    stretch of the session; after a session that lasted hyperfocus_settled_s it stays one until
    a real break (more than session_break_s of anything but FLOW) — a session misread as FLOW
    for longer than ten minutes was learnt as the person's flow and never came back (holdout
    family). A short session's stretch ends after hyperfocus_blip_s as before."""
    flow = [S.FLOW] * 70  # 11 min 40 s

    def stretch(hf_windows: int, after: list[S]) -> list[bool]:
        t = StateTracker()
        seq = [*[S.HYPERFOCUS] * hf_windows, *after]
        out = []
        for i, s in enumerate(seq):
            t.update(10.0 * (i + 1), cls(s))
            out.append(t.in_session(10.0 * (i + 1)))
        return out[hf_windows:]

    settled = stretch(70, flow)  # an 11-minute session, then FLOW
    assert settled[-1] and sum(settled) >= 65
    short = stretch(30, flow)  # a 5-minute session: the stretch ends after ten minutes
    assert short[30] and not short[-1]
    broken = stretch(70, [*flow[:20], *[S.NEUTRAL] * 12, *flow[:20]])  # two minutes away
    assert broken[10] and not broken[-1]


def test_flow_back_from_a_deeper_stretch_keeps_its_clock() -> None:
    """FLOW -> HYPERFOCUS -> FLOW within hyperfocus_blip_s keeps FLOW's clock, the deeper stretch
    included (one focus at two depths: the independent family's 40-minute flows had 1-7 minute
    stretches read as HYPERFOCUS, and one in five then never showed 15 unbroken minutes of FLOW,
    so Gamification's coins for 15 minutes of flow would not come); a longer stretch restarts it."""
    flow = [S.FLOW] * 30
    t = StateTracker()
    steps = [
        t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate([*flow, *[S.HYPERFOCUS] * 30, *flow])
    ]
    assert [s.state for s in steps].count(S.HYPERFOCUS) > 20 and steps[-1].state is S.FLOW
    assert steps[-1].time_in_state_s == 10.0 * (len(steps) - 1)

    t = StateTracker()  # eleven minutes deeper: FLOW starts again
    seq = [*flow, *[S.HYPERFOCUS] * 66, *flow]
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate(seq)]
    assert steps[-1].state is S.FLOW and steps[-1].time_in_state_s < 300.0

    t = StateTracker()  # FLOW -> NEUTRAL for two minutes -> FLOW: the ordinary blip rule, restarted
    seq = [*flow, *[S.NEUTRAL] * 12, *flow]
    steps = [t.update(10.0 * (i + 1), cls(s)) for i, s in enumerate(seq)]
    assert steps[-1].state is S.FLOW and steps[-1].time_in_state_s < 300.0


def _with_rhythm(
    medium: WindowFeatures, long: WindowFeatures, rhythm: tuple[float, float] | None
) -> Context:
    return Context(medium, long, 1.0, 1.0, CFG.baseline_flow_duty, flow_rhythm=rhythm)


def test_typing_much_slower_than_the_persons_own_flow_is_not_flow() -> None:
    """Once their flow rhythm is known, a minute typed 25 % slower than it (a fluent reply at
    their ordinary pace) is not FLOW; at their flow pace it is, and with no rhythm known the
    pace against the general baseline decides alone (docs §3 own_pace)."""
    flow = dataclasses.replace(FLOW, iki_core_ms=150.0, iki_core_cv=0.3)
    reply = dataclasses.replace(flow, iki_core_ms=150.0 * 1.25, iki_median_ms=185.0)
    rhythm = (150.0, 0.3)
    assert classify(flow, CFG, _with_rhythm(flow, flow, rhythm)).state is S.FLOW
    assert classify(reply, CFG, _with_rhythm(reply, reply, None)).state is S.FLOW
    slow = classify(reply, CFG, _with_rhythm(reply, reply, rhythm))
    assert slow.state is S.NEUTRAL
    assert slow.score(S.FLOW) == 0.0
    # halfway up the ramp: 1.15 x their flow core IKI
    mid = dataclasses.replace(flow, iki_core_ms=150.0 * 1.15)
    assert classify(mid, CFG, _with_rhythm(mid, mid, rhythm)).score(S.FLOW) == pytest.approx(0.5)
    # the held minutes of a thinking pause are not judged by it: too few keys in the minute
    pause = dataclasses.replace(
        flow, key_count=3, iki_n=2, keys_per_min=6, iki_core_ms=400.0, typing_duty=0.0
    )
    minutes = dataclasses.replace(flow, burst_mean_keys=20.0)
    held = classify(pause, CFG, _with_rhythm(pause, minutes, rhythm))
    assert held.state is S.FLOW


def test_a_fresh_visit_of_focused_typing_is_flow_before_the_minute_covers_it() -> None:
    """The editor came to the front 40 s ago and the whole window in it is focused typing at
    the person's flow density, while the last minute is still half the mail app before it:
    FLOW on the window (flow_fresh, docs §3). Not before the visit fills the window, not at
    e-mail density, and no more once the minute covers the visit (flow_now judges it then)."""
    window = dataclasses.replace(FLOW, front_visit_s=40.0, typing_duty=0.7)
    minute = dataclasses.replace(
        FLOW,
        front_visit_s=40.0,
        typing_duty=0.4,
        dominant_app_share=0.55,
        work_share=0.55,
        comm_share=0.45,
    )

    def judged(w: WindowFeatures, visit: float) -> Classification:
        w = dataclasses.replace(w, front_visit_s=visit)
        m = dataclasses.replace(minute, front_visit_s=visit)
        return classify(w, CFG, Context(m, m, 0.5, 1.0, 0.7))

    fresh = judged(window, 40.0)
    assert fresh.state is S.FLOW
    assert dict(fresh.terms)["flow_fresh"] == 1.0
    assert dict(fresh.terms)["flow_now"] == 0.0  # the minute alone would not say FLOW
    assert judged(window, 25.0).state is S.NEUTRAL  # the window still holds the mail app
    light = dataclasses.replace(window, typing_duty=0.35)  # (0.35 - 0.7) / 0.3 below the ramp
    assert judged(light, 40.0).state is S.NEUTRAL
    covered = judged(window, CFG.focus_s + 10.0)
    assert dict(covered.terms)["flow_fresh"] == 0.0
    assert covered.state is S.NEUTRAL


def test_a_minute_in_the_mail_app_ends_a_held_thinking_pause() -> None:
    """flow_held keeps FLOW through a quiet minute in the same work app, not through a minute
    spent mostly in mail or chat after the last minutes of focused typing."""
    quiet = dataclasses.replace(
        FLOW, key_count=3, iki_n=2, keys_per_min=6, typing_duty=0.0, quiet_tail_s=10.0
    )
    mail = dataclasses.replace(quiet, work_share=0.2, comm_share=0.8, dominant_app_share=0.8)
    minutes = dataclasses.replace(FLOW, burst_mean_keys=20.0)
    assert classify(quiet, CFG, Context(quiet, minutes, 10.0, 1.0)).state is S.FLOW
    assert classify(mail, CFG, Context(mail, minutes, 10.0, 1.0)).state is S.NEUTRAL


def test_three_switches_or_more_in_the_last_minute_is_the_onset_of_hopping_not_transitioning() -> (
    None
):
    """The first switches of hopping, while the app share still looks settled, read as a
    transition and flipped NEUTRAL -> TRANSITIONING -> DISTRACTED within 20 s
    (transition_max_spm)."""
    onset = dataclasses.replace(TRANSITIONING, switches=3, switches_per_min=4.0)
    assert classify(TRANSITIONING, CFG).state is S.TRANSITIONING
    c = classify(onset, CFG)
    assert c.score(S.TRANSITIONING) == 0.0 and c.state is S.NEUTRAL
    mid = dataclasses.replace(TRANSITIONING, switches_per_min=3.5)
    assert classify(mid, CFG).score(S.TRANSITIONING) == pytest.approx(0.5)


def test_a_thinking_pause_is_held_only_once_the_host_has_been_watched_for_minutes() -> None:
    """flow_held says "the last minutes were focused typing": right after the host was first
    seen (or came back after a gap) the long span covers only a minute or two, and a pause
    then is not held as FLOW (HELD_WATCHED: ½ to ¾ of context_s)."""
    quiet = dataclasses.replace(
        FLOW, key_count=3, iki_n=2, keys_per_min=6, typing_duty=0.0, quiet_tail_s=10.0
    )
    minutes = dataclasses.replace(FLOW, burst_mean_keys=20.0)

    def held(watched_s: float) -> float:
        ctx = Context(quiet, minutes, 10.0, 1.0, watched_s=watched_s)
        return classify(quiet, CFG, ctx).score(S.FLOW)

    assert held(math.inf) == 1.0
    assert held(CFG.context_s) == 1.0
    assert held(0.5 * CFG.context_s) == 0.0
    assert held(0.625 * CFG.context_s) == pytest.approx(0.5)


def test_someone_listening_in_a_call_is_in_ordinary_work_until_a_minute_of_silence() -> None:
    """attending: the last minutes mostly in a communication app, and the person came back
    after a pause of 20 s or more two or three times (returns). Then 35 s of silence is a
    meeting (NEUTRAL), not IDLE; a minute is IDLE whatever came before, and without the
    returns (someone who left after chatting) 35 s is IDLE as in any ordinary work."""
    quiet = dataclasses.replace(NEUTRAL, key_count=0, keys_per_min=0.0, mouse_active_frac=0.0)
    call = dataclasses.replace(quiet, comm_share=0.9, keys_per_min=8.0, key_count=32)

    def judged(silence: float, returns: int, long: WindowFeatures = call) -> Classification:
        return classify(quiet, CFG, Context(quiet, long, silence, 1.0, returns=returns))

    assert judged(35.0, 3).state is S.NEUTRAL
    assert judged(35.0, 0).state is S.IDLE
    assert judged(35.0, 3, long=dataclasses.replace(call, comm_share=0.3)).state is S.IDLE
    assert judged(65.0, 3).state is S.IDLE
    assert judged(35.0, 2).score(S.IDLE) == pytest.approx(0.5)  # attending ½: a middling call
    assert judged(52.5, 3).score(S.IDLE) == pytest.approx(0.5)  # attend_idle_silence_s


def test_visits_to_the_notes_app_during_a_call_are_not_a_transition() -> None:
    """A meeting with notes taken in another app switches a few times a minute's worth over
    the last minutes; that is the meeting (NEUTRAL), not the work changing."""
    notes = dataclasses.replace(TRANSITIONING, quiet_tail_s=5.0)
    call = dataclasses.replace(notes, comm_share=0.85, work_share=0.15)
    assert classify(notes, CFG, Context(notes, call, 5.0, 1.0)).state is S.TRANSITIONING
    attending = classify(notes, CFG, Context(notes, call, 5.0, 1.0, returns=3))
    assert attending.score(S.TRANSITIONING) == 0.0 and attending.state is S.NEUTRAL
