"""Serial debug console support: command lines, frame formatting, and the service's debug socket.

* :func:`parse_command` turns ``glow 255 0 0 intensity=0.5`` into a protocol message (the same
  units as :class:`~firmware_bridge.core.protocol.HostProtocol`'s setters).
* :class:`FrameView` decodes raw bytes of either direction into display lines: time, direction,
  sequence number, type, fields, flags — plus each frame's wire bytes in hex mode, and every chunk
  exactly as it crossed the port in raw mode (for a device that sends non-protocol bytes); damaged
  frames are shown as such.
* :class:`DebugServer` is what a running service exposes so ``skelly console`` can watch and
  command the MCU link without opening the port a second time: a Unix stream socket (mode 0600)
  speaking JSON lines.

Debug socket protocol (one JSON object per line, UTF-8):

server → client
    ``{"kind": "hello", "url": ..., "baud": ..., "state": ...}`` once on connect;
    ``{"kind": "bytes", "dir": "tx"|"rx", "t": wall_time, "hex": "..."}`` for every chunk the link
    wrote (tx, host→MCU) or read (rx); ``{"kind": "result", "ok": true, "text": ...}`` or
    ``{"kind": "result", "ok": false, "error": ...}`` after a command; ``{"kind": "stats",
    "stats": {...}}`` on request; ``{"kind": "dropped", "chunks": n}`` when the client was too slow
    and chunks were skipped (the service never waits for a console).
client → server
    ``{"op": "send", "line": "glow 255 0 0"}``, ``{"op": "stats"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shlex
import socket
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar

from firmware_bridge.core.errors import BridgeError, DecodeError, MessageError
from firmware_bridge.core.framing import FrameDecoder, encode_frame
from firmware_bridge.core.messages import (
    Animation,
    Easing,
    Face,
    Flag,
    Message,
    PlayAnimation,
    SetBrightness,
    SetGlow,
    SetPose,
    ShowText,
    Sleep,
    Tone,
    decode_packet,
)
from firmware_bridge.core.protocol import factor_to_pct, seconds_to_ms, unit_to_u8
from firmware_bridge.link import RawTap, SerialLink

log = logging.getLogger(__name__)

SOCKET_NAME = "console.sock"

# --------------------------------------------------------------------------- command lines

COMMAND_HELP = """\
glow R G B [intensity=0..1] [pulse=S] [depth=0..1] [fade=S]   body glow colour (0..255 each)
pose MELT [ease=S] [easing=linear|ease_in_out|ease_out|bounce] posture, 0 upright .. 1 melted
text "WORDS" [face=NAME] [duration=S]                          text bubble and face
face NAME                                                      face only, no bubble
brightness LEVEL                                               master brightness 0..1
sleep [fade=S] / wake [fade=S]                                 sleep or wake the figurine
anim NAME [repeat=N] [speed=F]                                 one-shot animation
tone HZ SECONDS [volume=0..1]                                  chirp on the buzzer (0 Hz: stop)"""


def _enum_arg(kind: type[Face] | type[Easing] | type[Animation], value: str, what: str) -> Any:
    try:
        return kind[value.upper()]
    except KeyError:
        names = ", ".join(m.name.lower() for m in kind)
        raise MessageError(f"unknown {what} {value!r}; choose one of: {names}") from None


def _number(value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise MessageError(f"{what} must be a number, got {value!r}") from None


def _integer(value: str, what: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise MessageError(f"{what} must be a whole number, got {value!r}") from None


def _split(line: str) -> tuple[str, list[str], dict[str, str]]:
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MessageError(f"cannot read {line!r}: {exc} (check the quotes)") from None
    if not words:
        raise MessageError("empty command; commands are:\n" + COMMAND_HELP)
    name, rest = words[0].lower(), words[1:]
    positional = [w for w in rest if "=" not in w]
    options: dict[str, str] = {}
    for w in rest:
        if "=" in w:
            key, _, value = w.partition("=")
            options[key.lower()] = value
    return name, positional, options


def _expect(
    name: str, positional: list[str], count: int, options: dict[str, str], allowed: Iterable[str]
) -> None:
    if len(positional) != count:
        raise MessageError(
            f"{name} takes {count} value(s) before its options, got {len(positional)}: "
            f"{' '.join(positional) or 'none'}; usage:\n{_usage(name)}"
        )
    unknown = set(options) - set(allowed)
    if unknown:
        raise MessageError(
            f"{name} has no option {', '.join(sorted(unknown))}; usage:\n{_usage(name)}"
        )


def _usage(name: str) -> str:
    lines = [ln for ln in COMMAND_HELP.splitlines() if ln.split()[0] == name or f"/ {name}" in ln]
    return "\n".join(lines) or COMMAND_HELP


def parse_command(line: str) -> Message:
    """A host command from a console line; :class:`MessageError` says what was wrong."""
    name, pos, opt = _split(line)
    match name:
        case "glow":
            _expect(name, pos, 3, opt, ("intensity", "pulse", "depth", "fade"))
            r, g, b = (_integer(v, c) for v, c in zip(pos, "rgb", strict=True))
            return SetGlow(
                r,
                g,
                b,
                unit_to_u8("intensity", _number(opt.get("intensity", "1"), "intensity")),
                seconds_to_ms("pulse", _number(opt.get("pulse", "0"), "pulse")),
                unit_to_u8("depth", _number(opt.get("depth", "0"), "depth")),
                seconds_to_ms("fade", _number(opt.get("fade", "0"), "fade")),
            )
        case "pose":
            _expect(name, pos, 1, opt, ("ease", "easing"))
            return SetPose(
                unit_to_u8("melt", _number(pos[0], "melt")),
                seconds_to_ms("ease", _number(opt.get("ease", "0"), "ease")),
                _enum_arg(Easing, opt.get("easing", "ease_in_out"), "easing"),
            )
        case "text":
            _expect(name, pos, 1, opt, ("face", "duration"))
            return ShowText(
                _enum_arg(Face, opt.get("face", "neutral"), "face"),
                pos[0],
                seconds_to_ms("duration", _number(opt.get("duration", "0"), "duration")),
            )
        case "face":
            _expect(name, pos, 1, opt, ())
            return ShowText(_enum_arg(Face, pos[0], "face"))
        case "brightness":
            _expect(name, pos, 1, opt, ())
            return SetBrightness(unit_to_u8("brightness", _number(pos[0], "brightness")))
        case "sleep" | "wake":
            _expect(name, pos, 0, opt, ("fade",))
            fade = seconds_to_ms("fade", _number(opt.get("fade", "0"), "fade"))
            return Sleep(name == "sleep", fade)
        case "anim" | "animation":
            _expect("anim", pos, 1, opt, ("repeat", "speed"))
            return PlayAnimation(
                _enum_arg(Animation, pos[0], "animation"),
                _integer(opt.get("repeat", "1"), "repeat"),
                factor_to_pct("speed", _number(opt.get("speed", "1"), "speed")),
            )
        case "tone":
            _expect(name, pos, 2, opt, ("volume",))
            return Tone(
                _integer(pos[0], "frequency"),
                seconds_to_ms("duration", _number(pos[1], "duration")),
                unit_to_u8("volume", _number(opt.get("volume", "0.5"), "volume")),
            )
    raise MessageError(f"unknown command {name!r}; commands are:\n{COMMAND_HELP}")


# --------------------------------------------------------------------------- frame display


def describe_message(msg: Message) -> str:
    """``r=255 g=0 …`` with enum names instead of numbers."""
    parts = []
    for f in fields(msg):
        value = getattr(msg, f.name)
        if isinstance(value, Enum):
            value = value.name.lower() if value.name else str(value.value)
        elif isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        elif hasattr(value, "__dataclass_fields__"):
            value = "{" + describe_message(value) + "}"
        parts.append(f"{f.name}={value}")
    return " ".join(parts)


@dataclass
class FrameCounts:
    tx: int = 0
    rx: int = 0
    tx_bad: int = 0
    rx_bad: int = 0


class FrameView:
    """Turns the raw bytes of both directions into one display line per frame."""

    ARROWS: ClassVar[dict[str, str]] = {"tx": "host→mcu", "rx": "mcu→host"}

    def __init__(
        self, *, hex_mode: bool = False, raw_mode: bool = False, hide: Iterable[str] = ()
    ) -> None:
        self.hex_mode = hex_mode
        self.raw_mode = raw_mode
        self.hide = {h.upper() for h in hide}
        self.counts = FrameCounts()
        self._decoders = {"tx": FrameDecoder(), "rx": FrameDecoder()}

    def feed(self, direction: str, wall: float, data: bytes) -> list[str]:
        decoder = self._decoders[direction]
        bad_before = decoder.crc_errors + decoder.oversize_frames
        payloads = decoder.feed(data)
        stamp = datetime.fromtimestamp(wall).strftime("%H:%M:%S.%f")[:-3]
        arrow = self.ARROWS[direction]
        lines: list[str] = []
        if self.raw_mode and data:
            lines.append(f"{stamp} {arrow}   raw {len(data):4d} B: {data.hex(' ')}")
        bad = decoder.crc_errors + decoder.oversize_frames - bad_before
        if bad:
            setattr(self.counts, f"{direction}_bad", getattr(self.counts, f"{direction}_bad") + bad)
            lines.append(
                f"{stamp} {arrow}       !! {bad} damaged frame(s) dropped "
                f"(CRC/COBS/oversize; {decoder.garbage_bytes} garbage bytes so far)"
            )
        for payload in payloads:
            setattr(self.counts, direction, getattr(self.counts, direction) + 1)
            try:
                packet = decode_packet(payload)
            except DecodeError as exc:
                seq = f"#{exc.seq:05d}" if exc.seq is not None else "#?????"
                text = f"{stamp} {arrow} {seq} ?? undecodable: {exc}"
            else:
                kind = packet.msg_type.name
                if kind.removeprefix("MCU_") in self.hide:
                    continue
                flags = "".join(
                    f" [{f.name}]" for f in (Flag.ACK_REQ, Flag.RETX) if f in packet.flags
                )
                body = describe_message(packet.msg)
                text = f"{stamp} {arrow} #{packet.seq:05d} {kind:<14} {body}{flags}".rstrip()
            lines.append(text)
            if self.hex_mode:
                lines.append(" " * 13 + "wire: " + encode_frame(payload).hex(" "))
        return lines


# --------------------------------------------------------------------------- debug socket server


def default_socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


def socket_is_live(path: Path) -> bool:
    """True if something accepts connections on the Unix socket at ``path``."""
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


class DebugSocketError(BridgeError, OSError):
    """The debug socket cannot be served (path in use by a live service, or not creatable)."""


class DebugServer:
    """Serve the link's traffic and accept console commands on a Unix socket.

    ``async with DebugServer(link, path):`` — chains itself onto ``link.raw_tap`` (keeping any
    previous tap) and removes itself and the socket file on exit. A console that reads too slowly
    loses chunks (counted and announced), never slows the service down.
    """

    MAX_CLIENT_BUFFER = 256 * 1024

    def __init__(
        self,
        link: SerialLink,
        path: Path,
        *,
        stats: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.link = link
        self.path = Path(path)
        self._stats = stats or link.stats
        self._server: asyncio.AbstractServer | None = None
        self._clients: dict[asyncio.StreamWriter, int] = {}
        self._previous_tap: RawTap | None = None

    async def __aenter__(self) -> DebugServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if socket_is_live(self.path):
                raise DebugSocketError(
                    f"another service already serves the debug socket {self.path}; stop it "
                    "or give this one its own data_dir"
                )
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise DebugSocketError(
                f"cannot create the debug socket {self.path}: {exc.strerror}; check that the "
                "state directory is writable"
            ) from exc
        self._previous_tap = self.link.raw_tap
        self.link.raw_tap = self._tap

    async def aclose(self) -> None:
        if self.link.raw_tap == self._tap:
            self.link.raw_tap = self._previous_tap
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def _tap(self, direction: str, wall: float, data: bytes) -> None:
        if self._previous_tap is not None:
            self._previous_tap(direction, wall, data)
        if self._clients:
            self._broadcast({"kind": "bytes", "dir": direction, "t": wall, "hex": data.hex()})

    def _broadcast(self, obj: dict[str, Any]) -> None:
        line = (json.dumps(obj) + "\n").encode()
        for writer, dropped in list(self._clients.items()):
            if writer.is_closing():
                # the console went away and its handler has not run yet; uvloop raises on a
                # write to a closed transport, and this runs inside the link's I/O callbacks
                continue
            if writer.transport.get_write_buffer_size() > self.MAX_CLIENT_BUFFER:
                self._clients[writer] = dropped + 1
                continue
            if dropped:
                writer.write((json.dumps({"kind": "dropped", "chunks": dropped}) + "\n").encode())
                self._clients[writer] = 0
            writer.write(line)

    @staticmethod
    def _send(writer: asyncio.StreamWriter, obj: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write((json.dumps(obj) + "\n").encode())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients[writer] = 0
        self._send(
            writer,
            {
                "kind": "hello",
                "url": self.link.url,
                "baud": self.link.baud,
                "state": self.link.state.value,
            },
        )
        try:
            with contextlib.suppress(ConnectionError):  # the console went away: fine
                while True:
                    try:
                        line = await reader.readline()
                    except ValueError:  # longer than the stream's limit (64 KiB): skipped
                        error = "request too long (the limit is 64 KiB a line)"
                        self._send(writer, {"kind": "result", "ok": False, "error": error})
                        await writer.drain()
                        continue
                    if not line:
                        break
                    self._request(writer, line)
                    await writer.drain()
        finally:
            self._clients.pop(writer, None)
            writer.close()

    def _request(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        try:
            req = json.loads(line)
            op = req["op"]
        except (ValueError, KeyError, TypeError):
            self._send(writer, {"kind": "result", "ok": False, "error": "not a JSON request"})
            return
        if op == "stats":
            self._send(writer, {"kind": "stats", "stats": self._stats()})
        elif op == "send":
            try:
                msg = parse_command(str(req.get("line", "")))
            except MessageError as exc:
                self._send(writer, {"kind": "result", "ok": False, "error": str(exc)})
                return
            self.link.command(msg)
            text = f"{type(msg).__name__} {describe_message(msg)}"
            self._send(writer, {"kind": "result", "ok": True, "text": text})
        else:
            self._send(writer, {"kind": "result", "ok": False, "error": f"unknown op {op!r}"})
