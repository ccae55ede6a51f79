"""The independent trace family (bench/traces/independent.py): what it promises as test data.

Accuracy of the classifier on these traces is the benchmark's business (bench/analysis.py), not
asserted here; these tests check the traces themselves: deterministic, the personas type at their
stated speed, the wire lines are what the Pi's own validator accepts and never carry content, the
truth covers the trace, and the host quirks are really in the noisy and skewed traces.
"""

from __future__ import annotations

import itertools
import json
import statistics
from typing import Any

import pytest

from bench.analysis import Case, Tally, generated_cases, met
from bench.traces import holdout, independent
from bench.traces.independent import (
    HOST_IDLE_S,
    HOSTS,
    PERSONAS,
    SCRIPTS,
    STATES,
    Seg,
    generate,
    main,
)
from modules.ingest.validate import is_privacy_field, validate_event
from tests.wire import FIELDS, INPUT


def test_same_arguments_same_trace_other_seed_other_trace() -> None:
    a = generate("switchy", "p130", seed=3, host="noisy")
    b = generate("switchy", "p130", seed=3, host="noisy")
    c = generate("switchy", "p130", seed=4, host="noisy")
    assert a.ndjson() == b.ndjson()
    assert a.truth == b.truth
    assert a.ndjson() != c.ndjson()
    assert [s.state for s in a.truth] == [s.state for s in c.truth]


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.name)
def test_persona_types_at_its_flow_speed(persona) -> None:
    tr = generate("flow40", persona, seed=1, host="clean")
    (flow,) = [s for s in tr.truth if s.state == "FLOW"]
    ts = [
        e["ts"]
        for e in tr.events
        if e["kind"] == "key" and not e["correction"] and flow.start <= e["ts"] < flow.end
    ]
    # keys inside a run of typing (phrase pauses and visits excluded)
    ikis = [b - a for a, b in itertools.pairwise(ts) if b - a < 0.6]
    median_ms = 1000 * statistics.median(ikis)
    # words: the first key of a word and the space are slower than the keys inside it
    assert persona.flow_iki_ms <= median_ms <= 1.2 * persona.flow_iki_ms
    keys_per_min = len(ts) / 40
    assert 60_000 / median_ms * 0.4 < keys_per_min < 60_000 / median_ms


def test_personas_span_90_to_250_ms() -> None:
    ikis = sorted(p.flow_iki_ms for p in PERSONAS)
    assert ikis[0] == 90 and ikis[-1] == 250 and len(ikis) >= 3


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_every_line_passes_the_ingest_validator_and_carries_no_content(host: str) -> None:
    kinds: set[str] = set()
    traces = [generate(s, PERSONAS[i % len(PERSONAS)], 2, host) for i, s in enumerate(SCRIPTS)]
    # half the readers page with keys, half scroll
    traces += [generate("reading", "p090", seed, host) for seed in range(4)]
    for tr in traces:
        seqs = [e["seq"] for e in tr.events]
        assert seqs == list(range(1, len(seqs) + 1))
        for line in tr.lines():
            obj = json.loads(line)
            assert set(obj) == FIELDS[obj["kind"]], obj
            assert not any(is_privacy_field(k) for k in obj if k not in ("kind", "seq", "ts"))
            ev = validate_event(obj, "bench", "s1")
            kinds.add(ev.kind)
    assert kinds == set(FIELDS)


@pytest.mark.parametrize("host", sorted(HOSTS))
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_truth_covers_the_trace_segment_by_segment(script: str, host: str) -> None:
    tr = generate(script, "p210", seed=5, host=host)
    segs = SCRIPTS[script]
    assert [(s.state, s.activity) for s in tr.truth] == [(g.state, g.kind) for g in segs]
    assert all(s.state in STATES for s in tr.truth)
    for a, b in zip(tr.truth, tr.truth[1:], strict=False):
        assert a.end == b.start
    for span, seg in zip(tr.truth, segs, strict=True):
        # the skewed host's clock drifts by at most 250 ppm
        assert span.end - span.start == pytest.approx(seg.minutes * 60, rel=3e-4, abs=2e-3)
    assert (tr.start, tr.end) == (tr.truth[0].start, tr.truth[-1].end)
    ts = [e["ts"] for e in tr.events]
    slack = 5 * HOSTS[host].jitter_s + 0.002
    assert tr.start - slack <= min(ts) and max(ts) < tr.end + slack
    # every segment that is not idle has input in it
    for span in tr.truth:
        if span.state != "IDLE":
            assert any(span.start <= e["ts"] < span.end for e in tr.events if e["kind"] in INPUT), (
                span
            )


