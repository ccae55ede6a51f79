"""An independent trace (bench/traces/independent.py) through the installed ``skelly replay``: the
output contract the benchmark reads (docs/ANALYSIS.md §8), on a noisy host whose timestamps sit
on a 15.6 ms tick and sometimes go backwards, with repeated focus events, scroll events and idle
reports. What the states are is the benchmark's business; here only the contract is checked."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.analysis import Case, Tally
from bench.traces.independent import STATES, Seg, generate
from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
_INSTALLED = Path(sys.executable).with_name("skelly")
SKELLY = [str(_INSTALLED)] if _INSTALLED.exists() else [sys.executable, "-m", "skelly.cli"]

SCRIPT = (
    Seg("FLOW", 3),
    Seg("FLOW", 2, "reading"),
    Seg("DISTRACTED", 2),
    Seg("IDLE", 1.5, "coffee"),
    Seg("NEUTRAL", 2),
)


def _replay(tmp: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELLY_")}
    env["HOME"] = str(tmp)
    return subprocess.run(
        [*SKELLY, "replay", *args],
        cwd=tmp,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=allow(120),
    )


def _windows(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_a_noisy_independent_trace_replays_into_ordered_windows(tmp_path: Path) -> None:
    tr = generate(SCRIPT, "p090", seed=4, host="noisy", name="contract")
    kinds = {e["kind"] for e in tr.events}
    assert {"scroll", "idle", "focus", "key", "mouse"} <= kinds
    ts = [e["ts"] for e in tr.events]
    assert any(b < a for a, b in itertools.pairwise(ts))  # out of order, as the host sent them

    proc = _replay(tmp_path, "-", stdin=tr.ndjson())
    assert proc.returncode == 0, proc.stderr
    ws = _windows(proc.stdout)
    assert ws
    ends = [w["window_end"] for w in ws]
    # one window per 10 s step, in order, gaps included (the coffee break has no events)
    assert all(b - a == 10.0 for a, b in itertools.pairwise(ends))
    assert all(e % 10 == 0 for e in ends)
    # the first window holds the first event, the last the last
    assert ends[0] - 30 <= min(ts) < ends[0]
    assert ends[-1] - 30 <= max(ts) < ends[-1]
    for w in ws:
        assert w["state"] in STATES
        assert isinstance(w["confidence"], float) and 0.0 <= w["confidence"] <= 1.0
        assert math.isfinite(w["window_end"])
        if "window_start" in w:
            assert w["window_start"] == w["window_end"] - 30
        if "time_in_state_s" in w:
            assert w["time_in_state_s"] >= 0
    # nothing stored without --state-dir
    assert list(tmp_path.iterdir()) == []

    # the same trace from a file gives the same windows; the benchmark can score them
    path = tmp_path / "trace.ndjson"
    path.write_text(tr.ndjson())
    again = _replay(tmp_path, str(path))
    assert again.returncode == 0, again.stderr
    assert _windows(again.stdout) == ws

    tally = Tally()
    tally.add(Case("independent", tr.name, tr.persona, tr.seed, tr.host, "", [
        (s.start, s.end, s.state, s.activity) for s in tr.truth], ws), 30.0)  # fmt: skip
    report = tally.report()
    # every window that lies in one segment and ends >= 60 s after its start is scored
    expected = sum(
        1
        for w in ws
        for s in tr.truth
        if s.start <= w["window_end"] - 30 and w["window_end"] <= s.end
        and w["window_end"] >= s.start + 60
    )  # fmt: skip
    assert report["windows_scored"] == expected > 0
    assert set(report["by_activity"]) == {"flow", "reading", "distracted", "coffee", "neutral"}
    assert sum(report["changes"].values()) == 3  # FLOW -> DISTRACTED -> IDLE -> NEUTRAL
