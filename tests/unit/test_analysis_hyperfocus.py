"""Hyperfocus as SPEC §4 defines it (flow that is denser, steadier and lasts), judged against the
person's own flow density, and a baseline that never learns from a hyperfocus session.

Traces are the tuning family's word-and-phrase typing (``hw_sim.scenarios.WORDS_*``): sentence
pauses over 4 s, an IKI spread like real typing, backspace runs, short trips to the terminal.
The old density rule (keys/min over 300, no pause over 3-4.5 s, robust CV under 0.35-0.45) read
this hyperfocus as FLOW, and the baseline learnt from the session itself."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from bus.messages import FocusState
from hw_sim.scenarios import (
    DEFAULT_START,
    WORDS_FLOW,
    WORDS_HYPERFOCUS,
    WORDS_NEUTRAL,
    Perturb,
    Segment,
    generate,
    windows,
)
from modules.analysis import WindowAnalyzer
from modules.analysis.baseline import Baseline
from modules.analysis.features import WindowFeatures
from modules.analysis.rules import AnalysisConfig, Context, classify

S = FocusState


def _run(
    minutes_flow: float, minutes_hyper: float, iki: float, seed: int = 3
) -> tuple[list[tuple[float, FocusState, float, float, float]], float]:
    """(window_end, state, time in state, baseline windows, baseline flow duty) per window and
    the time the hyperfocus segment starts."""
    sc = generate(
        "hf",
        (
            Segment(S.FLOW, minutes_flow, WORDS_FLOW),
            Segment(S.HYPERFOCUS, minutes_hyper, WORDS_HYPERFOCUS),
        ),
        seed=seed,
        start=DEFAULT_START + 4.0,
        perturb=Perturb(iki=iki),
    )
    an = WindowAnalyzer()
    out = []
    for b in windows(sc.raw_events(), sc.start, sc.end):
        r = an.analyze(b.window_start, b.window_end, b.events)
        out.append(
            (
                b.window_end,
                r.step.state,
                r.step.time_in_state_s,
                an.baseline.windows,
                an.baseline.flow_duty,
            )
        )
    return out, sc.truth[1].start


def _at_rhythm(keys_per_min: int, burst_mean_keys: int, typing_duty: float) -> WindowFeatures:
    """Four minutes in one work app typed at the rhythm (200 ms, CV 0.32) the rhythm tests give
    as the person's flow rhythm."""
    return WindowFeatures(
        duration_s=240,
        key_count=4 * keys_per_min,
        iki_n=4 * keys_per_min - 40,
        keys_per_min=keys_per_min,
        iki_median_ms=195,
        iki_rcv=0.35,
        iki_core_ms=200.0,
        iki_core_cv=0.32,
        burst_mean_keys=burst_mean_keys,
        typing_duty=typing_duty,
        dominant_app_share=1.0,
        work_share=1.0,
        quiet_tail_s=0.5,
    )


def _rhythm_state(
    cfg: AnalysisConfig, long: WindowFeatures, flow_duty: float, **kw: object
) -> FocusState:
    """The state of the last minute of ``long`` (typed like it), with ``kw`` as the rest of the
    context (``flow_rhythm``, ``in_session``, ``hyperfocus_s``)."""
    keys = round(long.keys_per_min)
    minute = dataclasses.replace(long, duration_s=60, key_count=keys, iki_n=keys - 10)
    ctx = Context(minute, long, 0.5, 1.3, flow_duty, **kw)  # type: ignore[arg-type]
    return classify(minute, cfg, ctx).state


def test_the_baseline_learns_nothing_while_in_hyperfocus() -> None:
    rows, hf_start = _run(6, 40, iki=1.0)
    assert any(r[0] > hf_start and r[1] is S.HYPERFOCUS for r in rows)
    stays = [
        (a, b) for a, b in itertools.pairwise(rows) if a[1] is S.HYPERFOCUS and b[1] is S.HYPERFOCUS
    ]
    assert len(stays) >= 60, "a long stay in HYPERFOCUS"
    # neither the speed nor the flow density moved while the state was HYPERFOCUS
    assert all(b[3] == a[3] and b[4] == a[4] for a, b in stays)


