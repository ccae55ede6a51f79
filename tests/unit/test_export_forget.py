"""``skelly export`` and ``skelly forget`` through ``skelly.cli.main`` on real databases in temp
directories: with no service, with the service holding the database, and with nothing stored."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from bus.messages import RawEvent
from modules.ingest.client import Spool
from modules.storage import Storage, StorageConfig
from skelly.cli import main


def write_config(tmp: Path, data: Path) -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(f'data_dir = "{data}"\n\n[storage]\nraw_retention_hours = 12.0\n')
    return cfg


def events(n: int, session: str = "s1") -> list[RawEvent]:
    out = []
    for i in range(1, n + 1):
        if i % 3 == 0:
            out.append(
                RawEvent("h1", session, i, "mouse", 100.0 + i, (("speed", 2.5), ("clicks", 1)))
            )
        else:
            out.append(RawEvent("h1", session, i, "key", 100.0 + i, (("correction", i == 1),)))
    return out


async def _fill(data: Path, n: int) -> None:
    async with Storage(StorageConfig(commit_max_wait_s=0.0), data) as st:
        await st.commit(events(n))
        await st.commit(events(2, session="s2"))
        await st.put_state("gamification", {"coins": 7})

        def agg(db: Any) -> None:
            with db.transaction():
                db.put_aggregate("h1", 60.0, 120.0, 4, {"kinds": {"key": 4}})
                db.put_state_segment(60.0, 90.0, "FLOW", 3, 2.4)

        await st._require_writer().call(agg)


def fill(data: Path, n: int = 12_345) -> None:
    asyncio.run(_fill(data, n))


def feed_stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_export_to_a_file_has_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    fill(data)
    out = tmp_path / "export.json"
    assert (
        main(["export", "--config", str(write_config(tmp_path, data)), "--output", str(out)]) == 0
    )
    assert out.stat().st_mode & 0o777 == 0o600
    doc = orjson.loads(out.read_bytes())
    assert doc["format"] == "skelly-export/1"
    assert doc["counts"] == {
        "events": 12_347,
        "sessions": 2,
        "aggregates": 1,
        "states": 1,
        "state_keys": 1,
    }
    evs = doc["events"]
    assert len(evs) == 12_347  # more than two streaming chunks
    s1 = [e for e in evs if e["session_id"] == "s1"]
    assert [e["seq"] for e in s1] == list(range(1, 12_346))
    assert s1[0] == {
        "host_id": "h1",
        "session_id": "s1",
        "seq": 1,
        "kind": "key",
        "ts": 101.0,
        "correction": True,
    }
    assert s1[2] == {
        "host_id": "h1",
        "session_id": "s1",
        "seq": 3,
        "kind": "mouse",
        "ts": 103.0,
        "speed": 2.5,
        "clicks": 1,
    }
    assert doc["state"]["gamification"]["value"] == {"coins": 7}
    assert doc["aggregates"][0]["stats"] == {"kinds": {"key": 4}}
    assert doc["states"][0]["state"] == "FLOW"
    assert doc["states"][0]["mean_confidence"] == pytest.approx(0.8)
    assert {s["session_id"]: s["max_seq"] for s in doc["sessions"]} == {"s1": 12_345, "s2": 2}
    assert "12347 raw events" in capsys.readouterr().err


def test_export_to_stdout_while_the_service_holds_the_database(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path, data)

    async def scenario() -> int:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), data) as st:
            await st.commit(events(50))
            # the service is running (database open, WAL not checkpointed): a concurrent reader
            code = await asyncio.to_thread(main, ["export", "--config", str(cfg)])
            await st.commit(events(60)[50:])
            return code

    assert asyncio.run(scenario()) == 0
    doc = orjson.loads(capsysbinary.readouterr().out)
    assert [e["seq"] for e in doc["events"]] == list(range(1, 51))


def test_export_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, tmp_path / "empty")
    assert main(["export", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skelly: error: there is no database at")
    assert not (tmp_path / "empty").exists()  # export creates nothing


def test_export_to_a_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    fill(data, 10)
    cfg = write_config(tmp_path, data)
    assert main(["export", "--config", str(cfg), "--output", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_forget_with_yes_deletes_everything_including_corrupt_copies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    fill(data, 100)
    (data / "skelly.db.corrupt-20260101T000000000000Z").write_bytes(b"old")
    (data / "skelly.db.corrupt-20260101T000000000000Z-wal").write_bytes(b"old")
    cfg = write_config(tmp_path, data)
    assert main(["forget", "--config", str(cfg), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted 102 raw events, 1 aggregates, 1 state-history segments" in out
    assert sorted(p.name for p in data.iterdir()) == ["skelly.db.lock"]
    # and a new service starts from nothing
    assert main(["export", "--config", str(cfg)]) == 2


def test_forget_asks_and_only_the_word_confirms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    fill(data, 10)
    cfg = write_config(tmp_path, data)
    feed_stdin(monkeypatch, "yes\n")
    assert main(["forget", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "Type 'forget'" in out and "nothing was deleted" in out
    assert "12 raw events" in out
    assert (data / "skelly.db").exists()
    feed_stdin(monkeypatch, "")  # EOF: not confirmed
    assert main(["forget", "--config", str(cfg)]) == 1
    assert (data / "skelly.db").exists()
    feed_stdin(monkeypatch, "forget\n")
    assert main(["forget", "--config", str(cfg)]) == 0
    assert not (data / "skelly.db").exists()


def test_forget_with_nothing_stored_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, tmp_path / "never")
    assert main(["forget", "--config", str(cfg), "--yes"]) == 0
    assert "nothing to forget: there is no database at" in capsys.readouterr().out


def test_forget_refuses_while_the_service_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    cfg = write_config(tmp_path, data)

    async def scenario() -> int:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), data) as st:
            await st.commit(events(5))
            code = await asyncio.to_thread(main, ["forget", "--config", str(cfg), "--yes"])
            # the service keeps working
            assert await st.commit(events(6)[5:]) == 1
            return code

    assert asyncio.run(scenario()) == 2
    err = capsys.readouterr().err
    assert "in use by another skelly process" in err and "nothing was deleted" in err
    assert (data / "skelly.db").exists()
    assert main(["export", "--config", str(cfg), "--output", str(tmp_path / "e.json")]) == 0
    assert orjson.loads((tmp_path / "e.json").read_bytes())["counts"]["events"] == 6


def test_export_of_a_damaged_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "skelly.db").write_bytes(b"definitely not sqlite" * 500)
    cfg = write_config(tmp_path, data)
    assert main(["export", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "cannot read the database" in err and "moves a damaged database aside" in err
    # forget still cleans it up
    assert main(["forget", "--config", str(cfg), "--yes"]) == 0
    assert "cannot be read" in capsys.readouterr().out
    assert not (data / "skelly.db").exists()


@pytest.mark.parametrize("half", ["first", "second"])
def test_export_of_a_file_damaged_inside_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], half: str
) -> None:
    # the header and schema are intact (the database opens), the damage shows only while
    # reading the rows: still an error message, not a traceback
    data = tmp_path / "data"
    fill(data, 20_000)
    db = data / "skelly.db"
    pages = db.stat().st_size // 4096
    start = 2 if half == "first" else pages // 2
    with db.open("r+b") as f:
        f.seek(start * 4096)
        f.write(b"\xa5" * (pages // 3) * 4096)
    cfg = write_config(tmp_path, data)
    out = tmp_path / "e.json"
    assert main(["export", "--config", str(cfg), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "skelly: error:" in err and "Traceback" not in err
    assert "damaged" in err
    assert not out.exists() and list(tmp_path.glob(".e.json.*")) == []


def _spool(data: Path, name: str) -> Spool:
    spool = Spool(data / "spool" / f"{name}.ndjson", "laptop", name)
    spool.load()  # takes its lock
    spool.open([b'{"kind":"key","seq":1,"ts":1.0,"correction":false}'])
    return spool


def test_forget_deletes_the_spool_of_skelly_send_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # spooled events are raw timing events: `forget` left them behind
    data = tmp_path / "data"
    fill(data, 10)
    for name in ("s1", "s2"):
        spool = _spool(data, name)
        spool.close([b'{"kind":"key","seq":1,"ts":1.0,"correction":false}'])  # kept: not acked
    cfg = write_config(tmp_path, data)
    assert main(["forget", "--config", str(cfg), "--yes"]) == 0
    assert "and 2 spool files of skelly send" in capsys.readouterr().out
    assert sorted(p.name for p in data.iterdir()) == ["skelly.db.lock"]


def test_forget_with_only_a_spool_left_deletes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    _spool(data, "s1").close([b'{"kind":"key","seq":1,"ts":1.0,"correction":false}'])
    cfg = write_config(tmp_path, data)
    assert main(["forget", "--config", str(cfg), "--yes"]) == 0
    assert not (data / "spool").exists()


def test_forget_refuses_while_a_sender_holds_a_spool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    fill(data, 10)
    spool = _spool(data, "live")  # a running skelly send
    try:
        cfg = write_config(tmp_path, data)
        assert main(["forget", "--config", str(cfg), "--yes"]) == 2
        err = capsys.readouterr().err
        assert "in use by a running skelly send" in err and "nothing was deleted" in err
        assert (data / "skelly.db").exists() and spool.path.exists()
    finally:
        spool.close([])
