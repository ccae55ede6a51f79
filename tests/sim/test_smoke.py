"""``skelly smoke`` (docs/SMOKE.md) against the simulator: real ``skelly`` processes, gpiozero's
MockFactory pins, a simulated MCU on a real pty, real files, sockets and users.

The in-process test runs the same :func:`run_smoke` the command runs, with its own
:class:`SimRig`, so it can look at what the pins and the simulated MCU really went through.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Button

from firmware_bridge.core.messages import Face, SetGlow, SetPose, ShowText, Tone
from skelly.commands.smoke import sim_config
from skelly.config import Config
from skelly.smoke import SimRig, SmokeOptions, run_smoke
from skelly.smoke.outputs import Console
from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
SKELLY = (sys.executable, "-m", "skelly.cli")
FAST = ("--step", "0.02", "--handshake-timeout", str(allow(5)), "--button-timeout", str(allow(5)))
ITEMS = (
    "data dir",
    "database",
    "ingest port",
    "gpio pins",
    "glow",
    "eyes",
    "servo",
    "buzzer",
    "MCU link",
    "MCU glow",
    "MCU display",
    "MCU servo",
    "MCU buzzer",
    "button",
)


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKELLY_")}
    env.update(HOME=str(tmp), PYTHONDONTWRITEBYTECODE="1")
    return env


def smoke(
    *args: str, env: dict[str, str], prefix: tuple[str, ...] = (), stdin: str | None = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *SKELLY, "smoke", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=allow(60),
    )


def checklist(stdout: str) -> dict[str, tuple[str, str, str]]:
    """name -> (status, detail, hint) from the printed checklist."""
    lines = stdout.split("skelly smoke: checklist\n", 1)[1].splitlines()
    out: dict[str, tuple[str, str, str]] = {}
    last = ""
    for line in lines:
        m = re.match(r"  (PASS|FAIL|SKIP)  (.+?)\s{2,}(.*)$", line)
        if m:
            last = m.group(2).strip()
            out[last] = (m.group(1), m.group(3), "")
        elif line.startswith("        hint: "):
            status, detail, _ = out[last]
            out[last] = (status, detail, line.removeprefix("        hint: "))
    return out


def test_sim_yes_passes_every_item(tmp_path: Path) -> None:
    proc = smoke("--sim", "--yes", *FAST, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = checklist(proc.stdout)
    assert tuple(items) == ITEMS
    for name, (status, detail, _) in items.items():
        if name == "database":  # a fresh temporary data dir holds no database yet
            assert status == "SKIP" and "no database" in detail
        else:
            assert status == "PASS", (name, detail)
    assert "not confirmed by a person" in items["glow"][1]
    assert "firmware 1.0.0, protocol 1" in items["MCU link"][1]
    assert "servo, display 128x64, buzzer, button" in items["MCU link"][1]
    assert items["button"][1] == "pressed (GPIO26)"
    assert re.search(r"summary: 13 passed, 0 failed, 1 skipped", proc.stdout)
    # what the person is told to look for, in order
    out = proc.stdout
    assert out.index("… RED") < out.index("… GREEN") < out.index("… BLUE")
    assert "press the button within" in out


def test_sim_records_pins_and_mcu_frames_and_closes_everything(tmp_path: Path) -> None:
    config = Config()
    out = io.StringIO()

    history: dict[int, list[float]] = {}

    async def main() -> tuple[SimRig, list[str]]:
        async with SimRig() as rig:
            cfg = sim_config(config, from_file=False, data_dir=tmp_path, mcu_path=rig.path)
            rig.gpio = cfg.figurine.gpio
            opts = SmokeOptions(
                yes=True, sim=True, step=0.02, handshake_timeout=allow(5), button_timeout=allow(5)
            )
            result = await run_smoke(cfg, opts, Console(out, yes=True), rig.rig())
            assert result.exit_code == 0, result.render()
            for pin in (17, 27, 22, 23, 12, 13):  # before the Button below adds states
                history[pin] = [float(s.state or 0) for s in rig.factory.pin(pin).states]
            # every gpiozero device was closed: the pins can be claimed again
            for pin in (17, 27, 22, 23, 12, 13, 26):
                Button(pin, pin_factory=rig.factory).close()
            visible = rig.mcu.visible
            assert (visible.glow.r, visible.glow.g, visible.glow.b, visible.glow.intensity) == (
                0,
                0,
                0,
                0,
            ), visible
            assert visible.text.text == "" and visible.pose.melt == 0
            return rig, [f"{i.status.value} {i.name}" for i in result.items]

    rig, names = asyncio.run(main())
    assert "PASS button" in names

    def levels(pin: int) -> list[float]:
        return history[pin]

    red, green, blue = levels(17), levels(27), levels(22)
    for own in (red, green, blue):
        assert own.count(1.0) == 1, own  # each colour shown once, at full strength
        assert own[-1] == 0.0
    assert levels(23).count(1.0) == 3 and levels(23)[-1] == 0.0  # three blinks, then off
    servo = levels(12)
    assert len({round(s, 4) for s in servo if s}) == 3 and servo[-1] == 0.0  # 0°, 45°, 90°
    assert any(s > 0 for s in levels(13)) and levels(13)[-1] == 0.0  # chirped, then silent
    assert rig.presses == ["gpio"]

    received = rig.received
    glows = [m for m in received if isinstance(m, SetGlow)]
    assert [(m.r, m.g, m.b) for m in glows[:3]] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    assert ShowText(Face.HAPPY, "smoke test") in received
    assert [m.melt for m in received if isinstance(m, SetPose)][:4] == [0, 128, 255, 0]
    assert [m.freq_hz for m in received if isinstance(m, Tone)] == [660, 880]
    assert "MCU display: the display should now show" in out.getvalue()


def test_mcu_unplugged_fails_that_item_with_its_hint_and_the_rest_still_runs(
    tmp_path: Path,
) -> None:
    proc = smoke(
        "--sim", "--yes", "--json", "--sim-fault", "mcu-unplugged", *FAST, env=_env(tmp_path)
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    items = {i["name"]: i for i in result["items"]}
    assert items["MCU link"]["status"] == "FAIL"
    assert "does not exist" in items["MCU link"]["detail"]
    assert "is the MCU plugged in?" in items["MCU link"]["hint"]
    for name in ("MCU glow", "MCU display", "MCU servo", "MCU buzzer"):
        assert items[name]["status"] == "SKIP" and "needs the MCU link" in items[name]["detail"]
    for name in ("data dir", "ingest port", "gpio pins", "glow", "eyes", "servo", "buzzer"):
        assert items[name]["status"] == "PASS", items[name]
    assert items["button"]["status"] == "PASS"  # the GPIO button still works
    assert (result["failed"], result["exit"]) == (1, 1)


@pytest.fixture
def unwritable_dir() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """A data dir (0700, ours) and the prefix that runs a command as a user who cannot use it."""
    base = Path(tempfile.mkdtemp(prefix="skelly-smoke-perm-"))
    base.chmod(0o755)
    private = base / "data"
    private.mkdir(mode=0o700)
    prefix: tuple[str, ...] = ()
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: no other user to deny access to")
        prefix = (setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups")
    else:
        private.chmod(0o500)
    try:
        yield private, prefix
    finally:
        private.chmod(0o700)
        shutil.rmtree(base)


def test_unwritable_data_dir_says_so(unwritable_dir: tuple[Path, tuple[str, ...]]) -> None:
    data, prefix = unwritable_dir
    env = _env(data.parent)
    proc = smoke("--sim", "--yes", "--data-dir", str(data), *FAST, env=env, prefix=prefix)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    status, detail, hint = checklist(proc.stdout)["data dir"]
    assert status == "FAIL"
    assert str(data) in detail and "not writable" in detail
    assert "sudo -u skelly" in hint
    assert list(data.iterdir()) == []  # nothing left behind (and nothing was written)


def test_gpio_disabled_skips_the_gpio_items_and_the_mcu_button_is_pressed(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[ingest]\nport = 0\n[figurine]\ngpio_enabled = false\n'
    )
    proc = smoke("--sim", "--yes", "--config", str(cfg), *FAST, env=_env(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = checklist(proc.stdout)
    for name in ("gpio pins", "glow", "eyes", "servo", "buzzer"):
        assert items[name][0] == "SKIP" and "gpio_enabled = false" in items[name][1], name
    assert items["MCU link"][0] == "PASS"
    assert items["button"] == ("PASS", "pressed (MCU short press)", "")


def test_stdin_not_a_terminal_without_yes_is_one_error_line(tmp_path: Path) -> None:
    proc = smoke("--sim", env=_env(tmp_path), stdin="y\n")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skelly: error: "), proc.stderr
    assert "--yes" in lines[0] and "not a terminal" in lines[0]


def test_a_running_service_on_the_data_dir_stops_it_before_any_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(data / "control.sock"))
        server.listen()
        proc = smoke("--sim", "--yes", "--data-dir", str(data), *FAST, env=_env(tmp_path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("skelly: error: ")]
    assert len(errors) == 1, proc.stderr
    assert f"pid {os.getpid()}" in errors[0] and "sudo systemctl stop skelly" in errors[0]
    assert "glow" not in proc.stdout


class _Pty:
    """The command on a pseudo-terminal's standard input (a person typing), stdout a pipe."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [*SKELLY, "smoke", *args],
            cwd=ROOT,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        os.close(slave)
        self.out = b""

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def read_until(self, marker: str, timeout: float, count: int = 1) -> str:
        """Read stdout until ``marker`` has appeared ``count`` times in all of it."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while self.out.count(marker.encode()) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"no {marker!r} in {self.out.decode(errors='replace')!r}"
            ready, _, _ = select.select([fd, self.master], [], [], left)
            if self.master in ready:
                os.read(self.master, 4096)  # the terminal's echo
            if fd in ready:
                chunk = os.read(fd, 4096)
                assert chunk, f"stdout closed before {marker!r}: {self.out.decode()!r}"
                self.out += chunk
        return self.out.decode()

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            os.close(self.master)
        return self.proc.returncode, (self.out + out).decode(), err.decode()


def test_answering_n_fails_that_item_with_its_wiring_hint(tmp_path: Path) -> None:
    term = _Pty("--sim", *FAST, env=_env(tmp_path))
    term.read_until("did the body LED show red, green and blue? [Y/n]", allow(30))
    term.type("n\n")
    for asked in range(2, 9):  # eyes, servo, buzzer, MCU glow, display, servo, buzzer
        term.read_until("[Y/n]", allow(30), count=asked)
        term.type("\n")
    term.read_until("press Enter to press the simulated button", allow(30))
    term.type("\n")
    code, out, err = term.finish(allow(30))
    assert code == 1, out + err
    items = checklist(out)
    status, detail, hint = items["glow"]
    assert status == "FAIL" and "did not see" in detail
    assert "docs/HARDWARE.md §2" in hint and "GPIO17" in hint and "common cathode" in hint
    for name in ("eyes", "servo", "buzzer", "MCU glow", "MCU display", "MCU servo", "MCU buzzer"):
        assert items[name] == ("PASS", "seen by the person", ""), name
    assert items["button"][:2] == ("PASS", "pressed (GPIO26)")
    assert re.search(r"summary: 12 passed, 1 failed, 1 skipped", out)


def test_ctrl_c_exits_130_with_outputs_off(tmp_path: Path) -> None:
    term = _Pty("--sim", *FAST, env=_env(tmp_path))
    term.read_until("[Y/n]", allow(30))
    term.proc.send_signal(signal.SIGINT)
    code, out, err = term.finish(allow(30))
    assert code == 130, out + err
    assert "skelly smoke: interrupted; outputs off" in err
    assert "Traceback" not in err
    assert "checklist" not in out


def test_cancelled_mid_run_turns_every_output_off_and_closes_the_devices(tmp_path: Path) -> None:
    """What Ctrl-C does (the command cancels the run): here at the MCU display's question, with
    the questions before it answered "y" on a pipe."""
    out = io.StringIO()
    read_end, write_end = os.pipe()
    os.write(write_end, b"y\ny\ny\ny\ny\n")  # glow, eyes, servo, buzzer, MCU glow

    async def main() -> None:
        async with SimRig() as rig:
            cfg = sim_config(Config(), from_file=False, data_dir=tmp_path, mcu_path=rig.path)
            rig.gpio = cfg.figurine.gpio
            opts = SmokeOptions(sim=True, step=0.02, handshake_timeout=allow(5))
            console = Console(out, yes=False, stdin_fd=read_end)
            task = asyncio.ensure_future(run_smoke(cfg, opts, console, rig.rig()))
            deadline = time.monotonic() + allow(30)
            while out.getvalue().count("[Y/n]") < 6:  # the MCU display's question
                assert not task.done() and time.monotonic() < deadline, out.getvalue()
                await asyncio.sleep(0.01)
            assert rig.mcu.visible.text.text == "smoke test"  # shown right now
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            visible = rig.mcu.visible
            assert visible.text.text == "" and visible.glow.intensity == 0
            for pin in (17, 27, 22, 23, 12, 13):
                assert not rig.factory.pin(pin).state, pin
            for pin in (17, 27, 22, 23, 12, 13, 26):
                Button(pin, pin_factory=rig.factory).close()  # all released

    try:
        asyncio.run(main())
    finally:
        os.close(read_end)
        os.close(write_end)
