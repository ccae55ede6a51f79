"""`skelly sim --record FILE`: the captured events as NDJSON that `skelly replay` and `skelly send`
take (docs/INGEST.md §4), from a real headless run; a file that cannot be written is a one-line
error before anything starts."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from modules.ingest.validate import validate_event
from tests.sim.ingest_helpers import make_token, start_service, stored_seqs
from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
SKELLY = [sys.executable, "-m", "skelly.cli"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("SKELLY_DATA_DIR", None)
    return env


def test_record_writes_what_replay_and_send_take(tmp_path: Path) -> None:
    record = tmp_path / "captured.ndjson"
    sim = subprocess.run(
        [
            # the 21-min idle scenario at 300x: it repeats (a new session, seq from 1 again)
            *(*SKELLY, "sim", "--headless", "--duration", f"{allow(10.0):g}", "--speed", "300"),
            *("--scenario", "idle", "--record", str(record)),
        ],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=allow(100.0),
    )
    assert sim.returncode == 0, sim.stderr + sim.stdout
    runs = re.search(r"host: (\d+) scenario runs done", sim.stdout)
    assert runs and int(runs.group(1)) >= 1, sim.stdout
    said = re.search(r"recorded (\d+) captured events to (.+)$", sim.stdout, re.M)
    assert said and said.group(2) == str(record), sim.stdout
    lines = record.read_bytes().splitlines()
    assert len(lines) == int(said.group(1)) > 100
    events = [orjson.loads(line) for line in lines]
    # every line is an event the Pi's own validator accepts, numbered 1, 2, 3 … in time order
    for obj in events:
        validate_event(obj, "h", "s")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["kind"] for e in events} >= {"key", "focus", "idle"}
    assert all(a["ts"] <= b["ts"] for a, b in itertools.pairwise(events))

    replay = subprocess.run(
        [*SKELLY, "replay", str(record)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=allow(60.0),
    )
    assert replay.returncode == 0, replay.stderr
    windows = [orjson.loads(line) for line in replay.stdout.splitlines()]
    assert len(windows) >= 10
    assert {w["state"] for w in windows} - {"NEUTRAL"}, windows  # the capture says something

    # skelly send streams the same file into a real ingest service, which stores every event
    async def send() -> list[int]:
        token_file, _token = make_token(tmp_path)
        db = tmp_path / "db"
        db.mkdir()
        service = await start_service(db, token_file)
        try:
            proc = await asyncio.create_subprocess_exec(
                *SKELLY,
                "send",
                str(record),
                *("--to", f"127.0.0.1:{service.port}", "--token-file", str(token_file)),
                *("--host-id", "rec", "--session", "rec-1", "--quiet", "--timeout", "60"),
                *("--spool", str(tmp_path / "spool.ndjson")),
                cwd=ROOT,
                env=_env(tmp_path),
                stderr=asyncio.subprocess.PIPE,
            )
            _out, err = await asyncio.wait_for(proc.communicate(), allow(90.0))
            assert proc.returncode == 0, err.decode()
        finally:
            await service.terminate()
        return stored_seqs(db, "rec", "rec-1")

    assert asyncio.run(send()) == list(range(1, len(events) + 1))


def test_record_into_a_missing_directory_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "no" / "such" / "dir" / "x.ndjson"
    proc = subprocess.run(
        [*SKELLY, "sim", "--headless", "--duration", "1", "--record", str(bad)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=allow(60.0),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"skelly: error: cannot write --record {bad}: ")
    assert "give a file in a directory you can write" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
