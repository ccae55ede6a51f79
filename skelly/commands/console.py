"""``skelly console``: the serial debug console for the figurine MCU link.

Shows every frame in both directions, decoded (time, direction, sequence number, type, fields,
flags; ``--hex`` adds each frame's wire bytes, ``--raw`` every chunk as it crossed the port), lets
you send any host command by name (``glow 255 0 0 intensity=0.5``, ``help`` lists them), and
prints the link's counters.

Two ways to reach the MCU, so two programs never fight over one port:

* **attached** (default when the service runs): through the service's debug socket
  ``<state dir>/console.sock`` (``--socket`` to choose another); the service keeps the port.
* **direct**: with ``--port PATH_OR_URL`` and no live service socket (or ``--direct``), the console
  opens the port itself and runs its own host protocol (handshake, heartbeats, retransmits).

Non-interactive use (scripts, tests): ``--send CMD`` (repeatable), ``--count N`` (stop after N
frames shown), ``--duration S``; ``--no-input`` ignores standard input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from firmware_bridge.core.errors import BaudRateError, BridgeError, MessageError
from firmware_bridge.core.protocol import Connected, Event, HostProtocol, Incompatible, Timing
from firmware_bridge.debug import (
    COMMAND_HELP,
    FrameView,
    default_socket_path,
    describe_message,
    parse_command,
    socket_is_live,
)
from skelly.errors import SkellyError

CONSOLE_HELP = (
    COMMAND_HELP
    + """