def test_flow_density_is_the_persons_own_so_a_fast_typists_hyperfocus_is_seen() -> None:
    """A 90 ms typist's pauses are the same seconds as anyone's, so their flow has a low typing
    duty and their hyperfocus one that is ordinary flow for a slower typist: only the learnt
    flow density tells them apart."""
    rows, hf_start = _run(6, 20, iki=0.6)
    flow = [r for r in rows if hf_start - 240 <= r[0] <= hf_start]
    hyper = [r for r in rows if r[0] >= hf_start + 180]
    assert all(r[1] is S.FLOW for r in flow)
    assert min(r[4] for r in rows) < Baseline().flow_duty - 0.05, "it learnt their lighter flow"
    assert sum(r[1] is S.HYPERFOCUS for r in hyper) / len(hyper) >= 0.6


def test_a_session_right_after_a_short_flow_is_not_learnt_as_the_persons_flow() -> None:
    """A new user, four minutes of flow, then a session: the session's first minutes (read as
    FLOW while the four-minute span fills) are denser than the flow duty learnt so far, so they
    count only once confirmed and are dropped when HYPERFOCUS comes; before that they raised
    the bar the session had to pass (a 250 ms typist's session was HYPERFOCUS 52 % of the time,
    the flow duty rose from 0.71 to 0.82)."""
    for iki in (0.6, 1.0, 1.67):
        rows, hf_start = _run(4, 20, iki=iki)
        at_start = [r for r in rows if r[0] <= hf_start][-1][4]
        during = [r for r in rows if r[0] > hf_start]
        assert max(r[4] for r in during) <= at_start + 0.04, iki
        share = sum(r[1] is S.HYPERFOCUS for r in during) / len(during)
        assert share >= 0.8, (iki, share)


def test_the_flow_duty_is_the_mean_of_the_flow_learnt_and_the_prior() -> None:
    """A mean, not a median: a new user's first noisy minutes of flow move it by their weight
    instead of snapping it to their own middle value."""
    b = Baseline()
    assert abs(b.flow_duty - b.flow_duty_prior) < 1e-9
    for _ in range(6):  # as much weight as the prior
        b.observe_flow(0.4)
    assert abs(b.flow_duty - (b.flow_duty_prior + 0.41) / 2) < 1e-3  # 0.41: the bin's middle
    assert abs(b.flow_duty_with([0.9] * 12) - (6 * 0.7 + 6 * 0.41 + 12 * 0.9) / 24) < 0.01
    assert b.flow_duty_with([float("nan"), 2.0]) == b.flow_duty  # nonsense is not counted


def test_a_slow_typists_steady_flow_is_not_mistaken_for_hyperfocus() -> None:
    rows, _ = _run(30, 1, iki=1.67, seed=5)
    states = [r[1] for r in rows if r[0] >= rows[0][0] + 120]
    assert states.count(S.HYPERFOCUS) / len(states) <= 0.1
    assert max(r[2] for r in rows if r[1] is S.FLOW) >= 15 * 60


def test_the_flow_density_round_trips_and_old_baselines_still_load() -> None:
    b = Baseline()
    for _ in range(200):
        b.observe_flow(0.5)
    assert abs(b.flow_duty - 0.5) < 0.03
    c = Baseline()
    assert c.restore(b.to_json()) and abs(c.flow_duty - b.flow_duty) < 1e-9
    old = {k: v for k, v in b.to_json().items() if k not in ("duty_hist", "flow_windows")}
    old["format"] = 1
    d = Baseline()
    assert d.restore(old) and d.flow_duty == Baseline().flow_duty
    bad = b.to_json() | {"duty_hist": [0.0] * 3}
    assert not Baseline().restore(bad)


