"""Shared helpers for the ingest sim tests: a real service process, free ports, DB checks."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from modules.ingest.token import new_token, write_token

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "tests" / "sim" / "ingest_service.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_token(tmp: Path) -> tuple[Path, str]:
    path = tmp / "ingest.token"
    token = new_token()
    write_token(path, token)
    return path, token


@dataclass
class Service:
    proc: asyncio.subprocess.Process
    port: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def kill9(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    async def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.returncode is None:
            self.proc.terminate()
        return await asyncio.wait_for(self.proc.wait(), timeout)


async def start_service(
    db: Path, token_file: Path, port: int = 0, *extra: str, timeout: float = 15.0
) -> Service:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SERVICE),
        "--db",
        str(db),
        "--port",
        str(port),
        "--token-file",
        str(token_file),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line.startswith(b"READY "):
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"ingest service did not start: {line!r}")
    return Service(proc, int(line.split()[1]))


def db_file(db: Path) -> Path:
    return db / "skelly.db" if db.is_dir() else db


def stored_seqs(db: Path, host_id: str, session_id: str) -> list[int]:
    """Every stored seq of the session, in order (opens the real database file read-write so a
    WAL left by a killed process is recovered exactly as SQLite would)."""
    conn = sqlite3.connect(db_file(db), timeout=10)
    try:
        rows = conn.execute(
            "SELECT e.seq FROM events e JOIN sessions s ON e.session = s.id "
            "WHERE s.host_id = ? AND s.session_id = ? ORDER BY e.seq",
            (host_id, session_id),
        ).fetchall()
    finally:
        conn.close()
    return [r[0] for r in rows]


def event_rows(db: Path) -> int:
    conn = sqlite3.connect(db_file(db), timeout=10)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def integrity(db: Path) -> list[str]:
    conn = sqlite3.connect(db_file(db), timeout=10)
    try:
        return [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    finally:
        conn.close()


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