hex                                                            toggle wire bytes per frame
raw                                                            toggle raw chunks as read/written
counters                                                       link and frame counters
help / quit"""
)
#: words the console itself answers (typed or given with --send); anything else goes to the MCU
CONSOLE_WORDS = frozenset({"help", "hex", "raw", "counters", "stats", "quit", "exit"})


def is_console_word(line: str) -> bool:
    return line.strip().lower() in CONSOLE_WORDS


def check_baud(baud: int) -> int:
    """A baud rate the link and its timers can use, else a one-line SkellyError naming it."""
    from firmware_bridge.core.protocol import Timing

    try:
        Timing.for_baud(baud)
    except BaudRateError:
        raise SkellyError(
            f"--baud must be a positive whole number of bits per second (the figurine uses "
            f"115200; docs/PROTOCOL.md §1: 9600 … 921600 work), got {baud}"
        ) from None
    return baud


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "console",
        help="serial debug console: live decoded frames both ways, send commands, raw hex",
        description=(__doc__ or "").replace("``", "").replace("**", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", help="serial device path or pyserial URL to open directly")
    p.add_argument("--baud", type=int, default=115200, help="baud rate for --port (115200)")
    p.add_argument("--socket", help="debug socket of a running service (default: in the state dir)")
    p.add_argument("--config", help="TOML config file (used to find the state dir)")
    p.add_argument(
        "--direct", action="store_true", help="open --port even if a service socket answers"
    )
    p.add_argument("--hex", action="store_true", help="also show every frame's wire bytes")
    p.add_argument(
        "--raw", action="store_true", help="also show every chunk of bytes as it crossed the port"
    )
    p.add_argument(
        "--hide", default="", help="frame types not to show, comma-separated (heartbeat,ack)"
    )
    p.add_argument(
        "--send", action="append", default=[], metavar="CMD", help="send a command (repeatable)"
    )
    p.add_argument("--count", type=int, help="exit after this many frames were shown")
    p.add_argument("--duration", type=float, help="exit after this many seconds")
    p.add_argument(
        "--connect-timeout",
        type=float,
        default=5.0,
        help="seconds to wait for the MCU's handshake before --send gives up (5)",
    )
    p.add_argument("--no-input", action="store_true", help="do not read commands from stdin")
    p.add_argument("--stock-loop", action="store_true", help="use asyncio's loop, not uvloop")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from skelly import app

    if args.count is not None and args.count < 1:
        raise SkellyError(f"--count must be at least 1, got {args.count}")
    if args.duration is not None and args.duration <= 0:
        raise SkellyError(f"--duration must be positive seconds, got {args.duration}")
    check_baud(args.baud)
    for line in args.send:
        if is_console_word(line):
            continue  # help, counters, hex, ...: answered by the console like typed ones
        try:
            parse_command(line)
        except MessageError as exc:
            raise SkellyError(f"--send {line!r}: {exc}") from None
    sock = Path(args.socket) if args.socket else _default_socket(args.config)
    if not args.direct and socket_is_live(sock):
        target: Callable[[asyncio.Event], Any] = lambda stop: app.until_stopped(  # noqa: E731
            _attached(args, sock), stop
        )
    elif args.port:
        target = lambda stop: app.until_stopped(_direct(args), stop)  # noqa: E731
    elif args.socket:
        raise SkellyError(
            f"nothing answers on the debug socket {sock}: start the service, or open the port "
            "directly with --port /dev/serial/by-id/..."
        )
    else:
        raise SkellyError(
            f"no running service found (no debug socket at {sock}) and no --port given: start "
            "the service, or pass --port with the MCU's device path (e.g. /dev/serial/by-id/... "
            "or the simulator's pty path)"
        )
    code: int = app.run_loop(target, use_uvloop=not args.stock_loop)
    return code


def _default_socket(config_path: str | None) -> Path:
    from skelly.config import load

    return default_socket_path(load(config_path).state_dir())


class Session:
    """Display, stop conditions and stdin commands shared by both modes."""

    def __init__(self, args: argparse.Namespace, out: TextIO = sys.stdout) -> None:
        hide = [h.strip() for h in args.hide.split(",") if h.strip()]
        self.view = FrameView(hex_mode=args.hex, raw_mode=args.raw, hide=hide)
        self.out = out
        self.count = args.count
        self.duration = args.duration
        self.shown = 0
        self.done = asyncio.Event()
        self.send: Callable[[str], None] = lambda line: None
        self.counters: Callable[[], None] = lambda: None
        self.read_stdin = not args.no_input

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _count_reached(self) -> bool:
        return self.count is not None and self.shown >= self.count

    def on_bytes(self, direction: str, wall: float, data: bytes) -> None:
        if self._count_reached():
            return  # --count frames are shown: nothing more, however many are still arriving
        for line in self.view.feed(direction, wall, data):
            if not line.startswith(" ") and " raw " not in line[:30]:
                # frames and damage reports; not wire/raw byte lines, which belong to a frame
                if self._count_reached():
                    break  # one chunk can carry several frames: show exactly --count
                self.shown += 1
            self.print(line)
        if self._count_reached():
            self.done.set()

    def command(self, line: str) -> None:
        word = line.strip().lower()
        if not word:
            return
        if word in ("quit", "exit"):
            self.done.set()
        elif word == "help":
            self.print(CONSOLE_HELP)
        elif word == "hex":
            self.view.hex_mode = not self.view.hex_mode
            self.print(f"-- hex mode {'on' if self.view.hex_mode else 'off'}")
        elif word == "raw":
            self.view.raw_mode = not self.view.raw_mode
            self.print(f"-- raw mode {'on' if self.view.raw_mode else 'off'}")
        elif word in ("counters", "stats"):
            self.counters()
        else:
            self.send(line)

    async def serve(self) -> None:
        """Read stdin (if wanted) and wait for a stop condition."""
        loop = asyncio.get_running_loop()
        stdin_done = asyncio.Event()
        if self.read_stdin:
            _watch_stdin(loop, self.command, stdin_done)
        else:
            stdin_done.set()
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self.done.wait())]
        if self.duration is None and self.count is None:
            # interactive: stop at end of input (after a moment for replies to arrive)
            waiters.append(asyncio.ensure_future(_linger_after(stdin_done, 1.0)))
        try:
            async with asyncio.timeout(self.duration):
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            pass
        finally:
            for w in waiters:
                w.cancel()
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(sys.stdin.fileno())


async def _linger_after(event: asyncio.Event, seconds: float) -> None:
    await event.wait()
    await asyncio.sleep(seconds)


def _watch_stdin(
    loop: asyncio.AbstractEventLoop, handle: Callable[[str], None], eof: asyncio.Event
) -> None:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        eof.set()
        return
    buffer = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            loop.remove_reader(fd)
            if buffer:
                handle(buffer.decode(errors="replace"))
            eof.set()
            return
        buffer.extend(chunk)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            handle(line.decode(errors="replace"))

    try:
        loop.add_reader(fd, readable)
    except (PermissionError, OSError, ValueError, NotImplementedError):
        # a regular file or /dev/null cannot be polled: read it whole, it is finite
        with contextlib.suppress(OSError):
            for line in sys.stdin.read().splitlines():
                handle(line)
        eof.set()


def _format_stats(stats: dict[str, Any], view: FrameView) -> str:
    c = view.counts
    shown = (
        f"frames shown host→mcu {c.tx}, mcu→host {c.rx}; damaged host→mcu {c.tx_bad}, "
        f"mcu→host {c.rx_bad}"
    )
    keys = [
        "state",
        "frames_out",
        "frames_in",
        "bytes_out",
        "bytes_in",
        "crc_errors",
        "oversize_frames",
        "garbage_bytes",
        "decode_errors",
        "retransmits",
        "duplicates",
        "superseded",
        "acks_in",
        "nacks_in",
        "heartbeats_out",
        "hellos_out",
        "sessions",
        "reconnects",
        "peer_resets",
        "dead_links",
    ]
    link = " ".join(f"{k}={stats[k]}" for k in keys if k in stats)
    return f"counters: {shown}\ncounters: link {link}"


# --------------------------------------------------------------------------- direct mode


async def _direct(args: argparse.Namespace) -> int:
    from firmware_bridge.link import (
        PortBusyError,
        PortMissingError,
        PortPermissionError,
        PortUnsupportedError,
        SerialLink,
        open_port,
    )

    url = args.port
    try:
        open_port(url, args.baud).close()  # fail fast, with the port's own message
    except (PortMissingError, PortBusyError, PortPermissionError) as exc:
        raise SkellyError(exc.strerror or str(exc)) from None
    except PortUnsupportedError as exc:
        raise SkellyError(str(exc)) from None
    except (OSError, BridgeError) as exc:
        raise SkellyError(f"cannot open serial port {url}: {exc}") from None

    session = Session(args)
    protocol = HostProtocol(Timing.for_baud(args.baud))
    if not getattr(args, "verbose", 0):
        # every link change is a console line already ("-- link down", "-- connected"); the
        # link's own WARNING log lines would repeat them on stderr, interleaved
        logging.getLogger("firmware_bridge.link").setLevel(logging.ERROR)
    ever_up = False

    def on_event(event: Event) -> None:
        nonlocal ever_up
        if isinstance(event, Connected):
            ever_up = True
            caps = event.capabilities
            session.print(
                f"-- connected: MCU firmware {'.'.join(map(str, event.fw_version))}, protocol "
                f"{event.protocol_version}; {caps.led_count} LEDs, servo={caps.servo}, display="
                f"{caps.display_w}x{caps.display_h}, buzzer={caps.buzzer}, button={caps.button}"
            )
        elif isinstance(event, Incompatible):
            session.print(
                f"-- incompatible firmware: MCU speaks protocol {event.mcu_min}..{event.mcu_max}, "
                f"this console {event.host_min}..{event.host_max}"
            )

    link = SerialLink(
        url,
        args.baud,
        protocol,
        raw_tap=session.on_bytes,
        on_event=on_event,
        on_status=lambda s: None if s.up else on_down(s.detail),
        name="console",
    )

    def on_down(detail: str) -> None:
        if detail == "link stopped":
            return  # the console is exiting
        if ever_up:  # an outage (cable pulled, MCU reset): one line, the link reconnects itself
            session.print(f"-- link down: {detail}; reconnecting when the MCU is back")
        else:
            session.print(f"-- link down: {detail}")

    def send(line: str) -> None:
        try:
            msg = parse_command(line)
        except MessageError as exc:
            session.print(f"error: {exc}")
            return
        link.command(msg)
        session.print(f"-- queued {type(msg).__name__} {describe_message(msg)}")

    session.send = send
    session.counters = lambda: session.print(_format_stats(link.stats(), session.view))
    session.print(f"-- opened {url} at {args.baud} baud; handshaking (type `help` for commands)")

    async def hint_if_silent() -> None:
        await asyncio.sleep(args.connect_timeout)
        if not ever_up:  # never answered: an outage after a handshake is not a firmware problem
            session.print(
                f"-- no handshake with the MCU after {args.connect_timeout:g} s: check that its "
                f"firmware runs, speaks docs/PROTOCOL.md and uses {args.baud} baud (--raw shows "
                "any bytes it sends)"
            )

    hint = asyncio.create_task(hint_if_silent(), name="console-handshake-hint")
    async with link:
        if any(not is_console_word(line) for line in args.send):
            try:
                await link.wait_up(args.connect_timeout)
            except TimeoutError:
                raise SkellyError(
                    f"the MCU on {url} did not answer the handshake within "
                    f"{args.connect_timeout:g} s: check that its firmware runs, speaks this "
                    f"protocol (docs/PROTOCOL.md) and uses {args.baud} baud"
                ) from None
        for line in args.send:
            session.command(line)  # `--send help` works like typed `help`
        await session.serve()
        hint.cancel()
        session.counters()
    return 0


# --------------------------------------------------------------------------- attached mode


async def _attached(args: argparse.Namespace, path: Path) -> int:
    if args.port:
        print(
            f"skelly console: the service holds the port; attaching to {path} "
            "(use --direct to open --port yourself once the service is stopped)",
            file=sys.stderr,
        )
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError as exc:
        raise SkellyError(
            f"cannot connect to the service's debug socket {path}: {exc.strerror}; is the "
            "service running as another user? (run the console as that user or with sudo)"
        ) from None
    session = Session(args)
    stats_reply: asyncio.Future[dict[str, Any]] | None = None

    def request(obj: dict[str, Any]) -> None:
        writer.write((json.dumps(obj) + "\n").encode())

    def counters() -> None:
        nonlocal stats_reply
        stats_reply = asyncio.get_running_loop().create_future()
        request({"op": "stats"})

    session.send = lambda line: request({"op": "send", "line": line})
    session.counters = counters

    async def pump() -> None:
        nonlocal stats_reply
        while line := await reader.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            kind = msg.get("kind")
            if kind == "bytes":
                session.on_bytes(msg["dir"], float(msg["t"]), bytes.fromhex(msg["hex"]))
            elif kind == "hello":
                session.print(
                    f"-- attached to the service: {msg.get('url')} at {msg.get('baud')} baud, "
                    f"link {msg.get('state')} (type `help` for commands)"
                )
            elif kind == "result":
                if msg.get("ok"):
                    session.print(f"-- queued {msg.get('text')}")
                else:
                    session.print(f"error: {msg.get('error')}")
            elif kind == "stats":
                session.print(_format_stats(msg.get("stats", {}), session.view))
                if stats_reply is not None and not stats_reply.done():
                    stats_reply.set_result(msg.get("stats", {}))
            elif kind == "dropped":
                session.print(f"-- {msg.get('chunks')} chunk(s) skipped: console too slow")
        session.print("-- the service closed the debug socket")
        session.done.set()

    pump_task = asyncio.create_task(pump(), name="console-socket-reader")
    try:
        for line in args.send:
            session.command(line)
        await session.serve()
        if not pump_task.done():
            counters()
            assert stats_reply is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await stats_reply
    finally:
        pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump_task
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return 0