def test_a_trip_to_the_terminal_does_not_end_a_hyperfocus_session() -> None:
    """Entering hyperfocus wants the last minutes in one app (dense_app_share); staying in it
    tolerates a trip away (dense_hold_app_share): a 100-minute session broke into FLOW for 80 s
    on such a trip and its 90-minute clock restarted."""

    dense = WindowFeatures(
        duration_s=240,
        key_count=1200,
        iki_n=1100,
        keys_per_min=300,
        iki_median_ms=150,
        iki_rcv=0.3,
        burst_mean_keys=60,
        typing_duty=0.9,
        dominant_app_share=0.75,  # the terminal: 60 s of the four minutes, 15 s of the last
        work_share=1.0,
        quiet_tail_s=0.5,
    )
    minute = dataclasses.replace(dense, duration_s=60, key_count=300)  # the trip in it too
    cfg = AnalysisConfig()
    entering = classify(minute, cfg, Context(minute, dense, 0.5, 1.0, 0.65, None))
    staying = classify(minute, cfg, Context(minute, dense, 0.5, 1.0, 0.65, 60.0))
    assert staying.state is S.HYPERFOCUS
    assert entering.state is S.FLOW  # entering wants one app


def test_a_settled_session_keeps_through_a_stretch_at_the_persons_flow_density() -> None:
    """After ``hyperfocus_settled_s`` in HYPERFOCUS, a slower stretch only a little denser than
    the person's flow does not end the session (an independent 210 ms typist's 100-minute session
    dipped to 0.72-0.74 duty against a flow duty of 0.7 and was FLOW a third of the time); in the
    first minutes of HYPERFOCUS, and outside it, the same stretch is FLOW. A settled session
    holds even at the person's flow density and ends only when clearly lighter."""

    cfg = AnalysisConfig()
    flow_duty = 0.7
    slower = WindowFeatures(
        duration_s=240,
        key_count=1000,
        iki_n=950,
        keys_per_min=250,
        iki_median_ms=160,
        iki_rcv=0.3,
        burst_mean_keys=40,
        typing_duty=flow_duty + 0.04,
        dominant_app_share=1.0,
        work_share=1.0,
        quiet_tail_s=0.5,
    )
    minute = dataclasses.replace(slower, duration_s=60, key_count=250, iki_n=240)

    def state(hyperfocus_s: float | None, duty: float = slower.typing_duty) -> S:
        """The state with ``hyperfocus_s`` in HYPERFOCUS when the last minute and the last
        four minutes have ``duty``."""
        ctx = Context(
            dataclasses.replace(minute, typing_duty=duty),
            dataclasses.replace(slower, typing_duty=duty),
            0.5,
            1.0,
            flow_duty,
            hyperfocus_s,
        )
        return classify(ctx.medium, cfg, ctx).state

    assert state(cfg.hyperfocus_settled_s) is S.HYPERFOCUS
    assert state(3600.0) is S.HYPERFOCUS
    assert state(cfg.hyperfocus_settled_s - 10) is S.FLOW
    assert state(None) is S.FLOW
    # a settled session holds at the person's own flow density (a new user's session dipped to
    # it once its duty became the flow duty learnt from four minutes of flow) ...
    assert state(3600.0, flow_duty) is S.HYPERFOCUS
    # ... and is over when the last four minutes are clearly lighter than their flow
    assert state(3600.0, flow_duty - 0.16 * (1.0 - flow_duty)) is S.FLOW


