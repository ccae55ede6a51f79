"""Every command with the mistakes people make (docs/CLI.md): real `skelly` processes, real
files, sockets, locks and users.  Each must end with exactly one `skelly: error:` line that names
the cause, no traceback, and the documented exit status; `skelly run` must not stay up serving
nothing after a start-up fault.

Permission cases run the command as another user (`setpriv --reuid=nobody` when the tests run as
root, where chmod denies nothing) on a directory only the test's user may use; as a normal user a
chmod 0o000 directory does the same.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.messages import RawEvent
from modules.ingest.client import lock_spool, unlock_spool
from modules.storage import Storage, StorageConfig

ROOT = Path(__file__).resolve().parents[2]
SKELLY = (sys.executable, "-m", "skelly.cli")


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELLY_")}
    env.update(HOME=str(tmp), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def skelly(
    *args: str,
    env: dict[str, str],
    prefix: tuple[str, ...] = (),
    stdin: str = "",
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *SKELLY, *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error(proc: subprocess.CompletedProcess[str], *names: str, status: int = 2) -> str:
    """The single `skelly: error:` line; it must contain every one of ``names``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("skelly: error: ")]
    assert len(errors) == 1, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


@pytest.fixture
def other_user_dir() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A directory (0700, ours) and the prefix that runs a command as a user who cannot use it."""
    base = Path(tempfile.mkdtemp(prefix="skelly-perm-"))
    base.chmod(0o755)
    private = base / "data"
    private.mkdir(mode=0o700)
    (private / "skelly.db").write_bytes(b"")
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no other user to deny access to")
        prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    else:
        private.chmod(0o000)
    try:
        yield private, prefix
    finally:
        private.chmod(0o700)
        shutil.rmtree(base)


def _config(tmp: Path, data: Path, port: int, extra: str = "") -> Path:
    cfg = tmp / "config.toml"
    cfg.write_text(
        f'data_dir = "{data}"\n[ingest]\nport = {port}\n{extra}'
        f'[figurine.serial]\nurl = "{tmp / "no-such-mcu"}"\n'
    )
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill(data: Path, n: int) -> None:
    batch = [
        RawEvent("h1", "s1", i, "key", 100.0 + i, (("correction", False),)) for i in range(1, n + 1)
    ]

    async def main() -> None:
        async with Storage(StorageConfig(commit_max_wait_s=0.0), data) as st:
            await st.commit(batch)

    asyncio.run(main())


# --- skelly run: faults of the environment at start end the process with one line -------------


def test_run_with_the_ingest_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        cfg = _config(tmp_path, tmp_path / "data", port)
        proc = skelly("run", "--config", str(cfg), env=_env(tmp_path))
    line = one_error(proc, "DataCapture", f"'127.0.0.1', {port}", "address already in use")
    assert "set [ingest] port" in line
    assert "started" not in proc.stdout


def test_run_with_missing_tls_files(tmp_path: Path) -> None:
    extra = f'tls_cert = "{tmp_path / "pi.crt"}"\ntls_key = "{tmp_path / "pi.key"}"\n'
    cfg = _config(tmp_path, tmp_path / "data", _free_port(), extra)
    proc = skelly("run", "--config", str(cfg), env=_env(tmp_path))
    one_error(proc, "TLS certificate", str(tmp_path / "pi.crt"), "No such file")
    assert "started" not in proc.stdout


def test_run_with_a_database_locked_by_another_program(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cfg = _config(tmp_path, data, _free_port())
    holder = sqlite3.connect(data / "skelly.db", isolation_level=None)
    try:
        holder.execute("CREATE TABLE other (x)")
        holder.execute("BEGIN EXCLUSIVE")
        proc = skelly("run", "--config", str(cfg), env=_env(tmp_path))
    finally:
        holder.close()
    one_error(proc, "Storage", str(data / "skelly.db"), "database is locked")
    assert "started" not in proc.stdout


def test_run_on_a_data_dir_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    cfg = _config(tmp_path, tmp_path / "file" / "data", _free_port())
    proc = skelly("run", "--config", str(cfg), env=_env(tmp_path))
    one_error(proc, "data directory", f"{tmp_path / 'file'} is a file, not a directory")


def test_run_on_a_data_dir_of_another_user(
    tmp_path: Path, other_user_dir: tuple[Path, tuple[str, ...]]
) -> None:
    data, prefix = other_user_dir
    env = _env(data.parent, SKELLY_DATA_DIR=str(data), SKELLY_INGEST__PORT=str(_free_port()))
    proc = skelly("run", env=env, prefix=prefix)
    one_error(proc, f"data directory {data}", "permission denied", "sudo -u skelly skelly run")


def test_a_second_service_on_the_same_data_dir_and_the_first_keeps_running(
    tmp_path: Path,
) -> None:
    """The first service has no MCU (a fault that heals: Degraded, it keeps running); a second
    one on the same data dir is refused at start, naming the process that holds it, whether it
    trips over the database lock or (with another database file) the debug socket."""
    data = tmp_path / "data"
    cfg = _config(tmp_path, data, _free_port())
    env = _env(tmp_path)
    first = subprocess.Popen(
        [*SKELLY, "run", "--config", str(cfg)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        line = first.stdout.readline()
        assert "started; system health Degraded" in line, line
        second = skelly(
            "run", "--config", str(cfg), env={**env, "SKELLY_INGEST__PORT": str(_free_port())}
        )
        one_error(second, "Storage", "in use by another skelly process", f"pid {first.pid}")
        third = skelly(
            "run",
            "--config",
            str(cfg),
            env={
                **env,
                "SKELLY_INGEST__PORT": str(_free_port()),
                "SKELLY_STORAGE__FILENAME": '"other.db"',
            },
        )
        one_error(third, "debug socket", str(data / "console.sock"), f"pid {first.pid}")
        assert first.poll() is None  # the first one is untouched
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0 and "stopped cleanly" in out, err
    assert "Traceback" not in err


# --- export, forget, sim: data directories that cannot be used -----------------------------


def test_export_forget_and_sim_on_a_data_dir_of_another_user(
    tmp_path: Path, other_user_dir: tuple[Path, tuple[str, ...]]
) -> None:
    data, prefix = other_user_dir
    env = _env(data.parent, SKELLY_DATA_DIR=str(data))
    proc = skelly("export", env=env, prefix=prefix)
    one_error(proc, f"cannot read the data directory {data}", "sudo -u skelly skelly export")
    proc = skelly("forget", "--yes", env=env, prefix=prefix)
    one_error(proc, f"data directory {data}", "permission denied", "skelly forget")
    proc = skelly(
        "sim", "--state-dir", str(data / "sim"), "--duration", "1", env=env, prefix=prefix
    )
    one_error(proc, f"--state-dir {data / 'sim'}", "Permission denied")


def test_sim_state_dir_under_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    proc = skelly(
        "sim", "--state-dir", str(tmp_path / "file" / "s"), "--duration", "1", env=_env(tmp_path)
    )
    one_error(proc, f"{tmp_path / 'file'} is a file, not a directory", "--state-dir")


def test_export_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`skelly export | head -c 100`: the reader goes away; no traceback, like other tools."""
    data = tmp_path / "data"
    _fill(data, 5000)
    export = subprocess.Popen(
        [*SKELLY, "export"],
        cwd=ROOT,
        env=_env(tmp_path, SKELLY_DATA_DIR=str(data)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert export.stdout is not None and export.stderr is not None
    head = export.stdout.read(100)
    export.stdout.close()  # more than a pipe buffer is still to come: the next write fails
    err = export.stderr.read().decode()
    assert export.wait(timeout=60) == 141, err
    assert head.startswith(b"{") and err == ""


# --- send ---------------------------------------------------------------------------------------


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("t" * 43 + "\n")
    path.chmod(0o600)
    return path


def test_send_with_a_missing_ca_file(tmp_path: Path, token_file: Path) -> None:
    proc = skelly(
        "send", "--to", "127.0.0.1:9", "--token-file", str(token_file), "--spool",
        str(tmp_path / "sp"), "--tls", "--ca", str(tmp_path / "missing.pem"), "/dev/null",
        env=_env(tmp_path),
    )  # fmt: skip
    one_error(proc, f"--ca {tmp_path / 'missing.pem'}", "No such file")


def test_send_with_a_negative_timeout(tmp_path: Path, token_file: Path) -> None:
    proc = skelly(
        "send", "--to", "127.0.0.1:9", "--token-file", str(token_file), "--spool",
        str(tmp_path / "sp"), "--timeout", "-1", "/dev/null", env=_env(tmp_path),
    )  # fmt: skip
    one_error(proc, "--timeout", "-1")


def test_send_on_a_spool_another_sender_holds(tmp_path: Path, token_file: Path) -> None:
    spool = tmp_path / "spool.ndjson"
    fd = lock_spool(spool)  # this test process is the other sender
    try:
        proc = skelly(
            "send", "--to", "127.0.0.1:9", "--token-file", str(token_file), "--session", "s1",
            "--spool", str(spool), "-", stdin='{"kind": "key", "ts": 1.0}\n', env=_env(tmp_path),
        )  # fmt: skip
    finally:
        unlock_spool(fd, spool)
    one_error(proc, str(spool), "in use by another skelly send", f"pid {os.getpid()}")
    assert not spool.exists()  # nothing was written to the other sender's spool


def test_send_with_a_spool_dir_of_another_user(
    tmp_path: Path, token_file: Path, other_user_dir: tuple[Path, tuple[str, ...]]
) -> None:
    data, prefix = other_user_dir
    readable = data.parent / "token"
    shutil.copy(token_file, readable)
    if prefix:
        os.chown(readable, 65534, -1)  # nobody's own token, mode 0600
    proc = skelly(
        "send", "--to", "127.0.0.1:9", "--token-file", str(readable), "--spool",
        str(data / "spool" / "x.ndjson"), "/dev/null", env=_env(data.parent), prefix=prefix,
    )  # fmt: skip
    one_error(proc, f"spool directory {data / 'spool'}", "--spool")


@pytest.mark.parametrize("baud", ["0", "-9600"])
def test_console_with_a_bad_baud(tmp_path: Path, baud: str) -> None:
    proc = skelly("console", "--port", str(tmp_path / "tty"), "--baud", baud, env=_env(tmp_path))
    one_error(proc, "--baud", f"got {baud}")


def test_version() -> None:
    proc = skelly("--version", env=_env(ROOT))
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"skelly \d+\.\d+\.\d+\S*\n", proc.stdout), proc.stdout
