"""``skelly replay`` (docs/ANALYSIS.md §8): a recorded capture through the service's windowing and
analysis, one JSON line per window.  Real processes for the command line; the windows it cuts are
compared with ``hw_sim.scenarios.windows`` (written separately from Storage's windowing)."""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from hw_sim.scenarios import scenario, windows
from modules.analysis import WindowAnalyzer

ROOT = Path(__file__).resolve().parents[2]
SKELLY = (sys.executable, "-m", "skelly.cli")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELLY_")}
    env.update(HOME=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    return env


def replay(tmp: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SKELLY, "replay", *args],
        cwd=ROOT,
        env=_env(tmp),
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def lines(out: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in out.splitlines()]


def capture(name: str = "workday", seed: int = 3, drop_seq: bool = False) -> list[dict[str, Any]]:
    sc = scenario(name, seed=seed)
    evs = [dict(e) for e in sc.events]
    if drop_seq:
        for e in evs:
            del e["seq"]
    return evs


def ndjson(evs: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(e) + b"\n" for e in evs)


def test_replay_matches_offline_windowing_and_analysis(tmp_path: Path) -> None:
    sc = scenario("flow", seed=3)
    f = tmp_path / "cap.ndjson"
    f.write_bytes(ndjson([dict(e) for e in sc.events]))
    proc = replay(tmp_path, str(f))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    out = lines(proc.stdout)
    ends = [o["window_end"] for o in out]
    assert ends == sorted(ends) and len(set(ends)) == len(ends)
    assert all(e % 10 == 0 for e in ends)
    # the first window holds the first event, the last one the last event
    first_ts, last_ts = sc.events[0]["ts"], sc.events[-1]["ts"]
    assert ends[0] - 10 <= first_ts < ends[0]
    assert ends[-1] - 10 <= last_ts < ends[-1]
    # and it is exactly the windows Storage would cut (every 10 s, empty ones too), analysed
    raw = sc.raw_events("replay", "replay-1")
    analyzer = WindowAnalyzer()
    expected = [
        analyzer.analyze(b.window_start, b.window_end, b.events)
        for b in windows(raw, ends[0] - 30, ends[-1])
    ]
    assert [(o["window_end"], o["state"], o["confidence"]) for o in out] == [
        (r.window_end, r.step.state.value, round(r.step.confidence, 4)) for r in expected
    ]
    assert {o["host_id"] for o in out} == {"replay"}
    assert {"window_start", "raw_state", "time_in_state_s"} <= set(out[0])
    states = {o["state"] for o in out}
    assert "FLOW" in states and "NEUTRAL" in states


def test_replay_stdin_without_seq_with_hello_ping_and_duplicates(tmp_path: Path) -> None:
    evs = capture("idle", seed=2)
    with_seq = ndjson(evs)
    no_seq = [{k: v for k, v in e.items() if k != "seq"} for e in evs]
    hello = {"kind": "hello", "proto": 1, "host_id": "lap-7", "session_id": "s1"}
    body = [orjson.dumps(hello), b"", orjson.dumps({"kind": "ping"})]
    body += [orjson.dumps(e) for e in no_seq[:50]]
    body += [orjson.dumps(e) for e in evs[10:50]]  # resent with their seq: duplicates
    body += [orjson.dumps(e) for e in no_seq[50:]]
    a = replay(tmp_path, "-", stdin=with_seq)
    b = replay(tmp_path, stdin=b"\n".join(body) + b"\n")
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    la, lb = lines(a.stdout), lines(b.stdout)
    assert {o["host_id"] for o in lb} == {"lap-7"}
    assert [(o["window_end"], o["state"]) for o in la] == [
        (o["window_end"], o["state"]) for o in lb
    ]
    assert "IDLE" in {o["state"] for o in la}


def test_replay_gap_in_input_gives_empty_windows(tmp_path: Path) -> None:
    evs = capture("flow", seed=1)
    head = [e for e in evs if e["ts"] < evs[0]["ts"] + 300]
    tail = [
        {**e, "ts": e["ts"] + 600}
        for e in evs
        if evs[0]["ts"] + 300 <= e["ts"] < evs[0]["ts"] + 400
    ]
    proc = replay(tmp_path, stdin=ndjson(head + tail))
    assert proc.returncode == 0, proc.stderr
    ends = [o["window_end"] for o in lines(proc.stdout)]
    assert all(b - a == 10 for a, b in itertools.pairwise(ends))
    assert ends[-1] - ends[0] >= 900


@pytest.mark.parametrize(
    ("stdin", "expect"),
    [
        (b'{"kind":"key","seq":1,"ts":1764230400.0,"correction":false}\nnot json\n', "line 2"),
        (b'{"kind":"key","seq":1,"ts":1764230400.0,"correction":false,"title":"x"}\n', "title"),
        (b'{"kind":"scrollz","seq":1,"ts":1764230400.0}\n', "kind"),
        (b'{"kind":"key","seq":1,"ts":5,"correction":false}\n', "ts"),
    ],
)
def test_replay_bad_input_is_one_error_line(tmp_path: Path, stdin: bytes, expect: str) -> None:
    proc = replay(tmp_path, stdin=stdin)
    assert proc.returncode == 2
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skelly: error: input line"), err
    assert expect in err[0]
    assert b"Traceback" not in proc.stderr


def test_replay_missing_file_is_one_error_line(tmp_path: Path) -> None:
    proc = replay(tmp_path, str(tmp_path / "nope.ndjson"))
    assert proc.returncode == 2
    err = proc.stderr.decode().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("skelly: error: cannot read"), err


def test_replay_stores_nothing_unless_state_dir(tmp_path: Path) -> None:
    evs = capture("idle", seed=1)[:400]
    home = tmp_path / "home"
    home.mkdir()
    before = sorted(p for p in home.rglob("*"))
    proc = replay(home, stdin=ndjson(evs))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p for p in home.rglob("*")) == before
    state = tmp_path / "state"
    proc2 = replay(home, "--state-dir", str(state), stdin=ndjson(evs))
    assert proc2.returncode == 0, proc2.stderr
    assert proc2.stdout == proc.stdout
    db = sqlite3.connect(state / "skelly.db")
    try:
        assert db.execute("select count(*) from events").fetchone()[0] == len(evs)
    finally:
        db.close()


