"""Window features on hand-built event sequences (docs/ANALYSIS.md §2)."""

from __future__ import annotations

import math

import pytest

from bus.messages import RawEvent
from modules.analysis.features import FeatureError, FeatureParams, compute_features

T0 = 1_764_230_400.0


def key(ts: float, seq: int = 0, correction: bool = False) -> RawEvent:
    return RawEvent("h", "s", seq, "key", ts, (("correction", correction),))


def mouse(ts: float, speed: float = 300.0, clicks: int = 0, span_ms: int = 1000) -> RawEvent:
    return RawEvent(
        "h", "s", 0, "mouse", ts, (("speed", speed), ("clicks", clicks), ("span_ms", span_ms))
    )


def focus(ts: float, app: str, category: str = "code") -> RawEvent:
    return RawEvent("h", "s", 0, "focus", ts, (("category", category), ("app_id", app)))


def idle(ts: float, duration: float) -> RawEvent:
    return RawEvent("h", "s", 0, "idle", ts, (("duration_s", duration),))


def test_empty_window_has_no_activity_and_a_full_quiet_tail() -> None:
    f = compute_features([], T0, T0 + 30)
    assert f.key_count == 0 and f.keys_per_min == 0 and f.iki_n == 0
    assert f.switches == 0 and f.dominant_app_share == 1.0
    assert f.quiet_tail_s == 30.0 and f.mouse_active_frac == 0.0


def test_steady_typing_every_150_ms() -> None:
    keys = [key(T0 + i * 0.15, i) for i in range(200)]  # 0 .. 29.85 s
    f = compute_features(keys, T0, T0 + 30)
    assert f.key_count == 200 and f.keys_per_min == pytest.approx(400.0)
    assert f.iki_mean_ms == pytest.approx(150.0) and f.iki_median_ms == pytest.approx(150.0)
    assert f.iki_cv == pytest.approx(0.0, abs=1e-5) and f.iki_rcv == pytest.approx(0.0, abs=1e-5)
    assert f.burst_count == 1 and f.burst_mean_keys == 200
    assert f.typing_duty == pytest.approx(29.85 / 30)
    assert f.pause_count == 0 and f.quiet_tail_s == pytest.approx(0.15)


def test_pauses_split_bursts_and_are_kept_out_of_the_rhythm() -> None:
    # three bursts of 10 keys at 100 ms, separated by 5 s pauses
    keys = []
    t = T0
    for _ in range(3):
        for _ in range(10):
            keys.append(key(t))
            t += 0.1
        t += 5.0 - 0.1
    f = compute_features(keys, T0, T0 + 30)
    assert f.burst_count == 3 and f.burst_mean_keys == 10
    assert f.pause_count == 2 and f.longest_pause_s == pytest.approx(5.0)
    assert f.iki_n == 27 and f.iki_mean_ms == pytest.approx(100.0)
    assert f.iki_cv == pytest.approx(0.0, abs=1e-5)


def test_a_hesitation_moves_the_cv_but_hardly_the_robust_cv() -> None:
    gaps = [0.15] * 20 + [1.5] + [0.15] * 20
    t, keys = T0, [key(T0)]
    for g in gaps:
        t += g
        keys.append(key(t))
    f = compute_features(keys, T0, T0 + 30)
    assert f.iki_cv > 0.9  # one 1.5 s gap among 150 ms gaps
    assert f.iki_rcv < 0.05 and f.iki_median_ms == pytest.approx(150.0)


def test_the_core_rhythm_leaves_out_hesitations_and_is_finer_than_a_coarse_timer() -> None:
    """``iki_core_ms`` / ``iki_core_cv``: mean and CV of the intervals within [0.5, 2] x the
    median.  A hesitation is left out; on a 15.625 ms timer (Windows' default) the median moves
    in whole ticks (a sixth of a 90 ms interval), the core mean follows a 7 % quicker rhythm."""
    gaps = [0.15] * 20 + [1.5, 0.05] + [0.15] * 20
    t, keys = T0, [key(T0)]
    for g in gaps:
        t += g
        keys.append(key(t))
    f = compute_features(keys, T0, T0 + 30)
    assert f.iki_core_ms == pytest.approx(150.0) and f.iki_core_cv == pytest.approx(0.0, abs=1e-6)

    tick = 1 / 64

    def ticked(iki: float) -> float:
        # intervals spread evenly over +-25 % around iki, each stamp rounded to the timer's tick
        t, stamps = 0.0, []
        for i in range(300):
            t += iki * (0.75 + 0.5 * ((i * 0.618034) % 1.0))
            stamps.append(math.floor(t / tick) * tick)
        return compute_features([key(T0 + x, i) for i, x in enumerate(stamps)], T0, T0 + 60)

    usual, quicker = ticked(0.090), ticked(0.090 * 0.93)
    for f in (usual, quicker):
        assert (f.iki_median_ms / (1000 * tick)) % 1.0 == pytest.approx(0.0, abs=1e-6)
    assert quicker.iki_core_ms / usual.iki_core_ms == pytest.approx(0.93, abs=0.015)


