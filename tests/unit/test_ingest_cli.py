"""``skelly token`` and ``skelly send`` as a user runs them (real processes, real TCP, SQLite)."""

from __future__ import annotations

import asyncio
import os
import re
import stat
import sys
from pathlib import Path

import orjson

from tests.sim.ingest_helpers import ROOT, free_port, make_token, start_service, stored_seqs

TS = 1_764_212_345.0
SKELLY = (sys.executable, "-m", "skelly.cli")


async def skelly(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "skelly.cli", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_skelly_token_creates_once_shows_and_renews(tmp_path: Path) -> None:
    env = {"SKELLY_DATA_DIR": str(tmp_path / "state")}

    async def main() -> None:
        code, out, err = await skelly("token", env=env)
        assert code == 0 and "created" in err
        token = out.strip()
        path = tmp_path / "state" / "ingest.token"
        assert len(token) >= 43 and path.read_text().strip() == token
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        code, out, _ = await skelly("token", env=env)
        assert code == 0 and out.strip() == token
        code, out, _ = await skelly("token", "--new", env=env)
        assert code == 0 and out.strip() != token
        code, out, _ = await skelly("token", "--path", env=env)
        assert out.strip() == str(path)
        os.chmod(path, 0o644)
        code, _, err = await skelly("token", env=env)
        assert code == 2 and "skelly: error:" in err and "chmod 600" in err

    asyncio.run(main())


def test_skelly_send_streams_a_file_and_reports_refusals(tmp_path: Path) -> None:
    token_file, _ = make_token(tmp_path)
    db = tmp_path / "data"
    events = [orjson.dumps({"kind": "key", "ts": TS + i, "correction": False}) for i in range(300)]
    events.insert(100, b"{not json")
    events.insert(200, orjson.dumps({"kind": "focus", "ts": TS, "category": "code",
                                     "app_id": "a1", "title": "secret"}))  # fmt: skip
    src = tmp_path / "events.ndjson"
    src.write_bytes(b"\n".join(events) + b"\n")

    async def main() -> None:
        service = await start_service(db, token_file)
        try:
            code, _, err = await skelly(
                "send", "--to", f"127.0.0.1:{service.port}", "--token-file", str(token_file),
                "--session", "file-1", "--host-id", "laptop", "--spool", str(tmp_path / "sp"),
                str(src),
            )  # fmt: skip
            assert code == 1, err  # something was refused or skipped
            assert "input line 101 is not JSON" in err
            assert "refused event seq" in err and "privacy" in err
            assert "secret" not in err
            bad = tmp_path / "other.token"
            bad.write_text("Z" * 43 + "\n")
            bad.chmod(0o600)
            code, _, err = await skelly(
                "send", "--to", f"127.0.0.1:{service.port}", "--token-file", str(bad),
                "--spool", str(tmp_path / "sp2"), str(src),
            )  # fmt: skip
            assert code == 2 and "skelly: error:" in err and "token" in err
        finally:
            await service.terminate()
        seqs = stored_seqs(db, "laptop", "file-1")
        assert len(seqs) == 300 and seqs[-1] == 301  # the refused event kept its seq (200 + 1)
        assert not (tmp_path / "sp").exists()  # everything acknowledged: spool removed
        assert not (tmp_path / "sp.lock").exists()  # and its lock

    asyncio.run(main())


def test_skelly_send_spools_while_the_pi_is_down_and_resumes(tmp_path: Path) -> None:
    token_file, _ = make_token(tmp_path)
    db = tmp_path / "data"
    spool = tmp_path / "spool.ndjson"
    port = free_port()
    stdin = b"".join(
        orjson.dumps({"kind": "mouse", "ts": TS + i, "speed": 5.5, "clicks": 0, "span_ms": 1000})
        + b"\n"
        for i in range(100)
    )
    args = ["send", "--to", f"127.0.0.1:{port}", "--token-file", str(token_file),
            "--session", "down-1", "--host-id", "laptop", "--spool", str(spool)]  # fmt: skip

    async def main() -> None:
        code, _, err = await skelly(*args, "--timeout", "1", "-", stdin=stdin)
        assert code == 1 and "100 events not acknowledged" in err and "--session down-1" in err
        assert len(spool.read_bytes().splitlines()) == 101  # header + 100 events
        service = await start_service(db, token_file, port)
        try:
            code, _, err = await skelly(*args, "-", stdin=b"")
            assert code == 0, err
            assert "resuming 100 spooled events" in err
        finally:
            await service.terminate()
        assert stored_seqs(db, "laptop", "down-1") == list(range(1, 101))
        assert not spool.exists()

    asyncio.run(main())


def test_skelly_send_killed_with_sigkill_keeps_what_it_read_in_the_spool(tmp_path: Path) -> None:
    # stdin from a live capture agent cannot be read twice: once `skelly send` has read an
    # event, the spool file must hold it even if the sender dies without cleaning up
    token_file, _ = make_token(tmp_path)
    db = tmp_path / "data"
    spool = tmp_path / "spool.ndjson"
    port = free_port()
    lines = b"".join(
        orjson.dumps({"kind": "key", "ts": TS + i, "correction": False}) + b"\n" for i in range(50)
    )
    args = ["send", "--to", f"127.0.0.1:{port}", "--token-file", str(token_file),
            "--session", "kill-1", "--host-id", "laptop", "--spool", str(spool)]  # fmt: skip

    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "skelly.cli", *args, "-q", "-",
            stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(lines)
        await proc.stdin.drain()  # stdin stays open: the agent is still running
        deadline = asyncio.get_running_loop().time() + 30.0
        while not (spool.exists() and len(spool.read_bytes().splitlines()) == 51):
            assert asyncio.get_running_loop().time() < deadline, "events never reached the spool"
            await asyncio.sleep(0.05)
        proc.kill()
        await proc.wait()
        service = await start_service(db, token_file, port)
        try:
            code, _, err = await skelly(*args, "-", stdin=b"")
            assert code == 0 and "resuming 50 spooled events" in err, err
        finally:
            await service.terminate()
        assert stored_seqs(db, "laptop", "kill-1") == list(range(1, 51))

    asyncio.run(main())


def test_skelly_send_run_again_on_the_same_file_does_not_store_it_twice(tmp_path: Path) -> None:
    # "run the same command again with the same --session": with a FILE the same lines must get
    # the same seqs, so what the first run spooled or stored is not sent a second time as new
    token_file, _ = make_token(tmp_path)
    db = tmp_path / "data"
    spool = tmp_path / "spool.ndjson"
    port = free_port()
    src = tmp_path / "events.ndjson"
    src.write_bytes(
        b"".join(
            orjson.dumps({"kind": "key", "ts": TS + i, "correction": False}) + b"\n"
            for i in range(60)
        )
    )
    args = ["send", "--to", f"127.0.0.1:{port}", "--token-file", str(token_file),
            "--session", "file-again", "--host-id", "laptop", "--spool", str(spool)]  # fmt: skip

    async def main() -> None:
        code, _, err = await skelly(*args, "--timeout", "1", str(src))  # the Pi is down
        assert code == 1 and "60 events not acknowledged" in err
        service = await start_service(db, token_file, port)
        try:
            code, _, err = await skelly(*args, str(src))  # interrupted run, same command again
            assert code == 0, err
            code, _, err = await skelly(*args, str(src))  # and once more after it completed
            assert code == 0, err
        finally:
            await service.terminate()
        assert stored_seqs(db, "laptop", "file-again") == list(range(1, 61))

    asyncio.run(main())


def test_default_sessions_differ_within_one_second() -> None:
    from skelly.commands.send import default_session

    ids = {default_session() for _ in range(50)}
    assert len(ids) == 50  # the time part is shared within a second; the random part is not
    assert all(re.fullmatch(r"send-\d{8}T\d{6}Z-[0-9a-f]{6}", i) for i in ids), ids


def test_two_senders_started_together_with_default_sessions_both_store_everything(
    tmp_path: Path,
) -> None:
    # they used to get the same send-<second> session: the second "resumed" the first's spool,
    # exited 0, and half of its events were never stored
    token_file, _ = make_token(tmp_path)
    db = tmp_path / "data"
    env = {"SKELLY_DATA_DIR": str(tmp_path / "host-state")}

    def events(offset: int) -> bytes:
        return b"".join(
            orjson.dumps({"kind": "key", "ts": TS + offset + i, "correction": False}) + b"\n"
            for i in range(80)
        )

    async def main() -> None:
        service = await start_service(db, token_file)
        try:
            args = ("send", "--to", f"127.0.0.1:{service.port}", "--token-file",
                    str(token_file), "--host-id", "laptop", "-")  # fmt: skip
            results = await asyncio.gather(
                skelly(*args, stdin=events(0), env=env), skelly(*args, stdin=events(1000), env=env)
            )
        finally:
            await service.terminate()
        sessions = []
        for code, _, err in results:
            assert code == 0, err
            sessions += re.findall(r"host laptop session (\S+) ", err)
        assert len(set(sessions)) == 2, sessions
        for session in sessions:
            assert stored_seqs(db, "laptop", session) == list(range(1, 81))
        assert list((tmp_path / "host-state" / "spool").iterdir()) == []  # no spool, no lock left

    asyncio.run(main())


def test_skelly_send_refuses_a_spool_in_use_by_another_sender(tmp_path: Path) -> None:
    token_file, _ = make_token(tmp_path)
    spool = tmp_path / "spool.ndjson"
    port = free_port()  # the Pi is down: the first sender keeps its spool open
    args = ("send", "--to", f"127.0.0.1:{port}", "--token-file", str(token_file),
            "--session", "same", "--host-id", "laptop", "--spool", str(spool))  # fmt: skip
    line = orjson.dumps({"kind": "key", "ts": TS, "correction": False}) + b"\n"

    async def main() -> None:
        first = await asyncio.create_subprocess_exec(
            *SKELLY, *args, "-q", "-", stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, cwd=ROOT,
        )  # fmt: skip
        assert first.stdin is not None
        first.stdin.write(line * 5)
        await first.stdin.drain()
        deadline = asyncio.get_running_loop().time() + 30.0
        while not (spool.exists() and len(spool.read_bytes().splitlines()) == 6):
            assert asyncio.get_running_loop().time() < deadline, "the first sender never spooled"
            await asyncio.sleep(0.05)
        code, _, err = await skelly(*args, "-", stdin=line)
        first.kill()
        await first.wait()
        assert code == 2, err
        errors = [s for s in err.splitlines() if s.startswith("skelly: error: the spool ")]
        assert len(errors) == 1 and f"pid {first.pid}" in errors[0], err
        assert len(spool.read_bytes().splitlines()) == 6  # the first's spool is untouched

    asyncio.run(main())


def test_skelly_send_says_why_it_cannot_connect_at_every_retry_and_timeout_bounds_it(
    tmp_path: Path,
) -> None:
    token_file, _ = make_token(tmp_path)
    port = free_port()  # nothing listens
    args = ("send", "--to", f"127.0.0.1:{port}", "--token-file", str(token_file), "-q",
            "--session", "never", "--spool", str(tmp_path / "sp"), "--timeout", "5",
            "-")  # fmt: skip
    line = orjson.dumps({"kind": "key", "ts": TS, "correction": False}) + b"\n"

    async def main() -> None:
        code, _, err = await skelly(*args, stdin=line * 3)
        assert code == 1, err
        tries = [
            s
            for s in err.splitlines()
            if s.startswith(f"skelly send: cannot connect to 127.0.0.1:{port}")
        ]
        assert len(tries) >= 2, err  # said again at each retry, even with --quiet
        assert all("connection refused" in s and "retrying in" in s for s in tries), tries
        assert f"never connected to 127.0.0.1:{port}" in err and "3 events not acknowledged" in err
        assert "Traceback" not in err

    asyncio.run(main())


def test_skelly_send_timeout_also_bounds_a_full_buffer_while_the_pi_is_down(
    tmp_path: Path,
) -> None:
    # more input than the send buffer (100,000 events): without a bound the sender waited for
    # room for ever although --timeout was given
    token_file, _ = make_token(tmp_path)
    spool = tmp_path / "sp"
    args = ("send", "--to", f"127.0.0.1:{free_port()}", "--token-file", str(token_file), "-q",
            "--session", "big", "--spool", str(spool), "--timeout", "1", "-")  # fmt: skip
    line = orjson.dumps({"kind": "key", "ts": TS, "correction": False}) + b"\n"

    async def main() -> None:
        code, _, err = await skelly(*args, stdin=line * 100_050)
        assert code == 1, err
        assert "gave up waiting after 1 s" in err and "100000 events not acknowledged" in err
        assert len(spool.read_bytes().splitlines()) == 100_001  # header + what was read

    asyncio.run(main())