def test_idle_reports_follow_every_long_gap_and_only_those() -> None:
    tr = generate("day", "p170", seed=1, host="clean")
    last = None
    gaps = 0
    for i, e in enumerate(tr.events):
        if e["kind"] == "idle":
            nxt = tr.events[i + 1]
            assert nxt["kind"] in INPUT and nxt["ts"] == e["ts"]
            assert e["duration_s"] >= HOST_IDLE_S
            began = nxt["ts"] - nxt.get("span_ms", 0) / 1000
            assert e["duration_s"] == pytest.approx(began - last, abs=0.01)
        elif e["kind"] in INPUT:
            began = e["ts"] - e.get("span_ms", 0) / 1000
            if last is not None and began - last >= HOST_IDLE_S + 0.01:
                gaps += 1
                assert tr.events[i - 1]["kind"] == "idle", e
            last = e["ts"]
    # the coffee break and the idle segment at least
    assert gaps >= 2


def _focus_repeats(tr) -> int:
    focus = [e["app_id"] for e in tr.events if e["kind"] == "focus"]
    return sum(a == b for a, b in itertools.pairwise(focus))


def _ts_backwards(tr) -> int:
    ts = [e["ts"] for e in tr.events]
    return sum(b < a for a, b in itertools.pairwise(ts))


def _on_tick(tr, tick: float) -> float:
    """Share of timestamps on the host clock's tick (``ts`` is written in milliseconds)."""
    return statistics.mean(
        abs(e["ts"] / tick - round(e["ts"] / tick)) < 0.001 / tick for e in tr.events
    )


def test_noisy_host_repeats_focus_and_jitters_time_clean_host_does_neither() -> None:
    clean = generate("day", "p090", seed=1, host="clean")
    noisy = generate("day", "p090", seed=1, host="noisy")
    assert _focus_repeats(clean) == 0 and _ts_backwards(clean) == 0
    assert _focus_repeats(noisy) >= 20
    # a 15.6 ms clock tick plus jitter: neighbours share a timestamp or go back in time
    assert _on_tick(noisy, 1 / 64) == 1.0 and _on_tick(clean, 1 / 64) < 0.2
    ts = [e["ts"] for e in noisy.events]
    assert sum(b <= a for a, b in itertools.pairwise(ts)) >= 5


def test_skewed_host_clock_is_offset_and_drifts_with_the_truth_on_the_same_clock() -> None:
    clean = generate("flow40", "p130", seed=7, host="clean")
    skewed = [generate("flow40", "p130", seed=s, host="skewed") for s in range(6)]
    lengths = {round(t.end - t.start, 3) for t in skewed}
    assert len(lengths) > 1  # drift: the same 43 scripted minutes last differently
    assert all(abs((t.end - t.start) - 43 * 60) <= 43 * 60 * 250e-6 + 1e-3 for t in skewed)
    # events stay inside the truth on the host's clock
    for t in skewed:
        assert t.start - 0.05 <= t.events[0]["ts"] and t.events[-1]["ts"] < t.end + 0.05
    assert clean.end - clean.start == pytest.approx(43 * 60, abs=1e-3)


def test_readers_scroll_or_page_and_designers_mostly_point() -> None:
    kinds = {"scroll": 0, "key": 0}
    for seed in range(4):
        tr = generate("reading", "p170", seed=seed)
        (read,) = [s for s in tr.truth if s.activity == "reading"]
        inside = [e for e in tr.events if read.start <= e["ts"] < read.end]
        for k in kinds:
            kinds[k] += sum(e["kind"] == k for e in inside)
        ts = sorted(e["ts"] for e in inside if e["kind"] in INPUT)
        # something every 5-10 s (a longer look now and then), never a host idle report
        assert statistics.median(b - a for a, b in itertools.pairwise(ts)) <= 10
    assert kinds["scroll"] > 50 and kinds["key"] > 50
    old_pi = generate("reading", "p170", seed=0, scroll=False)
    assert not any(e["kind"] == "scroll" for e in old_pi.events)

    tr = generate("design", "p250", seed=1)
    (des,) = [s for s in tr.truth if s.activity == "design"]
    inside = [e for e in tr.events if des.start <= e["ts"] < des.end]
    mouse_s = sum(e["span_ms"] for e in inside if e["kind"] == "mouse") / 1000
    keys = sum(e["kind"] == "key" for e in inside)
    assert mouse_s > 0.4 * (des.end - des.start)
    assert keys < 15 * 30  # < 15 keys a minute


