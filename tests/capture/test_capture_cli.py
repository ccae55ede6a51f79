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
    cats.write_text('[categories]\n"my-tool" = "code"\n')
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


def test_the_pi_install_does_not_pull_in_the_capture_libraries() -> None:
    import tomllib

    from tests.capture.capture_helpers import ROOT

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["dependencies"]).lower()
    assert "pynput" not in deps and "xlib" not in deps
    capture = project["optional-dependencies"]["capture"]
    assert any(d.startswith("pynput") for d in capture)
    assert any(d.startswith("python-xlib") and "linux" in d for d in capture)
    # and the CLI (which imports every command) loads neither
    probe = (
        "import sys, skelly.cli; skelly.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pynput', 'Xlib', 'evdev')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


BLOCK_CAPTURE_LIBS = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pynput", "Xlib"):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
import skelly.cli
sys.exit(skelly.cli.main(sys.argv[1:]))
"""


def test_without_the_capture_extra_it_says_how_to_install_it(tmp_path: Path) -> None:
    """A computer where only `pip install skelly-jelly-edge` was run (as on the Pi)."""
    from tests.capture.capture_helpers import ROOT

    out = subprocess.run(
        [sys.executable, "-c", BLOCK_CAPTURE_LIBS, "capture", "--to", "127.0.0.1:7878",
         "--token-file", str(_token(tmp_path))],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env=_env(tmp_path, DISPLAY=":0"),
    )  # fmt: skip
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1, out.stderr
    assert "pip install 'skelly-jelly-edge[capture]'" in out.stderr


def test_install_refuses_a_categories_file_that_is_not_there(tmp_path: Path) -> None:
    result = skelly(
        "capture", "--to", "pi:7878", "--token-file", str(_token(tmp_path)),
        "--categories", str(tmp_path / "nope.toml"), "--install-user-service",
        env=_env(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "nope.toml: no such file" in result.stderr
    assert not (tmp_path / "cfg" / "systemd").exists()
