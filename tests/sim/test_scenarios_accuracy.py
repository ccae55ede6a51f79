"""The tuning family (``hw_sim.scenarios``) classified as scripted: the figures of issue 8
(docs/ANALYSIS.md §7 has the scoring rule and the numbers).

Each script is generated for a typist (flow IKI 90, 150 or 250 ms: ``PERSONAS``) at a random
phase of the 10 s window grid, windowed exactly as Storage windows events and replayed through
the analyzer.  A window is scored when it lies inside one scripted segment and ends at least
60 s after the segment started.  The same figures on the independent family (bench/) are in
docs/ANALYSIS.md; they are not asserted here because that family is not ours to tune on.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections import defaultdict

import pytest

from bus.messages import FocusState
from hw_sim.scenarios import (
    DEFAULT_START,
    PERSONAS,
    SCRIPTS,
    STEADY,
    Scenario,
    generate,
    replay,
    score,
)
from modules.analysis import WindowResult

# the module's `runs` fixture (every script replayed through the analyzer, pure CPU) counts
# against its first test's timeout: 45-50 s on a core of its own, past the suite's 120 s on a
# busy 2-core machine where the suite's two workers share the cores with other work (seen at
# load 8); the limit is for a hang, so more room than the default
pytestmark = pytest.mark.timeout(600)

S = FocusState
Run = tuple[Scenario, list[WindowResult]]
ORIGINAL = ("flow", "hyperfocus", "distraction", "idle", "workday")
WORDS = tuple(n for n in SCRIPTS if n.startswith("words_"))
"""Word-and-phrase typing: harder than the rest; asserted apart at the level reached so far
(docs/ANALYSIS.md §7 lists what still misses issue 8's targets on them)."""


def play(name: str, persona: str, seed: int = 1) -> Run:
    start = DEFAULT_START + random.Random(seed).uniform(0.0, 10.0)
    sc = generate(name, SCRIPTS[name], seed=seed, start=start, perturb=PERSONAS[persona])
    return sc, replay(sc)


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, str], Run]:
    """Every script once for every typist (the original five for the typical one only)."""
    out = {}
    for name in SCRIPTS:
        if name in WORDS:
            continue
        personas = ("typical",) if name in ORIGINAL else tuple(PERSONAS)
        for persona in personas:
            out[(name, persona)] = play(name, persona)
    return out


def test_windows_right_per_state_for_every_typist(runs: dict[tuple[str, str], Run]) -> None:
    right: dict[tuple[str, S], list[int]] = defaultdict(lambda: [0, 0])
    for (_, persona), (sc, results) in runs.items():
        for r in results:
            span = next((x for x in sc.truth if x.start <= r.window_start < x.end), None)
            if span is None or r.window_end > span.end or r.window_end < span.start + 60:
                continue
            for key in ((persona, span.state), ("all", span.state)):
                right[key][0] += span.accepts(r.step.state)
                right[key][1] += 1
    target = {S.FLOW: 0.9, S.HYPERFOCUS: 0.95, S.NEUTRAL: 0.85, S.TRANSITIONING: 0.6,
              S.DISTRACTED: 0.9, S.IDLE: 0.95}  # fmt: skip
    for (persona, state), (ok, n) in right.items():
        assert n >= 30, (persona, state, n)
        assert ok / n >= target[state], (persona, state, ok / n)


def test_steady_activities_change_state_at_most_four_times_an_hour(
    runs: dict[tuple[str, str], Run],
) -> None:
    for (name, persona), (sc, results) in runs.items():
        if name not in (*STEADY, "reading", "design"):
            continue
        changes = sum(1 for r in results if r.step.transition is not None)
        per_hour = changes / ((sc.end - sc.start) / 3600)
        assert per_hour <= 4.0, (name, persona, per_hour)


def test_a_long_flow_gives_an_unbroken_quarter_hour_and_hyperfocus_its_ninety_minutes(
    runs: dict[tuple[str, str], Run],
) -> None:
    for (name, persona), (_, results) in runs.items():
        if name in ("steady_flow", "thinker"):
            best = max(r.step.time_in_state_s for r in results if r.step.state is S.FLOW)
            assert best >= 900, (name, persona, best)
        if name == "long_hyperfocus":
            best = max(r.step.time_in_state_s for r in results if r.step.state is S.HYPERFOCUS)
            assert best >= 90 * 60, (name, persona, best)


def test_readers_and_designers_are_focused_work_and_never_idle(
    runs: dict[tuple[str, str], Run],
) -> None:
    for (name, persona), (sc, results) in runs.items():
        if name not in ("reading", "design"):
            continue
        states = [r.step.state for r in results if r.window_end >= sc.start + 60]
        focused = sum(s in (S.FLOW, S.NEUTRAL) for s in states) / len(states)
        assert focused >= 0.8 and S.IDLE not in states, (name, persona, focused)