def test_thinkers_pause_15_to_60_s_inside_focused_work() -> None:
    tr = generate("thinker", "p130", seed=2)
    (think,) = [s for s in tr.truth if s.activity == "thinking"]
    ts = [e["ts"] for e in tr.events if e["kind"] in INPUT and think.start <= e["ts"] < think.end]
    long = [b - a for a, b in itertools.pairwise(ts) if b - a >= 15]
    assert len(long) >= 5 and max(long) < 75


def test_custom_script_and_unknown_names() -> None:
    tr = generate([Seg("FLOW", 2), Seg("DISTRACTED", 1.5)], "p090", seed=1, name="mine")
    assert tr.name == "mine" and [s.state for s in tr.truth] == ["FLOW", "DISTRACTED"]
    with pytest.raises(ValueError, match="unknown script"):
        generate("nope")
    with pytest.raises(ValueError, match="unknown activity"):
        generate([Seg("FLOW", 1, "juggling")])


def test_command_line_writes_the_trace_and_its_truth(tmp_path) -> None:
    out, truth = tmp_path / "t.ndjson", tmp_path / "truth.json"
    assert main(["--script", "flow40", "--persona", "p250", "--seed", "3", "-o", str(out),
                 "--truth", str(truth)]) == 0  # fmt: skip
    tr = generate("flow40", "p250", seed=3)
    assert out.read_text() == tr.ndjson()
    assert json.loads(truth.read_text()) == [
        [s.start, s.end, s.state, s.activity] for s in tr.truth
    ]


# --- the benchmark's scoring rules (bench/analysis.py), on hand-built replay output


def _case(script: str, truth, states, t0: float = 1000.0, tis: bool = True) -> Case:
    ws = []
    run = 0.0
    for i, s in enumerate(states):
        run = run + 10.0 if i and s == states[i - 1] else 0.0
        w = {"window_end": t0 + 10.0 * (i + 1), "state": s, "confidence": 0.9}
        if tis:
            w["time_in_state_s"] = run
        ws.append(w)
    return Case("independent", script, "p170", 1, "clean", "", truth, ws)


def test_scoring_counts_windows_inside_one_segment_from_60_s_on() -> None:
    # segments [1000, 1120) FLOW and [1120, 1300) IDLE; windows end at 1010, 1020, ...
    truth = [(1000.0, 1120.0, "FLOW", "flow"), (1120.0, 1300.0, "IDLE", "idle")]
    tally = Tally()
    tally.add(_case("x", truth, ["NEUTRAL"] * 6 + ["FLOW"] * 6 + ["IDLE"] * 18), 30.0)
    r = tally.report()
    # FLOW: windows ending 1060 .. 1120 (start >= 1000, end >= 1060): 7, right from 1070 on
    assert r["accuracy"]["FLOW"] == round(6 / 7, 4)
    # IDLE: ends 1180 .. 1300 (start >= 1120, end >= 1180), all right; straddlers never count
    assert r["accuracy"]["IDLE"] == 1.0 and r["windows_scored"] == 7 + 13
    # the change into IDLE was reported by the first window ending after it
    assert r["latency_p90_s"]["IDLE"] == 10.0 and r["missed_changes"]["IDLE"] == 0


def test_scoring_the_raw_state_s_latency_apart_from_the_reported_one() -> None:
    # the raw state shows IDLE from the first window after the change, the state two later
    truth = [(1000.0, 1120.0, "FLOW", "flow"), (1120.0, 1300.0, "IDLE", "idle")]
    case = _case("x", truth, ["FLOW"] * 14 + ["IDLE"] * 16)
    for i, w in enumerate(case.windows):
        w["raw_state"] = "IDLE" if i >= 12 else "FLOW"
    tally = Tally()
    tally.add(case, 30.0)
    r = tally.report()
    assert r["latency_raw_p90_s"]["IDLE"] == 10.0 and r["latency_p90_s"]["IDLE"] == 30.0
    # a replay that does not print raw_state: no raw latency at all, not a wrong one
    tally = Tally()
    tally.add(_case("x", truth, ["FLOW"] * 14 + ["IDLE"] * 16), 30.0)
    assert tally.report()["latency_raw_p90_s"] == {}


