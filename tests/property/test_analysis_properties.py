"""Hypothesis: features and rules never crash and stay in range; hysteresis invariants."""

from __future__ import annotations

import dataclasses
import math
import random

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
@given(st.lists(wellformed_events(), min_size=2, max_size=30), st.randoms(use_true_random=False))
def test_events_tied_on_ts_seq_and_kind_give_the_same_features_in_any_order(
    events: list[RawEvent], rnd: random.Random
) -> None:
    # a host that repeats a seq at one instant: only the attributes tell such events apart,
    # and the features must not depend on which of them arrived first (in the span and as
    # the earlier focus that says which app was in front at its start)
    tied = [dataclasses.replace(e, ts=T0 + 5.0 * (i % 3), seq=7) for i, e in enumerate(events)]
    shuffled = rnd.sample(tied, len(tied))
    for start in (T0, T0 + 1.0):
        f = compute_features(tied, start, T0 + 30)
        check_features(f)
        assert compute_features(shuffled, start, T0 + 30) == f


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


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.floats(min_value=-300.0, max_value=0.0),
                st.integers(1, 50),
                st.sampled_from(["key", "mouse", "focus"]),
            ),
            max_size=25,
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_analyzer_keeps_every_recent_event_once_and_in_order(
    batches: list[list[tuple[float, int, str]]],
) -> None:
    """Batches overlap and may bring events older than ones already kept (a late host): the
    kept events stay sorted by (ts, seq), each once, exactly those of the last minutes."""
    analyzer = WindowAnalyzer()
    seen: dict[tuple[str, int, float, str], RawEvent] = {}
    end = T0
    for batch in batches:
        end += 10.0
        events = tuple(RawEvent("h", "s", seq, kind, end + dt) for dt, seq, kind in batch)
        analyzer.analyze(end - 30.0, end, events)
        for e in events:
            seen.setdefault((e.session_id, e.seq, e.ts, e.kind), e)
        kept = analyzer._events
        keep_from = end - max(CFG.context_s, CFG.focus_s) - 1.0
        assert [(e.ts, e.seq) for e in kept] == sorted((e.ts, e.seq) for e in kept)
        assert analyzer._event_keys == {(e.session_id, e.seq, e.ts, e.kind) for e in kept}
        assert len(analyzer._event_keys) == len(kept)
        assert analyzer._event_keys == {k for k in seen if k[2] >= keep_from}