def test_a_short_flow_run_that_ends_in_ordinary_work_is_not_learnt_as_flow() -> None:
    """A minute or two of fluent typing inside ordinary work can read as FLOW; if the run ends in
    NEUTRAL before its flow observations are confirmed (``FLOW_LEARN_DELAY_S``), they are dropped:
    on the independent family such stretches taught a 170 ms typist a flow duty of 0.62 instead of
    0.66, and their real flow then read as HYPERFOCUS."""
    from modules.analysis.engine import FLOW_LEARN_DELAY_S

    sc = generate(
        "blip",
        (
            Segment(S.NEUTRAL, 6),
            Segment(S.FLOW, 2.5, WORDS_FLOW),
            Segment(S.NEUTRAL, 8),
        ),
        seed=3,
        start=DEFAULT_START + 4.0,
    )
    an = WindowAnalyzer()
    states = []
    pending_seen = 0
    for b in windows(sc.raw_events(), sc.start, sc.end):
        states.append(an.analyze(b.window_start, b.window_end, b.events).step.state)
        pending_seen = max(pending_seen, len(an._pending_flow))
    assert S.FLOW in states and states[-1] is S.NEUTRAL
    assert pending_seen > 0  # the run was long enough to be observed ...
    flow_windows = states.count(S.FLOW)
    assert flow_windows * 10.0 < 60.0 + FLOW_LEARN_DELAY_S  # ... and ended before confirmation
    assert an.baseline.flow_windows == 0.0  # nothing learnt: the flow duty is the prior's
    assert an.baseline.flow_duty == pytest.approx(AnalysisConfig().baseline_flow_duty)


def test_the_flow_rhythm_is_learnt_only_after_minutes_of_flow_and_round_trips() -> None:
    """The flow rhythm has no population prior (a rhythm is personal): it says nothing until
    ``rhythm_min_windows`` flow windows are learnt; stored as format 3, formats 1-2 still load."""
    b = Baseline(rhythm_min_windows=18.0)
    assert not b.observe_rhythm(float("nan"), 0.3) and not b.observe_rhythm(200.0, 0.0)
    n = 0
    while b.flow_rhythm is None:
        assert b.observe_rhythm(200.0 if n % 2 else 210.0, 0.3)
        n += 1
    assert n in (18, 19)  # 18 windows' weight, a little decayed
    assert b.flow_rhythm == pytest.approx((205.0, 0.3), abs=0.3)
    c = Baseline(rhythm_min_windows=18.0)
    assert c.restore(b.to_json()) and c.flow_rhythm == pytest.approx(b.flow_rhythm)
    old = {
        k: v
        for k, v in b.to_json().items()
        if k not in ("rhythm_windows", "rhythm_iki_sum", "rhythm_cv_sum")
    }
    old["format"] = 2
    d = Baseline()
    assert d.restore(old) and d.flow_rhythm is None and d.flow_duty == pytest.approx(b.flow_duty)
    assert not Baseline().restore(b.to_json() | {"rhythm_cv_sum": -1.0})


def test_a_dense_stretch_at_the_persons_flow_rhythm_is_flow_a_quicker_steadier_one_hyperfocus() -> (
    None
):
    """SPEC §4: hyperfocus is flow that is denser *and steadier*.  Once the person's flow rhythm
    is known, a stretch as dense as a hyperfocus but at their flow's rhythm (a brisker stretch of
    the same flow) does not enter HYPERFOCUS; the same density typed quicker and steadier does.
    Without a learnt rhythm density alone decides, and resuming a session from a lighter
    stretch (``in_session``) or staying in one is never held back by it."""

    cfg = AnalysisConfig()
    rhythm = (200.0, 0.32)
    dense = _at_rhythm(keys_per_min=275, burst_mean_keys=60, typing_duty=0.85)
    quicker = dataclasses.replace(dense, iki_core_ms=188.0, iki_core_cv=0.305)  # -6 %, -5 %

    def state(long: WindowFeatures, **kw: object) -> S:
        return _rhythm_state(cfg, long, 0.65, **kw)

    assert state(dense, flow_rhythm=rhythm) is S.FLOW
    assert state(quicker, flow_rhythm=rhythm) is S.HYPERFOCUS
    assert state(dense) is S.HYPERFOCUS  # no rhythm learnt yet: density decides
    assert state(dense, flow_rhythm=rhythm, in_session=True) is S.HYPERFOCUS
    assert state(dense, flow_rhythm=rhythm, hyperfocus_s=60.0) is S.HYPERFOCUS
    # documented switch: a ramp far below any gain turns the rhythm condition off
    cfg = AnalysisConfig(dense_rhythm=(-10.0, -10.0))
    assert state(dense, flow_rhythm=rhythm) is S.HYPERFOCUS