def test_scoring_latency_per_kind_of_change() -> None:
    # FLOW -> IDLE reported 30 s after the change, IDLE -> NEUTRAL never
    truth = [
        (1000.0, 1120.0, "FLOW", "flow"),
        (1120.0, 1300.0, "IDLE", "idle"),
        (1300.0, 1400.0, "NEUTRAL", "neutral"),
    ]
    tally = Tally()
    tally.add(_case("x", truth, ["FLOW"] * 14 + ["IDLE"] * 26), 30.0)
    by = tally.report()["latency_by_change_s"]
    assert by["FLOW->IDLE"] == {"n": 1, "median": 30.0, "p90": 30.0, "missed": 0}
    assert by["IDLE->NEUTRAL"] == {"n": 1, "median": None, "p90": None, "missed": 1}
    assert set(by) == {"FLOW->IDLE", "IDLE->NEUTRAL"}


def test_scoring_a_missed_change_is_infinitely_late() -> None:
    truth = [(1000.0, 1100.0, "FLOW", "flow"), (1100.0, 1400.0, "DISTRACTED", "distracted")]
    tally = Tally()
    tally.add(_case("x", truth, ["FLOW"] * 40), 30.0)
    r = tally.report()
    assert r["missed_changes"]["DISTRACTED"] == 1 and r["latency_p90_s"]["DISTRACTED"] is None
    assert not met(r)["latency_p90_s"]


def test_scoring_flaps_and_unbroken_time_in_state_on_a_steady_flow() -> None:
    truth = [(1000.0, 1180.0, "NEUTRAL", "neutral"), (1180.0, 1180.0 + 2400, "FLOW", "flow")]
    # 18 windows of NEUTRAL, then FLOW with an odd window after every 14 minutes of it
    states = ["NEUTRAL"] * 18 + (["FLOW"] * 84 + ["NEUTRAL"]) * 2 + ["FLOW"] * 70
    for tis in (True, False):
        tally = Tally()
        tally.add(_case("flow40", truth, states, tis=tis), 30.0)
        r = tally.report()
        assert r["flow15_rate"] == 0.0  # restarted every 14 min: never 15 unbroken minutes
        # counted from 120 s into the segment: windows ending 1300 .. 3580, two blips
        assert r["flaps_per_hour"]["FLOW"] == round(4 / (2280 / 3600), 2)
    # a tracker that tolerates the blip keeps counting: then the 15 minutes are reached
    case = _case("flow40", truth, states)
    for w in case.windows[103:]:
        w["time_in_state_s"] += 850.0 if w["state"] == "FLOW" else 0.0
    tally = Tally()
    tally.add(case, 30.0)
    assert tally.report()["flow15_rate"] == 1.0


def test_scoring_a_trace_ending_in_silence_is_not_a_missed_change() -> None:
    # the replay cuts windows only up to the last event: nothing ends inside the final IDLE
    truth = [(1000.0, 1300.0, "FLOW", "flow"), (1300.0, 1700.0, "IDLE", "idle")]
    tally = Tally()
    tally.add(_case("x", truth, ["FLOW"] * 30), 30.0)
    r = tally.report()
    assert r["changes_without_windows"] == {"IDLE": 1}
    assert "IDLE" not in r["missed_changes"] and "IDLE" not in r["latency_p90_s"]


def test_scripts_do_not_end_in_silence() -> None:
    # so every scripted change has windows to be reported in
    assert all(segs[-1].state != "IDLE" for segs in SCRIPTS.values())


@pytest.mark.parametrize(
    ("family", "gen", "persona"),
    [("independent", independent, "p130"), ("holdout", holdout, "h090")],
)
def test_the_benchmark_takes_every_script_of_both_generator_families(
    family: str, gen: Any, persona: str
) -> None:
    """bench/analysis.py's ``generated_cases``: one case per script for the persona, named for
    its family, with the generator's own trace and truth (state and activity) unchanged."""
    cases = list(generated_cases(family, gen, [1], [persona]))
    assert sorted(c.script for c in cases) == sorted(gen.SCRIPTS)
    for case in cases:
        assert (case.family, case.typist, case.seed) == (family, persona, 1)
        trace = gen.generate(case.script, persona, seed=1, host=case.host)
        assert case.ndjson == trace.ndjson()
        assert case.truth == [(s.start, s.end, s.state, s.activity) for s in trace.truth]
        assert {state for _, _, state, _ in case.truth} <= set(STATES)