def test_correction_rate() -> None:
    keys = [key(T0 + i, correction=i % 4 == 0) for i in range(8)]
    f = compute_features(keys, T0, T0 + 30)
    assert f.correction_rate == pytest.approx(2 / 8)


def test_mouse_activity_speed_and_clicks() -> None:
    evs = [mouse(T0 + 1, 200, 1), mouse(T0 + 2, 400, 0), mouse(T0 + 10, 0.0, 0)]
    f = compute_features(evs, T0, T0 + 20)
    assert f.mouse_active_s == pytest.approx(2.0)  # the resting sample does not count
    assert f.mouse_active_frac == pytest.approx(0.1)
    assert f.mouse_speed_mean == pytest.approx(300.0)
    assert f.clicks == 1 and f.clicks_per_min == pytest.approx(3.0)


def test_resting_pointer_samples_are_not_input() -> None:
    evs = [key(T0 + 2), *(mouse(T0 + t, 0.0, 0) for t in range(3, 30))]
    f = compute_features(evs, T0, T0 + 30)
    assert f.quiet_tail_s == pytest.approx(28.0) and f.input_per_min == pytest.approx(2.0)


def test_mouse_span_is_clipped_to_the_window() -> None:
    f = compute_features([mouse(T0 + 0.5, 100, 0, span_ms=3000)], T0, T0 + 30)
    assert f.mouse_active_s == pytest.approx(0.5)


def test_switches_dwell_rapid_ratio_and_dominant_share_with_context() -> None:
    context = [focus(T0 - 100, "editor")]
    evs = [
        focus(T0 + 10, "chat", "communication"),  # editor visit of 110 s ends
        focus(T0 + 14, "video", "media"),  # chat visit of 4 s: rapid
        focus(T0 + 14.5, "video", "media"),  # same app again: not a switch
        focus(T0 + 20, "editor"),  # video visit of 6 s: rapid
    ]
    f = compute_features(evs, T0, T0 + 30, context=context)
    assert f.switches == 3 and f.switches_per_min == pytest.approx(6.0)
    assert f.rapid_switch_ratio == pytest.approx(2 / 3)
    assert f.visit_min_s == pytest.approx(4.0)
    assert f.visit_mean_s == pytest.approx((110 + 4 + 6) / 3)
    assert f.dominant_app_share == pytest.approx(20 / 30)  # editor 10 s + 10 s
    assert f.work_share == pytest.approx(20 / 30)
    assert f.comm_share == pytest.approx(4 / 30) and f.leisure_share == pytest.approx(6 / 30)
    assert f.distinct_categories == 3


def test_the_switch_rate_since_a_settled_app_was_left() -> None:
    """docs/ANALYSIS.md §2: after 150 s in the editor (settled_s 120), the switches after
    leaving it count at their own rate, over at least settled_span_s (90 s)."""
    context = [focus(T0 - 150, "editor")]
    evs = [
        focus(T0 + 0, "docs", "docs"),  # leaves the settled editor: not counted
        focus(T0 + 30, "term", "terminal"),  # new: 1
        focus(T0 + 50, "docs", "docs"),  # back within return_s: ½
        focus(T0 + 70, "browser", "browser"),  # new: 1
        focus(T0 + 120, "sheet", "office"),  # new: 1
    ]
    f = compute_features(evs, T0 - 90, T0 + 150, context=context)
    assert f.weighted_switches_per_min == pytest.approx(4.5 * 60 / 240)
    assert f.unsettled_switches_per_min == pytest.approx(3.5 * 60 / 150)
    # 100 s after leaving, the rate is over those 100 s; less than 90 s counts as 90 s
    later = compute_features(evs[:4], T0 - 140, T0 + 100, context=context)
    assert later.unsettled_switches_per_min == pytest.approx(2.5 * 60 / 100)
    sooner = compute_features(evs[:4], T0 - 140, T0 + 80, context=context)
    assert sooner.unsettled_switches_per_min == pytest.approx(2.5 * 60 / 90)
    # fewer than two (a new switch and a return: 1.5) is not a rate of its own yet
    few = compute_features(evs[:3], T0 - 140, T0 + 60, context=context)
    assert few.unsettled_switches_per_min == few.weighted_switches_per_min
    assert few.weighted_switches_per_min == pytest.approx(2.5 * 60 / 200)
    # not settled (the editor only 100 s in front): the span's rate
    unsettled_editor = [focus(T0 - 100, "editor")]
    short = compute_features(evs, T0 - 90, T0 + 150, context=unsettled_editor)
    assert short.unsettled_switches_per_min == short.weighted_switches_per_min
    # the threshold is a parameter
    loose = FeatureParams(settled_s=90.0)
    looser = compute_features(evs, T0 - 90, T0 + 150, loose, context=unsettled_editor)
    assert looser.unsettled_switches_per_min == pytest.approx(3.5 * 60 / 150)