TIE = ("IDLE", "DISTRACTED", "HYPERFOCUS", "FLOW", "TRANSITIONING", "NEUTRAL")


def _check_terms(t: dict[str, float]) -> None:
    """Every combined term is the min (AND) or max (OR) of its named parts."""
    parts: dict[str, list[float]] = {}
    for name, v in t.items():
        if "." in name:
            parts.setdefault(name.split(".")[0], []).append(v)
    ors = {"settled", "distracted", "switching", "engaged", "idle"}
    assert {"flow_now", "flow_held", "flow_core", "transitioning", "idle"} <= set(parts)
    for name, vs in parts.items():
        want = max(vs) if name in ors else min(vs)
        assert t[name] == pytest.approx(want, abs=1e-4), name


def test_replay_explain_says_why_each_window_got_its_state(tmp_path: Path) -> None:
    f = tmp_path / "cap.ndjson"
    f.write_bytes(ndjson(capture("flow")))  # 4 min NEUTRAL, 20 min FLOW, 4 min NEUTRAL
    plain = replay(tmp_path, str(f))
    proc = replay(tmp_path, "--explain", str(f))
    assert proc.returncode == 0, proc.stderr
    out = lines(proc.stdout)
    # the same lines as without --explain, each with one more key
    assert [{k: v for k, v in o.items() if k != "explain"} for o in out] == lines(plain.stdout)
    assert "explain" not in lines(plain.stdout)[0]
    for o in out:
        x = o["explain"]
        s, t = x["scores"], x["terms"]
        assert tuple(s) == TIE
        best = max(s.values())
        assert o["raw_state"] == next(k for k in TIE if s[k] == best)
        _check_terms(t)
        # the scores are made of the terms shown
        a = 2e-4
        assert s["HYPERFOCUS"] == pytest.approx(min(t["flow_core"], t["dense"]), abs=a)
        assert s["FLOW"] == pytest.approx(min(t["flow_core"], 1 - t["dense"]), abs=a)
        assert s["DISTRACTED"] == pytest.approx(t["distracted"], abs=a)
        assert s["TRANSITIONING"] == pytest.approx(t["transitioning"], abs=a)
        assert s["IDLE"] == pytest.approx(t["idle"], abs=a)
        others = max(t["idle"], t["distracted"], t["flow_core"], t["transitioning"])
        assert s["NEUTRAL"] == pytest.approx(min(t["engaged"], 1 - others), abs=a)
        assert t["flow_core.focused"] == pytest.approx(max(t["flow_now"], t["flow_held"]), abs=a)
        # the three spans end at the window's end: 30 s, a minute, four minutes at most
        spans = x["features"]
        assert spans["window"]["duration_s"] == 30
        assert 30 <= spans["medium"]["duration_s"] <= 60 <= spans["long"]["duration_s"] <= 240
        assert 0 < x["person"]["flow_duty"] < 1 and x["person"]["scale"] > 0
        assert x["context"]["silence_s"] >= 0
        for p in x["pending"].values():
            # a change with two votes and its evidence would have been made
            assert p["votes"] >= 1 and p["evidence"] > 0
            assert p["votes"] < 2 or p["evidence"] < p["need"]
    # the change into FLOW was under way in the window before it, and done in it
    i = next(i for i, o in enumerate(out) if o["state"] == "FLOW")
    before = out[i - 1]["explain"]["pending"]
    assert before["FLOW"]["votes"] >= 1 and out[i - 1]["raw_state"] == "FLOW"
    assert "FLOW" not in out[i]["explain"]["pending"]
    assert out[i]["explain"]["terms"]["flow_core"] > 0.5
    # in NEUTRAL before it, flow_now was held back by something named
    first = out[3]["explain"]["terms"]
    assert out[3]["state"] == "NEUTRAL"
    assert min(v for k, v in first.items() if k.startswith("flow_now.")) == first["flow_now"]