def test_a_lighter_stretch_of_a_hyperfocus_session_teaches_no_denser_flow() -> None:
    """FLOW within ``hyperfocus_blip_s`` of leaving HYPERFOCUS is a lighter stretch of the session
    (docs §5): only what is no denser than the person's flow is learnt from it.  Learning all of
    it raised a 210 ms typist's flow duty from 0.70 to 0.76 and taught the session's rhythm as
    theirs, and the session never came back."""
    sc = generate(
        "stretch",
        (
            Segment(S.FLOW, 8, WORDS_FLOW),
            Segment(S.HYPERFOCUS, 14, WORDS_HYPERFOCUS),
            Segment(S.FLOW, 6, WORDS_FLOW),
        ),
        seed=3,
        start=DEFAULT_START + 4.0,
    )
    an = WindowAnalyzer()
    in_stretch = taken = 0
    for b in windows(sc.raw_events(), sc.start, sc.end):
        flow_duty = an._flow_duty()
        r = an.analyze(b.window_start, b.window_end, b.events)
        if r.step.state is S.FLOW and an.tracker.in_session(b.window_end):
            in_stretch += 1
            new = [d for t, d in an._pending_flow if t == b.window_end]
            taken += len(new)
            assert all(d <= flow_duty + 1e-9 for d in new), (new, flow_duty)
    assert in_stretch >= 12, "the scenario has a lighter stretch right after the session"
    assert an.baseline.flow_windows > 0  # the flow before the session was learnt


