"""Hypothesis: features and rules never crash and stay in range; hysteresis invariants."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.messages import FocusState, RawEvent
from modules.analysis import WindowAnalyzer
from modules.analysis.features import WindowFeatures, compute_features
from modules.analysis.rules import AnalysisConfig, Classification, StateTracker, classify

T0 = 1_764_230_400.0
CFG = AnalysisConfig()
STATES = list(FocusState)

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
attr_names = st.sampled_from(
    ["correction", "speed", "clicks", "span_ms", "category", "app_id", "duration_s", "x"]
)
kinds = st.sampled_from(["key", "mouse", "focus", "idle", "ping", "other"])
timestamps = st.one_of(
    st.floats(min_value=T0 - 60, max_value=T0 + 90, allow_nan=False),
    st.sampled_from([T0, T0 + 10.0, T0 + 30.0, math.nan, math.inf, -math.inf]),
)


@st.composite
def raw_events(draw: st.DrawFn) -> RawEvent:
    attrs = tuple(draw(st.lists(st.tuples(attr_names, scalars), max_size=4)))
    return RawEvent("h", "s", draw(st.integers(0, 10**6)), draw(kinds), draw(timestamps), attrs)


@st.composite
def wellformed_events(draw: st.DrawFn) -> RawEvent:
    kind = draw(st.sampled_from(["key", "mouse", "focus", "idle"]))
    ts = draw(st.floats(min_value=T0 - 30, max_value=T0 + 40, allow_nan=False))
    seq = draw(st.integers(1, 10**6))
    attrs: tuple[tuple[str, float | int | bool | str], ...]
    if kind == "key":
        attrs = (("correction", draw(st.booleans())),)
    elif kind == "mouse":
        attrs = (
            ("speed", draw(st.floats(0, 100_000))),
            ("clicks", draw(st.integers(0, 10_000))),
            ("span_ms", draw(st.integers(1, 3_600_000))),
        )
    elif kind == "focus":
        attrs = (
            ("category", draw(st.sampled_from(["code", "media", "browser", "other"]))),
            ("app_id", draw(st.sampled_from(["a", "b", "c", "d"]))),
        )
    else:
        attrs = (("duration_s", draw(st.floats(0, 86_400))),)
    return RawEvent("h", "s", seq, kind, ts, attrs)


def check_features(f: WindowFeatures) -> None:
    for field in dataclasses.fields(f):
        value = getattr(f, field.name)
        assert isinstance(value, float) and math.isfinite(value), (field.name, value)
        assert value >= 0.0, (field.name, value)
    for share in (
        "mouse_active_frac",
        "dominant_app_share",
        "work_share",
        "comm_share",
        "browser_share",
        "leisure_share",
        "idle_frac",
        "typing_duty",
        "rapid_switch_ratio",
        "correction_rate",
    ):
        assert 0.0 <= getattr(f, share) <= 1.0, share


def check_classification(c: Classification) -> None:
    assert 0.0 <= c.confidence <= 1.0
    assert [s for s, _ in c.scores] and {s for s, _ in c.scores} == set(STATES)
    assert all(0.0 <= v <= 1.0 for _, v in c.scores)
    assert c.score(c.state) == max(v for _, v in c.scores)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(raw_events(), max_size=40),
    st.floats(min_value=0.0, max_value=120.0),
    st.lists(raw_events(), max_size=5),
)
def test_features_never_crash_on_arbitrary_events(
    events: list[RawEvent], length: float, context: list[RawEvent]
) -> None:
    f = compute_features(events, T0, T0 + length, context=context)
    check_features(f)
    check_classification(classify(f, CFG))


@settings(max_examples=100, deadline=None)
@given(st.lists(wellformed_events(), max_size=60))
def test_unsorted_duplicate_and_identical_timestamps_give_the_same_features(
    events: list[RawEvent],
) -> None:
    f = compute_features(events, T0, T0 + 30)
    check_features(f)
    assert compute_features(list(reversed(events)), T0, T0 + 30) == f
    same_ts = [dataclasses.replace(e, ts=T0 + 5.0) for e in events]
    check_features(compute_features(same_ts, T0, T0 + 30))


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        WindowFeatures,
        **{
            f.name: st.floats(min_value=0.0, max_value=1e6, allow_nan=False)
            for f in dataclasses.fields(WindowFeatures)
        },
    )
)
def test_confidence_always_in_unit_interval(f: WindowFeatures) -> None:
    check_classification(classify(f, CFG))


classifications = st.builds(
    lambda s, c: Classification(s, c, tuple((x, c if x is s else 0.0) for x in STATES)),
    st.sampled_from(STATES),
    st.floats(0.0, 1.0),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(STATES), st.integers(1, 6), st.integers(1, 12), classifications)
def test_one_odd_window_never_flips_the_state(
    state: FocusState, before: int, after: int, odd: Classification
) -> None:
    tracker = StateTracker(change_min_confidence=0.0)
    normal = Classification(state, 0.9, tuple((x, 0.9 if x is state else 0.0) for x in STATES))
    t = 0.0
    seen = []
    for _ in range(before):
        t += 10.0
        seen.append(tracker.update(t, normal))
    t += 10.0
    seen.append(tracker.update(t, odd))
    for _ in range(after):
        t += 10.0
        seen.append(tracker.update(t, normal))
    assert all(step.state is state for step in seen)
    assert all(step.transition is None for step in seen)


@settings(max_examples=200, deadline=None)
@given(st.lists(classifications, max_size=40))
def test_every_change_is_corroborated_by_an_earlier_window(
    windows: list[Classification],
) -> None:
    """A change goes to the window's own raw state, and an earlier window since the last change
    showed it too (two votes); time in state is never negative and the blip rule never gives
    more than the time since the first window."""
    tracker = StateTracker()
    t = 0.0
    shown: set[FocusState] = set()
    prev_state: FocusState | None = None
    for full in windows:
        t += 10.0
        step = tracker.update(t, full)
        assert 0.0 <= step.confidence <= 1.0
        assert 0.0 <= step.time_in_state_s <= t - 10.0
        if prev_state is not None and step.state is not prev_state:
            assert step.transition is not None and step.transition.at == t
            assert step.state is full.state
            assert step.state in shown
            shown = set()
        else:
            shown.add(full.state)
        prev_state = step.state


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(wellformed_events(), max_size=20), min_size=1, max_size=8))
def test_analyzer_time_in_state_is_event_time(batches: list[list[RawEvent]]) -> None:
    analyzer = WindowAnalyzer()
    end = T0
    for events in batches:
        end += 10.0
        r = analyzer.analyze(end - 30.0, end, tuple(events))
        assert r.step.time_in_state_s <= end - (T0 + 10.0) + 1e-9
        check_classification(r.full)
        complete = r.complete()
        assert complete.window_end == end and 0.0 <= complete.confidence <= 1.0
