"""``skelly token`` and ``skelly send`` as a user runs them (real processes, real TCP, SQLite)."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from pathlib import Path

import orjson

from tests.sim.ingest_helpers import ROOT, free_port, make_token, start_service, stored_seqs

TS = 1_764_212_345.0


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
