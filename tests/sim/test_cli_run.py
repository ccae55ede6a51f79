"""`skelly run` as a real service process: events sent with `skelly send` are stored durably and
come back out of `skelly export` after a SIGTERM; a second `skelly send` of the same session
continues after what the Pi has."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _skelly(*args: str, env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skelly.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kw,  # type: ignore[arg-type]
    )


def test_run_send_sigterm_export(tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "state"}"\n'
        f"[ingest]\nport = {port}\n"
        "[storage]\ncommit_max_wait_s = 0.0\n"
        "[figurine]\nserial_enabled = false\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    token = _skelly("token", "--config", str(config), env=env)
    assert token.returncode == 0, token.stderr
    token_file = tmp_path / "token"
    token_file.write_text(token.stdout.strip() + "\n")
    token_file.chmod(0o600)

    service = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None
        line = service.stdout.readline()
        assert "started" in line, line + (service.stderr.read() if service.stderr else "")
        t0 = time.time() - 100
        events = "".join(
            json.dumps({"kind": "key", "ts": t0 + i * 0.15, "correction": i % 9 == 0}) + "\n"
            for i in range(200)
        )
        sent = _skelly(
            "send",
            "--to",
            f"127.0.0.1:{port}",
            "--token-file",
            str(token_file),
            "--session",
            "s1",
            "--spool",
            str(tmp_path / "spool.ndjson"),
            "-",
            env=env,
            input=events,
        )
        assert sent.returncode == 0, sent.stderr

        # the same session again from stdin, its spool now empty, first while the Pi cannot
        # be reached (spooled, given up after --timeout), then with the Pi back: those events
        # and the new ones continue after what the Pi holds (numbered from 1 again, the Pi
        # would drop them as duplicates of the first run)
        def send_again(
            to: str, first: int, count: int, *extra: str
        ) -> subprocess.CompletedProcess[str]:
            lines = "".join(
                json.dumps({"kind": "key", "ts": t0 + 40 + (first + i) * 0.15, "correction": False})
                + "\n"
                for i in range(count)
            )
            return _skelly(
                "send",
                "--to",
                to,
                "--token-file",
                str(token_file),
                "--session",
                "s1",
                "--spool",
                str(tmp_path / "spool.ndjson"),
                *extra,
                "-",
                env=env,
                input=lines,
            )

        offline = send_again(f"127.0.0.1:{_free_port()}", 0, 30, "--timeout", "1")
        assert offline.returncode == 1 and "30 events not acknowledged" in offline.stderr, (
            offline.stderr
        )
        again = send_again(f"127.0.0.1:{port}", 30, 20)
        assert again.returncode == 0, again.stderr
        assert "numbered from 201" in again.stderr, again.stderr
        service.send_signal(signal.SIGTERM)
        out, err = service.communicate(timeout=30)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    assert "stopped cleanly" in out
    assert "Traceback" not in err, err

    exported = _skelly("export", "--config", str(config), env=env)
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    events_out = data["events"]
    assert [e["seq"] for e in events_out] == list(range(1, 251))
    assert {e["session_id"] for e in events_out} == {"s1"}
    assert [e["correction"] for e in events_out[:10]] == [i % 9 == 0 for i in range(10)]
