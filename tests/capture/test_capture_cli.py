"""`skelly capture` as a real process: sessions where input cannot be read are refused with one
line and exit status 2 (never a silent agent), and --install-user-service writes a unit that
runs exactly the command given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capture.capture_helpers import skelly


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "XDG_RUNTIME_DIR")
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"), **extra)
    return env


def _token(tmp_path: Path) -> Path:
    token = tmp_path / "token"
    token.write_text("t" * 43 + "\n")
    token.chmod(0o600)
    return token


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"WAYLAND_DISPLAY": "wayland-0"}, "Wayland session"),
        ({"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}, "Wayland session"),
        ({}, "no display"),
        ({"DISPLAY": ":987"}, "cannot open the X11 display :987"),
    ],
)
def test_unsupported_session_is_one_line_and_exit_2(
    tmp_path: Path, extra: dict[str, str], needle: str
) -> None:
    result = skelly(
        "capture", "--to", "127.0.0.1:7878", "--token-file", str(_token(tmp_path)),
        env=_env(tmp_path, **extra),
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("skelly: error: capture is not possible here: ")
    assert needle in lines[0]
    assert "X11" in lines[0]  # says what to do: run under an X11 session
    assert result.stdout == ""


def test_status_without_an_agent_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = skelly("capture", "--status", env=_env(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "no skelly capture agent answers" in result.stderr


def test_install_user_service_writes_the_exact_command(tmp_path: Path) -> None:
    token = _token(tmp_path)
    cats = tmp_path / "my cats.toml"
    result = skelly(
        "capture", "--to", "192.168.1.20:7878", "--token-file", str(token), "--tls",
        "--session", "desk-1", "--categories", str(cats), "--install-user-service",
        env=_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    unit = tmp_path / "cfg" / "systemd" / "user" / "skelly-capture.service"
    assert str(unit) in result.stdout
    assert "systemctl --user enable --now skelly-capture.service" in result.stdout
    text = unit.read_text()
    exec_start = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    assert exec_start == (
        f"ExecStart={sys.executable} -m skelly.cli capture --to 192.168.1.20:7878 "
        f'--token-file {token} --session desk-1 --categories "{cats}" --tls'
    )
    assert "WantedBy=graphical-session.target" in text
    assert "Restart=on-failure" in text
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
