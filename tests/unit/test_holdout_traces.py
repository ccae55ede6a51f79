"""The held-out trace family (bench/traces/holdout.py): what it promises as test data.

These tests check the traces themselves, never the classifier: deterministic, the personas type
at their stated speed, every wire line is exactly an INGEST.md §4 event the Pi's own validator
accepts, the truth covers the trace, idle reports follow the host's 30 s rule, the host quirks are
really there (and only on their host), and the scripted activities look like what they claim.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.traces.holdout import (
    ACTIVITIES,
    APPS,
    HOST_IDLE_S,
    HOSTS,
    PERSONA_BY_NAME,
    PERSONAS,
    SCRIPTS,
    STATES,
    Persona,
    Seg,
    Trace,
    TruthSpan,
    family,
    generate,
    host_for,
    main,
)
from modules.ingest.validate import is_privacy_field, validate_event
from tests.wire import FIELDS, INPUT

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def gen(script: str, persona: str, host: str, seed: int) -> Trace:
    return generate(script, persona, host, seed)


def inside(tr: Trace, span: TruthSpan, kinds: tuple[str, ...] = INPUT) -> list[dict[str, Any]]:
    return [e for e in tr.events if e["kind"] in kinds and span.start <= e["ts"] < span.end]


def only(tr: Trace, activity: str) -> TruthSpan:
    (span,) = [s for s in tr.truth if s.activity == activity]
    return span


def user_input(tr: Trace) -> list[dict[str, Any]]:
    """Input events; a focus event for the app already in front (a host re-announcement or a
    duplicate notification) is not user input."""
    out = []
    current = None
    for e in tr.events:
        if e["kind"] == "focus":
            if e["app_id"] == current:
                continue
            current = e["app_id"]
        if e["kind"] in INPUT:
            out.append(e)
    return out


def began(e: dict[str, Any]) -> float:
    """When an input event's activity began (a sample covers the span before its ts)."""
    return float(e["ts"]) - float(e.get("span_ms", 0)) / 1000


# --------------------------------------------------------------------------- determinism, API


def test_same_arguments_same_trace_other_seed_other_trace() -> None:
    a = generate("switchy", "h130", "noisy", 3)
    b = generate("switchy", "h130", "noisy", 3)
    c = generate("switchy", "h130", "noisy", 4)
    assert a.ndjson() == b.ndjson() and a.truth == b.truth
    assert a.ndjson() != c.ndjson()
    assert [s.state for s in a.truth] == [s.state for s in c.truth]
    assert (a.name, a.persona, a.host, a.seed) == ("switchy", "h130", "noisy", 3)
    # another persona or host is another trace too
    assert generate("switchy", "h170", "noisy", 3).ndjson() != a.ndjson()
    assert generate("switchy", "h130", "clean", 3).ndjson() != a.ndjson()