def test_how_long_the_app_in_front_has_been_there() -> None:
    """``front_visit_s``: since the app in front at the span's end came to the front, before
    the span if so; an app announced again is no new visit; 0 with no focus information."""
    context = [focus(T0 - 500, "editor"), focus(T0 - 100, "editor")]  # announced again
    f = compute_features([key(T0 + 1)], T0, T0 + 30, context=context)
    assert f.front_visit_s == pytest.approx(530)
    f = compute_features([focus(T0 + 12, "terminal", "terminal")], T0, T0 + 30, context=context)
    assert f.front_visit_s == pytest.approx(18)
    assert compute_features([key(T0 + 1)], T0, T0 + 30).front_visit_s == 0


def test_first_focus_without_context_is_not_a_switch() -> None:
    f = compute_features([focus(T0 + 5, "editor")], T0, T0 + 30)
    assert f.switches == 0
    assert f.dominant_app_share == pytest.approx(25 / 30)  # 5 s unknown, 25 s editor


def test_earlier_events_in_the_batch_serve_as_context_for_a_slice() -> None:
    evs = [focus(T0 + 1, "editor"), focus(T0 + 25, "chat", "communication")]
    f = compute_features(evs, T0 + 20, T0 + 30)
    assert f.switches == 1  # editor was in front when the slice began
    assert f.visit_min_s == pytest.approx(24.0)


def test_idle_spans_overlap_and_quiet_tail() -> None:
    evs = [key(T0 + 1), idle(T0 + 25, 40.0)]  # idle from T0-15 to T0+25
    f = compute_features(evs, T0, T0 + 30)
    assert f.idle_frac == pytest.approx(25 / 30)
    assert f.quiet_tail_s == pytest.approx(29.0)


def test_events_outside_the_window_are_ignored() -> None:
    evs = [key(T0 - 5), key(T0 + 31), key(T0 + 2)]
    assert compute_features(evs, T0, T0 + 30).key_count == 1


def test_params_change_definitions() -> None:
    keys = [key(T0 + i * 1.5) for i in range(10)]
    assert compute_features(keys, T0, T0 + 30).burst_count == 0
    loose = FeatureParams(burst_gap_s=2.0)
    assert compute_features(keys, T0, T0 + 30, loose).burst_count == 1


@pytest.mark.parametrize("bounds", [(math.nan, T0), (T0, math.inf), ("a", T0)])
def test_unusable_window_bounds_are_refused_clearly(bounds: tuple[object, object]) -> None:
    with pytest.raises(FeatureError, match="window bounds"):
        compute_features([], bounds[0], bounds[1])  # type: ignore[arg-type]


def test_pairs_are_named_finite_floats() -> None:
    pairs = compute_features([key(T0 + 1), key(T0 + 1.2)], T0, T0 + 30).as_pairs()
    names = [n for n, _ in pairs]
    assert len(names) == len(set(names)) and "keys_per_min" in names
    assert all(isinstance(v, float) and math.isfinite(v) for _, v in pairs)


def test_a_held_keys_auto_repeat_is_not_rhythm_but_a_fast_roll_over_is() -> None:
    """Typing at 150 ms with an arrow key held for a second (33 ms auto-repeat): the repeats
    are left out of the typing intervals, so median, core and spread are the typing's; one
    30 ms roll-over between two keys, or two in a row, is still typing."""
    typed = [T0 + 0.15 * i for i in range(60)]  # 59 intervals of 150 ms
    t = typed[-1] + 0.5  # the key goes down after a normal gap, then repeats
    held = [t + 0.033 * i for i in range(31)]  # 30 repeat intervals
    after = [held[-1] + 0.15 * (i + 1) for i in range(20)]
    f = compute_features([key(x, i) for i, x in enumerate(typed + held + after)], T0, T0 + 30)
    assert f.key_count == len(typed) + len(held) + len(after)
    assert f.iki_n == 59 + 1 + 20  # the 0.5 s key-down before the repeats is a typing gap
    assert f.iki_median_ms == pytest.approx(150.0)
    assert f.iki_core_ms == pytest.approx(150.0, rel=0.01)
    # roll-overs: a single fast gap and a pair of them stay in
    rolled = [T0, T0 + 0.15, T0 + 0.18, T0 + 0.33, T0 + 0.36, T0 + 0.39, T0 + 0.54, T0 + 0.69]
    r = compute_features([key(x, i) for i, x in enumerate(rolled)], T0, T0 + 30)
    assert r.iki_n == len(rolled) - 1