def test_the_flow_rhythm_is_confirmed_minutes_after_it_was_typed() -> None:
    """A FLOW window's rhythm is learnt only ``RHYTHM_LEARN_DELAY_S`` later (a session misread as
    FLOW for its first minutes must not become the rhythm it is compared with); after a quarter
    of an hour of flow it is known and is this typist's own."""
    from modules.analysis.engine import RHYTHM_LEARN_DELAY_S

    sc = generate(
        "rhythm",
        (Segment(S.FLOW, 16, WORDS_FLOW),),
        seed=4,
        start=DEFAULT_START + 4.0,
        perturb=Perturb(iki=1.4),
    )
    an = WindowAnalyzer()
    first_seen = first_learnt = None
    cores = []
    for b in windows(sc.raw_events(), sc.start, sc.end):
        r = an.analyze(b.window_start, b.window_end, b.events)
        if an._pending_rhythm and first_seen is None:
            first_seen = an._pending_rhythm[0][0]
        if an.baseline.rhythm_windows > 0 and first_learnt is None:
            first_learnt = b.window_end
        if r.step.state is S.FLOW:
            cores.append(r.context.long.iki_core_ms)
    assert first_seen is not None and first_learnt is not None
    assert first_learnt - first_seen >= RHYTHM_LEARN_DELAY_S
    assert first_learnt - first_seen <= RHYTHM_LEARN_DELAY_S + 10.0
    rhythm = an.baseline.flow_rhythm
    assert rhythm is not None
    assert rhythm[0] == pytest.approx(sorted(cores)[len(cores) // 2], rel=0.1)


def test_a_quicker_steadier_stretch_no_lighter_than_the_persons_flow_is_hyperfocus() -> None:
    """SPEC §4: hyperfocus is flow that is denser *and steadier*.  A new user's flow duty is
    judged against the population prior for their first minutes, so a session no denser than
    that prior hides; once their flow rhythm is known, four minutes typed clearly quicker and
    steadier than it (``brisk_rhythm`` on the gain, ``brisk_steadier`` on its CV part) and no
    lighter than their flow (``brisk_excess``) are HYPERFOCUS as well (docs §3 dense); staying
    so takes a clearly brisker rhythm (``brisk_hold_rhythm``).
    Quicker alone (a thinker's tempo drifting up) is not steadier and stays FLOW, and so do a
    lighter stretch and anything before the rhythm is known."""

    cfg = AnalysisConfig()
    rhythm = (200.0, 0.32)
    flow_duty = 0.62
    at_flow = _at_rhythm(keys_per_min=190, burst_mean_keys=40, typing_duty=flow_duty)
    brisk = dataclasses.replace(at_flow, iki_core_ms=182.0, iki_core_cv=0.30)  # -9 %, -6 %
    quicker_only = dataclasses.replace(at_flow, iki_core_ms=170.0, iki_core_cv=0.325)
    lighter = dataclasses.replace(brisk, typing_duty=0.5)
    slightly = dataclasses.replace(at_flow, iki_core_ms=186.0, iki_core_cv=0.305)  # gain 0.12
    very = dataclasses.replace(at_flow, iki_core_ms=170.0, iki_core_cv=0.29)  # gain 0.24

    def state(long: WindowFeatures, **kw: object) -> S:
        return _rhythm_state(cfg, long, flow_duty, **kw)

    assert state(at_flow, flow_rhythm=rhythm) is S.FLOW
    assert state(brisk, flow_rhythm=rhythm) is S.HYPERFOCUS
    assert state(brisk, flow_rhythm=rhythm, in_session=True) is S.HYPERFOCUS  # resuming
    assert state(brisk) is S.FLOW  # no rhythm learnt yet: density decides, and it is not denser
    assert state(quicker_only, flow_rhythm=rhythm) is S.FLOW
    assert state(lighter, flow_rhythm=rhythm) is S.FLOW
    # staying on rhythm alone (no denser than the density hold asks) takes a clearly brisker
    # one (``brisk_hold_rhythm``): the end of a dense flow stretch misread as a session is not
    # held by it
    assert state(slightly, flow_rhythm=rhythm) is S.HYPERFOCUS
    assert state(slightly, flow_rhythm=rhythm, hyperfocus_s=60.0) is S.FLOW
    assert state(very, flow_rhythm=rhythm, hyperfocus_s=60.0) is S.HYPERFOCUS
    # documented switch: a ramp beyond any gain turns this way in off
    cfg = AnalysisConfig(brisk_rhythm=(10.0, 10.0))
    assert state(brisk, flow_rhythm=rhythm) is S.FLOW


def test_a_clearly_brisker_observation_does_not_become_the_flow_rhythm() -> None:
    """Once a rhythm is known, an observation quicker and steadier than it by ``brisk`` or more
    is not taken (docs §3.1): a session misread as FLOW before the rhythm was known would
    otherwise become the rhythm it is compared with.  Before that everything is taken."""
    b = Baseline(rhythm_min_windows=18.0)
    assert b.observe_rhythm(150.0, 0.28, brisk=0.08)  # nothing known yet: taken
    for _ in range(20):
        assert b.observe_rhythm(200.0, 0.32, brisk=0.08)
    known, weight = b.flow_rhythm, b.rhythm_windows
    assert known is not None
    assert not b.observe_rhythm(182.0, 0.29, brisk=0.08)  # 9 % quicker, 9 % steadier
    assert b.flow_rhythm == known and b.rhythm_windows == weight
    assert b.observe_rhythm(170.0, 0.33, brisk=0.08)  # quicker, not steadier: a drift, taken
    assert b.observe_rhythm(215.0, 0.34, brisk=0.08)  # slower: taken
    assert b.observe_rhythm(182.0, 0.29)  # no limit given: taken


def test_a_new_users_quicker_steadier_session_after_a_short_light_flow_is_seen() -> None:
    """A new user whose flow is lighter than the population prior (0.7) and whose session is
    quicker and steadier but only a little denser: four minutes of flow teach too little to
    lower the flow duty, the session was read as FLOW for all of its half hour and learnt as
    their flow.  Once the rhythm of the flow before it is known, the session is seen; the
    light flow is never HYPERFOCUS."""
    light_flow = dataclasses.replace(WORDS_FLOW, pause_s=3.0, think_p=0.4)
    quicker = dataclasses.replace(
        WORDS_HYPERFOCUS, iki_s=0.128, iki_cv=0.30, burst_keys=36, pause_s=2.4
    )
    for seed, iki in ((3, 1.0), (2, 0.7)):
        sc = generate(
            "quick",
            (Segment(S.FLOW, 4, light_flow), Segment(S.HYPERFOCUS, 30, quicker)),
            seed=seed,
            start=DEFAULT_START + 4.0,
            perturb=Perturb(iki=iki),
        )
        an = WindowAnalyzer()
        flow_states, session = [], []
        for b in windows(sc.raw_events(), sc.start, sc.end):
            r = an.analyze(b.window_start, b.window_end, b.events)
            if b.window_end < sc.truth[1].start:
                flow_states.append(r.step.state)
            elif b.window_end - sc.truth[1].start >= 60:
                session.append(r.step.state)
        assert S.HYPERFOCUS not in flow_states
        share = session.count(S.HYPERFOCUS) / len(session)
        assert share >= 0.5, (seed, iki, share)
        assert session[-1] is S.HYPERFOCUS


def test_a_new_users_flow_denser_than_the_prior_is_not_a_session() -> None:
    """A new 250 ms typist, three minutes of e-mail, then forty of flow whose duty (~0.78) is
    above the population prior (0.7): judged against the prior until the first observation was
    confirmed, the flow read HYPERFOCUS from its fourth minute on (84 % of its windows) and the
    session hold kept it there.  Until something of the person's own flow is learnt, every
    provisional observation counts, the denser ones too."""
    sc = generate(
        "first flow",
        (Segment(S.NEUTRAL, 3, WORDS_NEUTRAL), Segment(S.FLOW, 40, WORDS_FLOW)),
        seed=1,
        perturb=Perturb(iki=1.67),
    )
    flow = sc.truth[1]
    an = WindowAnalyzer()
    prior = an.baseline.flow_duty
    states, raised = [], False
    for b in windows(sc.raw_events(), sc.start, sc.end):
        nothing_learnt = not any(an.baseline.duty_hist)
        every = an.baseline.flow_duty_with(d for _, d in an._pending_flow)
        r = an.analyze(b.window_start, b.window_end, b.events)
        if b.window_start >= flow.start and b.window_end >= flow.start + 60:
            states.append(r.step.state)
        if nothing_learnt:
            # nothing learnt yet: the rules see the denser provisional observations too
            assert r.context.flow_duty == pytest.approx(every)
            raised |= every > prior + 0.02
    assert raised, "the case has a flow denser than the prior"
    assert an.baseline.flow_windows > 0  # and its flow was learnt in the end
    assert states.count(S.FLOW) / len(states) >= 0.9
    assert states.count(S.HYPERFOCUS) / len(states) <= 0.05


def test_twenty_minutes_in_one_app_at_the_persons_own_density_is_a_session() -> None:
    """SPEC §4: hyperfocus is flow that lasts.  Every trace family's flow leaves its app every
    few minutes (the holdout's flows: the app in front for 15 minutes in 1 % of windows) and
    its sessions hardly at all (53 %); the holdout's `hyperfocus100-h210-1` has its flow's own
    density and rhythm, so only that tells them apart (HYPERFOCUS 0 % before)."""
    cfg = AnalysisConfig()
    long = _at_rhythm(150, 20, typing_duty=0.6)
    rhythm = (200.0, 0.32)

    def state(visit_s: float, duty: float = 0.6) -> FocusState:
        c = dataclasses.replace(long, front_visit_s=visit_s, typing_duty=duty)
        return _rhythm_state(cfg, c, 0.6, flow_rhythm=rhythm)

    assert state(1200) is S.HYPERFOCUS
    assert state(600) is S.FLOW  # a trip ten minutes ago: flow
    assert state(1200, duty=0.5) is S.FLOW  # as long, but lighter than their flow
    assert state(0) is S.FLOW  # no focus information: no say
