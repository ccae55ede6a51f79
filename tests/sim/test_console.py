"""``skelly console`` as a real process against the simulated MCU on a real pty.

Direct mode (the console opens the pty itself), attached mode (through a service's debug socket,
served here by a real SerialLink + DebugServer), and the error messages for a missing or busy port.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from firmware_bridge.core.messages import Face, SetGlow, SetPose, ShowText
from firmware_bridge.core.protocol import HostProtocol
from firmware_bridge.debug import DebugServer
from firmware_bridge.link import SerialLink, open_port
from hw_sim.mcu import SimulatedMcu

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[[Coroutine[Any, Any, Any]], Any]


async def console(
    *args: str, stock_loop: bool = False, stdin: bytes | None = None
) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "skelly.cli", "console", *args]
    if stdin is None:
        argv.append("--no-input")
    if stock_loop:
        argv.append("--stock-loop")
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_direct_mode_shows_both_directions_and_commands_reach_the_figurine(
    run: Run, loop_name: str, tmp_path: Path
) -> None:
    async def main() -> None:
        async with SimulatedMcu() as mcu:
            code, out, err = await console(
                "--port",
                str(mcu.path),
                "--socket",
                str(tmp_path / "none.sock"),
                "--send",
                "glow 255 0 0 intensity=0.5",
                "--send",
                'text "hello there" face=happy',
                "--duration",
                "1.5",
                "--hex",
                stock_loop=loop_name == "asyncio",
            )
            assert code == 0, err
            assert mcu.visible.glow == SetGlow(255, 0, 0, 128)
            assert mcu.visible.text == ShowText(Face.HAPPY, "hello there")
        lines = out.splitlines()
        glow = next(ln for ln in lines if "SET_GLOW" in ln)
        assert "host→mcu" in glow and "r=255 g=0 b=0 intensity=128" in glow and "[ACK_REQ]" in glow
        seq = int(glow.split("#")[1].split()[0])
        assert any("MCU_ACK" in ln and f"acked_seq={seq}" in ln for ln in lines)
        assert any("mcu→host" in ln and "HELLO_REPLY" in ln for ln in lines)
        # hex mode: the wire bytes under each frame start and end with the 0x00 delimiter
        wire = lines[lines.index(glow) + 1].split("wire:")[1].split()
        assert wire[0] == "00" and wire[-1] == "00" and "10" in wire
        assert "counters: link state=up" in out
        assert "-- connected: MCU firmware 1.0.0, protocol 1" in out

    run(main())


def test_attached_mode_goes_through_the_service_debug_socket(run: Run, tmp_path: Path) -> None:
    sock = tmp_path / "state" / "console.sock"

    async def main() -> None:
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            link = SerialLink(str(mcu.path), 115200, host)
            async with link, DebugServer(link, sock):
                await link.wait_up(timeout=5)
                code, out, err = await console(
                    "--socket",
                    str(sock),
                    "--port",
                    str(mcu.path),  # ignored: the service holds the port
                    "--send",
                    "pose 0.8 ease=0.2",
                    "--hide",
                    "heartbeat",
                    "--count",
                    "2",  # the SET_POSE and its ACK (heartbeats are hidden)
                    "--duration",
                    "10",  # a cap, not a wait
                )
                assert code == 0, err
                assert "the service holds the port" in err
                await mcu.wait_until(lambda: mcu.visible.pose == SetPose(204, 200), timeout=3)
                assert host.desired.pose == SetPose(204, 200)
            assert not sock.exists()  # the server removed its socket
        assert "-- attached to the service" in out
        assert "-- queued SetPose melt=204 ease_ms=200" in out
        assert any("host→mcu" in ln and "SET_POSE" in ln for ln in out.splitlines())
        assert "HEARTBEAT" not in out
        assert "counters: link state=up" in out

    run(main())


def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> tuple[int, str, str]:
        return await console(
            "--port", str(tmp_path / "ttyNOPE"), "--socket", str(tmp_path / "x.sock")
        )

    code, _out, err = asyncio.run(main())
    assert code == 2
    assert err.startswith("skelly: error: serial port ")
    assert "ttyNOPE does not exist" in err
    assert "Traceback" not in err


def test_busy_port_is_a_clear_error(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        async with SimulatedMcu() as mcu:
            held = open_port(str(mcu.path), 115200)
            try:
                code, _out, err = await console(
                    "--port", str(mcu.path), "--socket", str(tmp_path / "x.sock")
                )
            finally:
                held.close()
        assert code == 2
        assert err.startswith("skelly: error:") and "in use by another program" in err

    run(main())


def test_no_service_and_no_port_says_what_to_do(tmp_path: Path) -> None:
    code, _out, err = asyncio.run(console("--socket", str(tmp_path / "gone.sock")))
    assert code == 2
    assert "nothing answers on the debug socket" in err and "--port" in err


def test_bad_command_is_refused_before_anything_opens(tmp_path: Path) -> None:
    code, _out, err = asyncio.run(
        console("--port", str(tmp_path / "tty"), "--send", "glow 1 2 3 hue=4")
    )
    assert code == 2
    assert "glow has no option hue" in err


def test_debug_server_answers_bad_requests_and_refuses_a_second_service(
    run: Run, tmp_path: Path
) -> None:
    sock = tmp_path / "console.sock"

    async def main() -> None:
        async with SimulatedMcu() as mcu:
            link = SerialLink(str(mcu.path), 115200, HostProtocol())
            async with link, DebugServer(link, sock) as server:
                reader, writer = await asyncio.open_unix_connection(str(sock))
                hello = json.loads(await reader.readline())
                assert hello["kind"] == "hello" and hello["url"] == str(mcu.path)
                for request, expect in (
                    (b"not json\n", "not a JSON request"),
                    (b'{"op": "send", "line": "dance"}\n', "unknown command 'dance'"),
                    (b'{"op": "reboot"}\n', "unknown op 'reboot'"),
                ):
                    writer.write(request)
                    while (reply := json.loads(await reader.readline()))["kind"] != "result":
                        pass
                    assert reply["ok"] is False and expect in reply["error"]
                assert server.clients == 1
                with pytest.raises(OSError, match="already serves"):
                    await DebugServer(link, sock).start()
                writer.close()

    run(main())


def test_commands_typed_on_stdin_in_direct_mode(run: Run, tmp_path: Path) -> None:
    async def main() -> None:
        async with SimulatedMcu() as mcu:
            code, out, err = await console(
                "--port",
                str(mcu.path),
                "--socket",
                str(tmp_path / "none.sock"),
                "--duration",
                "3",
                stdin=b"glow 0 255 0\nhex\nbogus 1\ncounters\ntone 660 0.05\n",
            )
            assert code == 0, err
            assert mcu.visible.glow == SetGlow(0, 255, 0)
            assert [t.freq_hz for t in mcu.tones] == [660]
        assert "-- hex mode on" in out
        assert "error: unknown command 'bogus'" in out
        assert out.count("counters: link") == 2  # asked for once, and at exit

    run(main())


def test_a_console_that_does_not_read_never_holds_up_the_service(run: Run, tmp_path: Path) -> None:
    sock = tmp_path / "console.sock"

    async def main() -> None:
        async with SimulatedMcu() as mcu:
            link = SerialLink(str(mcu.path), 115200, HostProtocol())
            async with link, DebugServer(link, sock) as server:
                server.MAX_CLIENT_BUFFER = 64 * 1024
                reader, writer = await asyncio.open_unix_connection(str(sock))
                await reader.readline()  # hello
                tap = link.raw_tap
                assert tap is not None
                chunk = bytes(range(256)) * 16
                for _ in range(400):  # ~3 MB of JSON to a client that is not reading
                    tap("rx", 0.0, chunk)
                    await asyncio.sleep(0)
                dropped = 0
                async with asyncio.timeout(10):
                    while not dropped:
                        msg = json.loads(await reader.readline())
                        if msg["kind"] == "dropped":
                            dropped = msg["chunks"]
                assert 0 < dropped < 400
                writer.close()

    run(main())


def test_a_console_that_vanishes_never_makes_the_link_tap_raise(run: Run, tmp_path: Path) -> None:
    # uvloop raises RuntimeError on a write to a transport it has closed; the tap runs inside the
    # link's read/write callbacks, so an exception there would lose serial bytes
    sock = tmp_path / "console.sock"

    async def main() -> None:
        async with SimulatedMcu() as mcu:
            link = SerialLink(str(mcu.path), 115200, HostProtocol())
            async with link, DebugServer(link, sock) as server:
                reader, writer = await asyncio.open_unix_connection(str(sock))
                await reader.readline()  # hello
                assert server.clients == 1
                writer.transport.abort()  # the console is killed
                tap = link.raw_tap
                assert tap is not None
                for _ in range(5):  # taps keep coming before the server has noticed
                    tap("rx", 0.0, b"\x00\x01\x02")
                    await asyncio.sleep(0)

    run(main())


def test_an_overlong_request_is_answered_not_left_to_crash_the_handler(
    run: Run, tmp_path: Path
) -> None:
    sock = tmp_path / "console.sock"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        async with SimulatedMcu() as mcu:
            link = SerialLink(str(mcu.path), 115200, HostProtocol())
            async with link, DebugServer(link, sock):
                reader, writer = await asyncio.open_unix_connection(str(sock))
                await reader.readline()  # hello
                writer.write(b'{"op": "send", "line": "' + b"x" * 100_000 + b'"}\n')
                async with asyncio.timeout(5):
                    while (reply := json.loads(await reader.readline()))["kind"] != "result":
                        pass
                assert reply["ok"] is False and "too long" in reply["error"]
                writer.close()
        assert errors == []

    run(main())


def test_silent_mcu_with_send_is_a_clear_error(run: Run, tmp_path: Path) -> None:
    """--send waits for the handshake; a port where no MCU answers gets a clear error."""
    from hw_sim.pty import VirtualSerialPort

    async def main() -> tuple[int, str, str]:
        port = VirtualSerialPort(tmp_path / "silent")
        port.plug()
        try:
            return await console(
                *("--port", str(port.path), "--socket", str(tmp_path / "x.sock")),
                *("--send", "glow 1 2 3", "--connect-timeout", "0.3"),
            )
        finally:
            port.unplug()

    code, _out, err = run(main())
    assert code == 2, err
    assert err.startswith("skelly: error: the MCU on ")
    assert "did not answer the handshake" in err
    assert "Traceback" not in err


def test_send_help_prints_the_help_like_typed_help(run: Run, tmp_path: Path) -> None:
    # the README lists `help` among the commands; `--send help` said "unknown command 'help'"
    async def main() -> tuple[int, str, str]:
        async with SimulatedMcu() as mcu:
            return await console(
                *("--port", str(mcu.path), "--socket", str(tmp_path / "none.sock")),
                *("--send", "help", "--duration", "0.5"),
            )

    code, out, err = run(main())
    assert code == 0, err
    assert "tone HZ SECONDS" in out and "counters" in out and "help / quit" in out


@pytest.mark.parametrize("baud", ["0", "-9600"])
def test_a_bad_baud_is_one_line_naming_it(run: Run, tmp_path: Path, baud: str) -> None:
    # --baud 0 was a ZeroDivisionError traceback, --baud -9600 "cannot use serial url"
    async def main() -> tuple[int, str, str]:
        async with SimulatedMcu() as mcu:
            return await console(
                *("--port", str(mcu.path), "--socket", str(tmp_path / "x.sock")),
                *("--baud", baud, "--duration", "0.5"),
            )

    code, out, err = run(main())
    assert code == 2
    assert err.splitlines() == [
        "skelly: error: --baud must be a positive whole number of bits per second (the "
        f"figurine uses 115200; docs/PROTOCOL.md §1: 9600 … 921600 work), got {baud}"
    ]
    assert out == ""


def test_count_shows_exactly_that_many_frames(run: Run, tmp_path: Path) -> None:
    async def main() -> tuple[int, str, str]:
        async with SimulatedMcu() as mcu:
            return await console(
                *("--port", str(mcu.path), "--socket", str(tmp_path / "none.sock")),
                *("--send", "glow 1 2 3", "--send", "pose 0.5", "--send", "text hi"),
                *("--count", "8", "--duration", "10"),
            )

    code, out, err = run(main())
    assert code == 0, err
    shown = [ln for ln in out.splitlines() if "host→mcu #" in ln or "mcu→host #" in ln]
    assert len(shown) == 8, out


def test_a_short_unplug_is_one_clear_status_line(run: Run, tmp_path: Path) -> None:
    # during a 2 s unplug the console suggested checking the firmware and the baud rate, and the
    # link's WARNING lines repeated each other on stderr
    async def main() -> tuple[list[str], str]:
        async with SimulatedMcu() as mcu:
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "skelly.cli", "console", "--port", str(mcu.path)),
                *("--socket", str(tmp_path / "none.sock"), "--connect-timeout", "2"),
                *("--hide", "heartbeat"),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdin is not None and proc.stdout is not None
            lines: list[str] = []

            async def until(text: str, times: int = 1) -> None:
                assert proc.stdout is not None
                while sum(text in ln for ln in lines) < times:
                    line = await proc.stdout.readline()
                    assert line, f"console ended before {text!r}: {lines}"
                    lines.append(line.decode().rstrip("\n"))

            async with asyncio.timeout(30):
                loop = asyncio.get_running_loop()
                started = loop.time()
                await until("-- connected")
                mcu.unplug()
                await until("-- link down")
                # stay away past --connect-timeout, when the old hint fired
                await asyncio.sleep(max(0.0, started + 2.5 - loop.time()))
                mcu.replug()
                await until("-- connected", times=2)
                proc.stdin.close()  # end of input: the console exits a moment later
                rest, err = await proc.communicate()
            lines += rest.decode().splitlines()
            assert proc.returncode == 0, err
            return lines, err.decode()

    lines, err = run(main())
    first_up = next(i for i, ln in enumerate(lines) if "-- connected" in ln)
    after = lines[first_up:]
    downs = [ln for ln in after if ln.startswith("-- link down")]
    assert len(downs) == 1 and "reconnecting when the MCU is back" in downs[0], after
    assert not any("check that its firmware runs" in ln for ln in after), after
    assert "WARNING" not in err, err
