"""`skelly sim` on a real terminal as a person sees it: run under tmux, read the captured pane.

The view shows the figurine and the pipeline's state; the key ``d`` makes a double press on the
mock button pin that comes back through the figurine module as a UserInput the view shows; ``q``
quits cleanly and leaves the terminal as it found it (canonical mode and echo back on).  Every
wait is for what the pane shows, so a slow machine only waits longer.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    """A private tmux server (its own socket, no user config), killed after the test."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed: apt-get install tmux")
    name = f"skelly-test-{uuid.uuid4().hex[:8]}"

    def call(*args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", name, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=allow(30.0),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        yield call
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=30)


def _wait_for(
    tmux: Callable[..., str], pred: Callable[[str], bool], timeout: float, *flags: str
) -> str:
    deadline = time.monotonic() + allow(timeout)
    while True:
        pane = tmux("capture-pane", "-p", "-t", "sim", *flags)
        if pred(pane):
            return pane
        if time.monotonic() > deadline:
            raise AssertionError(f"the pane never showed it:\n{pane}")
        time.sleep(0.2)


def _start_sim(tmux: Callable[..., str], home: Path) -> None:
    """``skelly sim`` in a 100x30 tmux pane; after it the pane says its exit status and whether
    the terminal is back in canonical mode with echo, then SHELL-DONE."""
    sim = shlex.join([sys.executable, "-m", "skelly.cli", "sim", "--speed", "120"])
    script = (  # the shell survives a Ctrl-C (its trap is reset to the default for the sim)
        f"trap : INT; cd {shlex.quote(str(ROOT))} && {sim}; echo EXIT=$?; "
        "stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo; "
        "echo SHELL-DONE; sleep 600"
    )
    env = f"HOME={shlex.quote(str(home))} COLORTERM=truecolor"
    command = f"env {env} sh -c {shlex.quote(script)}"
    tmux("new-session", "-d", "-s", "sim", "-x", "100", "-y", "30", command)


def test_the_live_view_on_a_terminal_with_keys(tmux: Callable[..., str], tmp_path: Path) -> None:
    _start_sim(tmux, tmp_path)

    def viewing(pane: str) -> bool:
        return "● host up" in pane and "● MCU up" in pane and "focus " in pane

    pane = _wait_for(tmux, viewing, 90)
    assert "s short press · l long press · d double press · q quit" in pane
    assert "last 60 min" in pane and "glow " in pane and "face " in pane
    assert any(bones in pane for bones in ("'-+-'", "~~~~~~~~~~~~~"))  # the skeleton is drawn
    assert "button       none yet" in pane

    # in colour: once the figurine shows something, the glow swatch is six cells of background
    # colour next to its hex (the MCU's first look may come a moment after its link is up)
    def swatch(pane: str) -> bool:
        row = next((line for line in pane.splitlines() if "glow " in line), "")
        return re.search(r"\x1b\[48;[0-9;]+m {6}\x1b\[49m #[0-9a-f]{6}", row) is not None

    _wait_for(tmux, swatch, 60, "-e")

    tmux("send-keys", "-t", "sim", "d")
    # the press went key -> mock pin -> gpiozero Button -> CuteFigurine -> UserInput -> the view
    _wait_for(tmux, lambda p: "button       double press (gpio)" in p, 60)

    tmux("send-keys", "-t", "sim", "q")
    # the shell prints EXIT=, then the terminal modes, then SHELL-DONE: wait for all of it
    pane = _wait_for(tmux, lambda p: "SHELL-DONE" in p, 60, "-S", "-60")
    assert "EXIT=0" in pane, pane
    assert "skelly sim: stopped cleanly" in pane
    assert "button presses: 1" in pane  # the summary after the view
    assert "icanon echo" in pane, pane  # the terminal settings are restored
    assert "Traceback" not in pane


def test_ctrl_c_leaves_the_view_and_restores_the_terminal(
    tmux: Callable[..., str], tmp_path: Path
) -> None:
    _start_sim(tmux, tmp_path)
    _wait_for(tmux, lambda p: "q quit" in p and "● MCU up" in p, 90)
    tmux("send-keys", "-t", "sim", "C-c")
    # the shell prints EXIT=, then the terminal modes, then SHELL-DONE: wait for all of it
    pane = _wait_for(tmux, lambda p: "SHELL-DONE" in p, 60, "-S", "-60")
    assert "EXIT=0" in pane and "skelly sim: stopped cleanly" in pane, pane
    assert "icanon echo" in pane, pane
    assert "Traceback" not in pane