def test_changes_are_reported_in_time(runs: dict[tuple[str, str], Run]) -> None:
    delays: dict[S, list[float]] = defaultdict(list)
    missed = []
    for (name, persona), (sc, results) in runs.items():
        for _, before, after, delay in score(sc, results).delays:
            if delay is None:
                missed.append((name, persona, before, after))
            else:
                delays[after].append(delay)

    def p90(xs: list[float]) -> float:
        return sorted(xs)[min(len(xs) - 1, int(0.9 * len(xs)))]

    # measured on this family (docs §7): IDLE and DISTRACTED within a minute; FLOW a little over
    # a minute; HYPERFOCUS within three (its density is judged against the person's own flow
    # over four minutes: a later hyperfocus rather than flow read as hyperfocus, §7); NEUTRAL
    # after distraction and TRANSITIONING (seen over minutes) later
    bound = {S.IDLE: 60, S.DISTRACTED: 40, S.FLOW: 80, S.NEUTRAL: 150, S.HYPERFOCUS: 180,
             S.TRANSITIONING: 240}  # fmt: skip
    for state, xs in delays.items():
        assert p90(xs) <= bound[state], (state, sorted(xs))
    assert statistics.median(delays[S.IDLE]) <= 60
    assert len(missed) <= 1, missed


def test_the_scoring_is_not_vacuous(runs: dict[tuple[str, str], Run]) -> None:
    """A classifier that always says FLOW must fail the same bar (the test can fail)."""
    sc, results = runs[("workday", "typical")]
    s = score(sc, results)
    flow_windows = sum(
        1
        for r in results
        for span in sc.truth
        if span.state is S.FLOW and span.start + 60 <= r.window_end <= span.end
    )
    assert flow_windows / s.counted < 0.5 < s.accuracy


@pytest.mark.parametrize("persona", tuple(PERSONAS))
def test_word_typing_hyperfocus_and_flow_are_told_apart(persona: str) -> None:
    """Word-and-phrase typing (sentence pauses, IKI spread, backspace runs, trips away): the old
    absolute density rule read this hyperfocus as FLOW; judged against the person's own flow
    duty it is HYPERFOCUS, and their steady flow stays FLOW."""
    for name, state, floor in (
        ("words_long_hyperfocus", S.HYPERFOCUS, 0.8),
        ("words_steady_flow", S.FLOW, 0.85),
    ):
        sc, results = play(name, persona)
        span = next(x for x in sc.truth if x.state is state)
        got = [
            r.step.state
            for r in results
            if r.window_start >= span.start and span.start + 60 <= r.window_end <= span.end
        ]
        assert got.count(state) / len(got) >= floor, (name, persona, got.count(state) / len(got))


@pytest.mark.parametrize("persona", tuple(PERSONAS))
def test_hopping_that_slows_now_and_then_stays_distracted(persona: str) -> None:
    """Hopping with a heavy tail (now and then half a minute or more on one app): the old rules
    flapped DISTRACTED <-> TRANSITIONING about 13 times an hour on it; issue 8 wants at most 4
    changes an hour on a steady activity (counted, as bench/analysis.py does, from two minutes
    after the start)."""
    sc, results = play("words_steady_distracted", persona)
    inside = [r for r in results if r.window_end >= sc.start + 120]
    changes = sum(a.step.state is not b.step.state for a, b in itertools.pairwise(inside))
    hours = (inside[-1].window_end - inside[0].window_end) / 3600
    assert changes / hours <= 4.0, (persona, changes / hours)
    right = sum(r.step.state is S.DISTRACTED for r in inside) / len(inside)
    assert right >= 0.9, (persona, right)


def test_a_flow_whose_pace_varies_stays_flow_for_every_typist() -> None:
    """A flow that starts lighter (shorter phrases, longer pauses) and has brisker stretches
    later, as a typist's pace varies over a session: every typist's flow must stay FLOW on
    >= 90 % of the scored windows (issue 8's FLOW target).  A brisker stretch is as dense as a
    hyperfocus against the flow duty learnt from the lighter first minutes, so density alone read
    part of it as HYPERFOCUS (the independent family's FLOW worst typist of 84.6 %); its rhythm
    is the person's flow rhythm, not quicker and steadier, and that keeps it FLOW
    (docs/ANALYSIS.md §3, ``dense_rhythm``)."""
    worst = {}
    for persona in PERSONAS:
        sc, results = play("words_varied_flow", persona)
        worst[persona] = score(sc, results).accuracy
    assert min(worst.values()) >= 0.9, worst