def test_deterministic_across_processes_whatever_the_hash_seed() -> None:
    code = (
        "import hashlib; from bench.traces.holdout import generate; "
        "print(hashlib.sha256(generate('reader', 'h210', 'noisy', 5).ndjson().encode())"
        ".hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    here = hashlib.sha256(gen("reader", "h210", "noisy", 5).ndjson().encode()).hexdigest()
    assert digests == {here}


def test_personas_scripts_and_hosts_are_as_promised() -> None:
    assert STATES == ("FLOW", "HYPERFOCUS", "NEUTRAL", "TRANSITIONING", "DISTRACTED", "IDLE")
    assert [(p.name, p.flow_iki_ms) for p in PERSONAS] == [
        ("h090", 90.0),
        ("h130", 130.0),
        ("h170", 170.0),
        ("h210", 210.0),
        ("h250", 250.0),
    ]
    assert {p.name: p for p in PERSONAS} == PERSONA_BY_NAME
    # each persona has its own habits, not just another speed
    traits = {(p.burst_alpha, p.error_rate, p.work, p.kb_switch) for p in PERSONAS}
    assert len(traits) == len(PERSONAS)
    assert {"clean", "noisy", "skewed"} <= set(HOSTS)
    shapes: dict[str, list[tuple[str | None, float | None]]] = {
        "flow40": [("NEUTRAL", 3), ("FLOW", 40), ("NEUTRAL", None)],
        "neutral40": [("FLOW", 3), ("NEUTRAL", 40), (None, None)],
        "distracted40": [("NEUTRAL", 3), ("DISTRACTED", 40), (None, None)],
        "idle40": [("NEUTRAL", 3), ("IDLE", 40), ("NEUTRAL", None)],
        "hyperfocus100": [("FLOW", 4), ("HYPERFOCUS", 100), ("NEUTRAL", 3)],
    }
    for name, shape in shapes.items():
        segs = SCRIPTS[name]
        assert len(segs) == len(shape), name
        for seg, (state, minutes) in zip(segs, shape, strict=True):
            assert state is None or seg.state == state
            assert minutes is None or seg.minutes == minutes
        assert segs[-1].minutes <= 5  # a short tail
    for name, act, minutes in (("reader", "reading", 20), ("designer", "design", 20)):
        assert [(s.state, s.activity) for s in SCRIPTS[name]] == [
            ("NEUTRAL", "neutral"),
            ("FLOW", act),
            ("NEUTRAL", "neutral"),
        ]
        assert SCRIPTS[name][1].minutes == minutes
    assert [s.activity for s in SCRIPTS["thinker"]] == ["neutral", "thinking", "neutral"]
    assert SCRIPTS["thinker"][1].minutes == 25
    day = SCRIPTS["day"]
    assert {s.state for s in day} == set(STATES)
    assert {"meeting", "coffee", "reading", "design", "thinking"} <= {s.activity for s in day}
    assert 150 <= sum(s.minutes for s in day) <= 180
    switchy = SCRIPTS["switchy"]
    assert {s.state for s in switchy} == {"TRANSITIONING", "NEUTRAL", "FLOW", "DISTRACTED"}
    assert all(4 <= s.minutes <= 8 for s in switchy)
    assert all(a.state != b.state for a, b in itertools.pairwise(switchy))
    for segs in SCRIPTS.values():
        assert segs[-1].state != "IDLE"  # never ends in silence
        assert all(ACTIVITIES[s.activity] == s.state for s in segs)


def test_family_covers_every_seed_persona_script_and_all_hosts() -> None:
    hosts = {host_for(s, p.name, 1) for s in SCRIPTS for p in PERSONAS}
    assert hosts == {"clean", "noisy", "skewed"}
    traces = list(family([1, 2], PERSONAS[:1], ("reader", "designer")))
    assert [(t.seed, t.persona, t.name) for t in traces] == [
        (1, "h090", "reader"),
        (1, "h090", "designer"),
        (2, "h090", "reader"),
        (2, "h090", "designer"),
    ]
    for t in traces:
        assert t.host == host_for(t.name, t.persona, t.seed)
        assert t.ndjson() == generate(t.name, t.persona, t.host, t.seed).ndjson()
    # without a host, generate() picks the family's
    assert generate("reader", "h090", seed=2).host == host_for("reader", "h090", 2)


def test_unknown_names_are_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match=r"unknown script 'nope'.*flow40"):
        generate("nope", "h170", "clean", 1)
    with pytest.raises(ValueError, match=r"unknown persona 'p170'.*h170"):
        generate("day", "p170", "clean", 1)
    with pytest.raises(ValueError, match=r"unknown host 'dirty'.*noisy"):
        generate("day", "h170", "dirty", 1)
    with pytest.raises(ValueError, match="unknown activity"):
        generate([Seg("FLOW", 1, "juggling")], "h170", "clean", 1)
    for argv, bad, valid in (
        (["--script", "nope", "--persona", "h170"], "'nope'", "thinker"),
        (["--script", "day", "--persona", "x1"], "'x1'", "h250"),
        (["--script", "day", "--host", "dirty"], "'dirty'", "skewed"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and bad in err and valid in err, err


def test_custom_script() -> None:
    tr = generate([Seg("FLOW", 2), Seg("DISTRACTED", 1.5)], "h090", "clean", 1)
    assert tr.name == "custom"
    assert [(s.state, s.activity) for s in tr.truth] == [
        ("FLOW", "flow"),
        ("DISTRACTED", "distracted"),
    ]


def test_command_line_writes_the_trace_and_its_truth(tmp_path: Path) -> None:
    out, truth = tmp_path / "t.ndjson", tmp_path / "truth.json"
    argv = ["--script", "reader", "--persona", "h250", "--seed", "3", "--host", "noisy"]
    assert main([*argv, "-o", str(out), "--truth", str(truth)]) == 0
    tr = gen("reader", "h250", "noisy", 3)
    assert out.read_text() == tr.ndjson()
    assert json.loads(truth.read_text()) == [
        [s.start, s.end, s.state, s.activity] for s in tr.truth
    ]


# --------------------------------------------------------------------------- the wire


def test_every_line_is_exactly_an_ingest_event_the_validator_accepts() -> None:
    kinds: set[str] = set()
    hosts: set[str] = set()
    for i, script in enumerate(SCRIPTS):
        tr = gen(script, PERSONAS[i % len(PERSONAS)].name, ("clean", "noisy", "skewed")[i % 3], 2)
        hosts.add(tr.host)
        assert tr.ndjson() == "".join(line + "\n" for line in tr.lines())
        seqs = [e["seq"] for e in tr.events]
        assert seqs == list(range(1, len(seqs) + 1))
        for line in tr.lines():
            assert " " not in line  # compact
            obj = json.loads(line)
            assert set(obj) == FIELDS[obj["kind"]], obj
            assert list(obj)[:3] == ["kind", "seq", "ts"]
            assert not any(is_privacy_field(k) for k in obj if k not in ("kind", "seq", "ts"))
            ev = validate_event(obj, "bench", "s1")
            kinds.add(ev.kind)
            assert 1_780_000_000 < obj["ts"] < 1_830_000_000  # around 2026
            if obj["kind"] == "focus":
                assert obj["app_id"] not in APPS  # opaque, never the executable's name
    assert kinds == set(FIELDS) and hosts == {"clean", "noisy", "skewed"}


def test_app_ids_are_stable_per_host_and_differ_between_hosts() -> None:
    def ids(tr: Trace) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for e in tr.events:
            if e["kind"] == "focus":
                out.setdefault(e["category"], set()).add(e["app_id"])
        return out

    a, b = gen("day", "h170", "clean", 1), gen("day", "h170", "noisy", 1)
    ia, ib = ids(a), ids(b)
    assert len(set().union(*ia.values())) >= 8  # many apps …
    assert not set().union(*ia.values()) & set().union(*ib.values())  # … salted per host


# --------------------------------------------------------------------------- truth


@pytest.mark.parametrize("host", ["clean", "noisy", "skewed"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_truth_covers_the_trace_segment_by_segment(script: str, host: str) -> None:
    tr = gen(script, "h210", host, 5)
    segs = SCRIPTS[script]
    assert [(s.state, s.activity) for s in tr.truth] == [(g.state, g.activity) for g in segs]
    for a, b in itertools.pairwise(tr.truth):
        assert a.end == b.start
    for span, seg in zip(tr.truth, segs, strict=True):
        # the skewed host's clock drifts by at most 450 ppm
        assert span.end - span.start == pytest.approx(seg.minutes * 60, rel=4.5e-4, abs=2e-3)
    ts = [e["ts"] for e in tr.events]
    assert tr.start <= min(ts) and max(ts) <= tr.end
    # input right at the start, and no ending in silence
    assert min(ts) - tr.start < 2.0
    assert began(user_input(tr)[0]) - tr.start < 5.0
    assert tr.end - max(e["ts"] for e in user_input(tr)) < 30.0
    for span in tr.truth:
        if span.state != "IDLE":
            assert inside(tr, span), span


def test_idle_reports_follow_exactly_the_long_gaps() -> None:
    for host, tol in (("clean", 0.0011), ("skewed", 0.0011), ("noisy", 0.03)):
        tr = gen("day", "h170", host, 1)
        last: float | None = None
        current = None
        gaps = reports = 0
        for i, e in enumerate(tr.events):
            if e["kind"] == "idle":
                reports += 1
                nxt = tr.events[i + 1]
                assert nxt["kind"] in INPUT and e["duration_s"] >= HOST_IDLE_S
                assert last is not None
                # stamped where input resumed; the span is the gap since the last input
                assert e["ts"] == pytest.approx(began(nxt), abs=tol)
                assert e["duration_s"] == pytest.approx(began(nxt) - last, abs=tol + 0.001)
                continue
            if e["kind"] == "focus":
                if e["app_id"] == current:
                    continue  # the host re-announcing the app in front is not input
                current = e["app_id"]
            if last is not None and began(e) - last >= HOST_IDLE_S:
                gaps += 1
                assert tr.events[i - 1]["kind"] == "idle", (host, e, began(e) - last)
            last = e["ts"] if last is None else max(last, e["ts"])
        # the coffee break, the idle stretch, the thinking and the meeting
        assert gaps == reports >= 4, host


# --------------------------------------------------------------------------- personas


@pytest.mark.parametrize("persona", PERSONAS, ids=lambda p: p.name)
def test_persona_types_at_its_flow_speed(persona: Persona) -> None:
    tr = gen("flow40", persona.name, "clean", 1)
    flow = only(tr, "flow")
    keys = inside(tr, flow, ("key",))
    # two plain keys in a row inside a burst (pauses between bursts and corrections excluded)
    ikis = [
        b["ts"] - a["ts"]
        for a, b in itertools.pairwise(keys)
        if not a["correction"] and not b["correction"] and b["ts"] - a["ts"] < 1.0
    ]
    median_ms = 1000 * statistics.median(ikis)
    assert 0.85 * persona.flow_iki_ms <= median_ms <= 1.15 * persona.flow_iki_ms
    # bursts and pauses: fewer keys a minute than nonstop typing, but steady work
    keys_per_min = len(keys) / 40
    assert 0.25 * 60_000 / median_ms < keys_per_min < 0.9 * 60_000 / median_ms
    # inter-key intervals are right-skewed (ex-Gaussian), not symmetric
    assert statistics.mean(ikis) > statistics.median(ikis)


def test_faster_personas_type_faster_and_hyperfocus_is_denser_than_flow() -> None:
    medians = []
    for p in PERSONAS:
        tr = gen("flow40", p.name, "clean", 1)
        keys = inside(tr, only(tr, "flow"), ("key",))
        medians.append(statistics.median(b["ts"] - a["ts"] for a, b in itertools.pairwise(keys)))
    assert medians == sorted(medians)
    tr = gen("hyperfocus100", "h170", "clean", 1)
    hyper = only(tr, "hyperfocus")
    flow = gen("flow40", "h170", "clean", 1)
    per_min_h = len(inside(tr, hyper, ("key",))) / 100
    per_min_f = len(inside(flow, only(flow, "flow"), ("key",))) / 40
    assert per_min_h > 1.2 * per_min_f


# --------------------------------------------------------------------------- hosts


def _ts_backwards(tr: Trace) -> int:
    return sum(b["ts"] < a["ts"] for a, b in itertools.pairwise(tr.events))


def _same_app_focus(tr: Trace) -> tuple[int, int]:
    """(duplicates: same app and same ts, re-announcements: same app later)."""
    focus = [e for e in tr.events if e["kind"] == "focus"]
    pairs = [(a, b) for a, b in itertools.pairwise(focus) if a["app_id"] == b["app_id"]]
    return sum(a["ts"] == b["ts"] for a, b in pairs), sum(a["ts"] != b["ts"] for a, b in pairs)


def _on_tick(tr: Trace, tick: float) -> float:
    return statistics.mean(
        float(abs(e["ts"] / tick - round(e["ts"] / tick)) < 1e-4 / tick) for e in tr.events
    )


def test_noisy_host_jitters_and_repeats_focus_clean_host_does_neither() -> None:
    clean = gen("day", "h090", "clean", 1)
    noisy = gen("day", "h090", "noisy", 1)
    assert _ts_backwards(clean) == 0 and _same_app_focus(clean) == (0, 0)
    dups, reannounced = _same_app_focus(noisy)
    assert _ts_backwards(noisy) >= 5 and dups >= 3 and reannounced >= 5
    assert _on_tick(noisy, 0.01) == 1.0 and _on_tick(clean, 0.01) < 0.2
    # the sample period is the host's own
    spans = {h: statistics.median(e["span_ms"] for e in gen("day", "h090", h, 1).events
                                  if e["kind"] == "mouse") for h in ("clean", "noisy")}  # fmt: skip
    assert spans == {"clean": 1000, "noisy": 500}


def test_skewed_host_clock_is_offset_and_drifts_with_the_truth_on_the_same_clock() -> None:
    clean = gen("flow40", "h130", "clean", 7)
    skewed = [gen("flow40", "h130", "skewed", s) for s in (7, 8, 9)]
    assert 1800 <= abs(skewed[0].start - clean.start) <= 7200
    assert clean.end - clean.start == pytest.approx(45 * 60, abs=1e-3)
    for t in skewed:
        drift = abs((t.end - t.start) / (45 * 60) - 1)
        assert 90e-6 < drift < 460e-6
        assert t.start <= t.events[0]["ts"] and t.events[-1]["ts"] <= t.end
    # partial first spans after a rest, 0.25 s periods otherwise
    spans = [e["span_ms"] for e in skewed[0].events if e["kind"] == "mouse"]
    assert statistics.median(spans) == 250 and min(spans) < 250


# --------------------------------------------------------------------------- activities


def _clusters(ts: list[float], within: float = 2.0) -> list[float]:
    """Start times of groups of events less than ``within`` apart."""
    out: list[float] = []
    prev = None
    for t in ts:
        if prev is None or t - prev >= within:
            out.append(t)
        prev = t
    return out


@pytest.mark.parametrize("persona", ["h090", "h210"])
def test_readers_scroll_or_page_every_5_to_10_s(persona: str) -> None:
    tr = gen("reader", persona, "clean", 1)
    read = only(tr, "reading")
    ev = inside(tr, read)
    starts = _clusters(sorted(began(e) for e in ev))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert 5.0 <= statistics.median(gaps) <= 10.0 and max(gaps) < HOST_IDLE_S
    # little else: page keys and scroll samples, hardly any pointer, no switching
    assert sum(e["kind"] in ("key", "scroll") for e in ev) >= 0.9 * len(ev)
    # one app: the switch to it at the start, nothing after
    assert [e["ts"] < read.start + 10 for e in ev if e["kind"] == "focus"] in ([], [True])
    assert not inside(tr, read, ("idle",))


def test_readers_differ_in_how_they_turn_pages() -> None:
    share = {}
    for p in ("h090", "h210"):
        tr = gen("reader", p, "clean", 1)
        ev = inside(tr, only(tr, "reading"), ("key", "scroll"))
        share[p] = sum(e["kind"] == "scroll" for e in ev) / len(ev)
    assert share["h090"] < 0.5 < share["h210"]


@pytest.mark.parametrize("persona", ["h130", "h250"])
def test_designers_mostly_point(persona: str) -> None:
    tr = gen("designer", persona, "clean", 1)
    des = only(tr, "design")
    ev = inside(tr, des)
    mouse = [e for e in ev if e["kind"] == "mouse"]
    keys = [e for e in ev if e["kind"] == "key"]
    length = des.end - des.start
    assert sum(e["span_ms"] for e in mouse) / 1000 > 0.4 * length
    assert len(keys) < 30 * length / 60 and len(mouse) > 2 * len(keys)
    assert sum(e["clicks"] for e in mouse) > 5 * length / 60
    focus = {e["category"] for e in tr.events if e["kind"] == "focus" and des.start <= e["ts"]}
    assert "design" in focus


@pytest.mark.parametrize("persona", ["h090", "h170", "h250"])
def test_thinkers_pause_15_to_60_s_inside_focused_work(persona: str) -> None:
    tr = gen("thinker", persona, "clean", 2)
    think = only(tr, "thinking")
    ts = [began(e) for e in inside(tr, think)]
    long = [b - a for a, b in itertools.pairwise(ts) if b - a >= 15]
    assert len(long) >= 10 and max(long) <= 62
    # a good part of the time goes into thinking …
    assert sum(long) > 0.25 * (think.end - think.start)
    assert len(inside(tr, think, ("key",))) > 40 * 25  # … and focused coding in between
    # plain flow has far fewer such pauses
    flow_tr = gen("flow40", persona, "clean", 2)
    flow = only(flow_tr, "flow")
    flow_ts = [began(e) for e in inside(flow_tr, flow)]
    flow_long = [b - a for a, b in itertools.pairwise(flow_ts) if b - a >= 15]
    assert sum(flow_long) < 0.15 * (flow.end - flow.start)


def _switches_per_min(tr: Trace, span: TruthSpan) -> float:
    focus: list[str] = [e["app_id"] for e in inside(tr, span, ("focus",))]
    return sum(a != b for a, b in itertools.pairwise(focus)) / ((span.end - span.start) / 60)


def test_states_switch_apps_as_defined() -> None:
    tr = gen("day", "h210", "clean", 3)
    rates: dict[str, list[float]] = {}
    for span in tr.truth:
        rates.setdefault(span.activity, []).append(_switches_per_min(tr, span))
    mean = {k: statistics.mean(v) for k, v in rates.items()}
    assert mean["distracted"] >= 5  # hops every few seconds
    assert 0.8 <= mean["transitioning"] <= 2.5  # 1-2 a minute
    assert 0.2 <= mean["neutral"] <= 1.0  # every 1-4 minutes
    assert mean["flow"] <= 0.4 and mean["hyperfocus"] <= 0.15 and mean["reading"] == 0
    sw = gen("switchy", "h250", "noisy", 1)
    by_state: dict[str, list[float]] = {}
    for span in sw.truth:
        by_state.setdefault(span.state, []).append(_switches_per_min(sw, span))
    assert min(by_state["DISTRACTED"]) > max(by_state["TRANSITIONING"])
    assert min(by_state["TRANSITIONING"]) > max(by_state["FLOW"])


def test_idle_is_almost_silent_and_coffee_is_silent() -> None:
    tr = gen("day", "h130", "noisy", 4)
    coffee = only(tr, "coffee")
    assert not [e for e in user_input(tr) if coffee.start + 3 < e["ts"] < coffee.end]
    for seed in (1, 2, 3):
        idle_tr = gen("idle40", "h130", "clean", seed)
        idle = only(idle_tr, "idle")
        stray = [e for e in inside(idle_tr, idle) if e["ts"] > idle.start + 3]
        # a stray nudge of the mouse now and then (a sample or two each), nothing else
        assert all(e["kind"] == "mouse" and e["clicks"] == 0 for e in stray)
        assert len(_clusters([e["ts"] for e in stray])) <= 5
        # and the resuming input after it is announced as a long idle span
        longest = max(e["duration_s"] for e in idle_tr.events if e["kind"] == "idle")
        assert longest > 300
