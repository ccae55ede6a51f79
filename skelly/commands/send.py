"""``skelly send``: stream NDJSON capture events from a file or stdin to a Pi (docs/INGEST.md).

Events without ``seq`` get the next number (in a file by position, so a re-run of the same file
sends the same numbers); what the Pi has not acknowledged yet is kept in a spool file, so a
disconnect (or a Ctrl-C and the same command again with the same ``--session``) resumes without
loss or duplicates.  The default session is new on every run (time and a random suffix) and the
spool is locked while in use, so two senders never share one (docs/CLI.md §3).  Progress goes
to stderr; a failed connection is reported at every retry, even with ``--quiet``.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import re
import secrets
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from modules.ingest.client import IngestClient, IngestClientError, Spool, Target
from modules.ingest.token import TokenError, read_token
from skelly.config import Config, load
from skelly.errors import SkellyError, require_dir

_IDENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "send",
        help="stream NDJSON capture events from a file or stdin to a Pi",
        description=(
            "Send capture events (one JSON object per line, docs/INGEST.md §4) to the Pi's "
            "ingest port. Lines without seq are numbered. Unacknowledged events are spooled to a "
            "file and resent after a disconnect; run the same command with the same --session "
            "to resume after an interruption."
        ),
    )
    p.add_argument("input", nargs="?", default="-", help="NDJSON file, or - for stdin (default)")
    add_connection_arguments(
        p,
        required=True,
        session_help="session id (default: a new one per run, send-<UTC time>-<random>, printed "
        "on stderr); reuse it to resume",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="give up waiting for the Pi after this many seconds: for the acknowledgements "
        "after the input ended, or while the send buffer is full because the Pi cannot be "
        "reached (0, the default: wait, reconnecting, until everything is acknowledged)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines, only problems")
    p.set_defaults(func=run)


def add_connection_arguments(
    p: argparse.ArgumentParser, *, required: bool, session_help: str
) -> None:
    """The options every sender to the Pi's ingest port takes (``skelly send``, ``skelly
    capture``): where, the token, the session and its spool, TLS."""
    p.add_argument(
        "--to", required=required, metavar="HOST:PORT|unix:PATH", help="the Pi's ingest address"
    )
    p.add_argument("--token-file", required=required, help="file holding the token (mode 0600)")
    p.add_argument("--session", help=session_help)
    p.add_argument("--host-id", help="host id (default: this computer's name)")
    p.add_argument(
        "--spool",
        help="spool file for unacknowledged events "
        "(default: <data_dir>/spool/<host>-<session>.ndjson)",
    )
    p.add_argument("--config", help="TOML config file (only data_dir is used, for the spool)")
    p.add_argument("--tls", action="store_true", help="use TLS (verify the Pi's certificate)")
    p.add_argument(
        "--ca", help="CA / self-signed certificate file to verify the Pi (implies --tls)"
    )
    p.add_argument("--tls-name", help="name to verify in the Pi's certificate (default: HOST)")


def _default_host_id() -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or "host"


def default_session() -> str:
    """``send-<UTC yyyymmddThhmmssZ>-<6 hex digits>``: two runs in the same second differ."""
    return time.strftime("send-%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Connection:
    """Where and as whom to send: what the options of :func:`add_connection_arguments` say."""

    target: Target
    token: str
    token_path: Path
    host_id: str
    session: str
    tls: ssl.SSLContext | None


def resolve_connection(args: argparse.Namespace, new_session: Callable[[], str]) -> Connection:
    """Check ``--to``, ``--token-file``, ``--host-id``, ``--session``, ``--tls``/``--ca``
    (``skelly send`` and ``skelly capture``); a bad one is a :class:`SkellyError` naming it."""
    try:
        target = Target.parse(args.to)
    except ValueError as exc:
        raise SkellyError(f"--to: {exc}") from None
    token_path = Path(args.token_file).expanduser()
    try:
        token = read_token(token_path)
    except TokenError as exc:
        raise SkellyError(str(exc)) from None
    host_id = args.host_id or _default_host_id()
    session = args.session or new_session()
    for what, value in (("--host-id", host_id), ("--session", session)):
        if not _IDENT.fullmatch(value):
            raise SkellyError(f"{what} {value!r}: use 1-64 characters of A-Z a-z 0-9 _ . -")
    ctx: ssl.SSLContext | None = None
    if args.tls or args.ca:
        if target.unix_path:
            raise SkellyError("--tls/--ca make no sense with a unix: socket; leave them out")
        ctx = _tls_context(args.ca)
    return Connection(target, token, token_path, host_id, session, ctx)


def spool_path(args: argparse.Namespace, config: Config, conn: Connection) -> Path:
    """``--spool``, or ``<state dir>/spool/<host>-<session>.ndjson``; its directory made and
    checked writable."""
    if args.spool:
        path = Path(args.spool).expanduser()
        hint = "give --spool a file in a directory you can write"
    else:
        path = config.state_dir() / "spool" / f"{conn.host_id}-{conn.session}.ndjson"
        hint = "give --spool a file in a directory you can write, or set data_dir"
    require_dir(path.parent, write=True, create=True, what="the spool directory", hint=hint)
    return path


def run(args: argparse.Namespace) -> int:
    if not args.timeout >= 0:  # also refuses nan
        raise SkellyError(
            f"--timeout must be 0 (wait until everything is acknowledged) or a positive number "
            f"of seconds, got {args.timeout:g}"
        )
    conn = resolve_connection(args, default_session)
    spool = spool_path(args, load(args.config), conn)
    if args.input == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        try:
            stream = open(args.input, "rb")  # noqa: SIM115 - closed in finally below
        except OSError as exc:
            raise SkellyError(f"cannot read {args.input}: {exc.strerror}") from None
    if not args.quiet:
        print(
            f"skelly send: host {conn.host_id} session {conn.session} → {conn.target}",
            file=sys.stderr,
        )
    try:
        sender = _Sender(args, conn, spool)
        return asyncio.run(sender.main(stream))
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _tls_context(ca: str | None) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca)
    except OSError as exc:
        raise SkellyError(
            f"cannot read the CA certificate --ca {ca}: {exc.strerror or exc}; give the Pi's "
            "certificate file (PEM) copied from the Pi"
        ) from None
    except ssl.SSLError as exc:
        raise SkellyError(
            f"--ca {ca} is not a PEM certificate ({exc.reason or exc}); give the Pi's "
            "certificate file (PEM) copied from the Pi"
        ) from None


class _Sender:
    def __init__(
        self,
        args: argparse.Namespace,
        conn: Connection,
        spool_path: Path,
    ) -> None:
        self.args = args
        self.quiet = bool(args.quiet)
        self.timeout: float | None = args.timeout or None
        self.spool_path = spool_path
        self.session = conn.session
        self.skipped = 0
        self.input_lines = 0
        # A file is numbered by position (line k without seq follows the seq before it in the
        # file, from 1), so running the same command on the same file again sends the same
        # seqs: what was stored or spooled before is recognised, not sent twice as new events.
        # Standard input is a live stream: its events continue after the session's last seq.
        self.by_position = args.input != "-"
        self.prev_seq = 0
        self.client = IngestClient(
            conn.target,
            conn.token,
            host_id=conn.host_id,
            session_id=conn.session,
            ssl_context=conn.tls,
            server_hostname=args.tls_name,
            spool=Spool(spool_path, conn.host_id, conn.session),
            client_name="skelly-send/1",
            on_refused=self._refused,
            on_status=self._status,
            on_problem=self._say,
        )

    def _say(self, text: str) -> None:
        print(f"skelly send: {text}", file=sys.stderr, flush=True)

    def _status(self, text: str) -> None:
        if not self.quiet:
            self._say(text)

    def _refused(self, msg: dict[str, Any]) -> None:
        self._say(
            f"Pi refused event seq {msg.get('seq')}: {msg.get('error')}: {msg.get('message')}"
        )

    def _progress(self) -> None:
        c = self.client
        self._say(
            f"{self.input_lines} lines read, up to seq {c.last_seq} queued, acknowledged up to "
            f"{c.acked}, {len(c.unacked)} waiting, {c.refused_count} refused, "
            f"{self.skipped} skipped"
        )

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            if not self.quiet:
                self._progress()

    async def main(self, stream: IO[bytes]) -> int:
        client = self.client
        try:
            await client.start()
        except ValueError as exc:
            raise SkellyError(str(exc)) from None
        if client.unacked and not self.quiet:
            self._say(f"resuming {len(client.unacked)} spooled events from {self.spool_path}")
        progress = asyncio.create_task(self._progress_loop(), name="send-progress")
        interrupted = False
        try:
            try:
                await self._pump(stream)
                await client.flush(self.timeout)
            except TimeoutError:
                self._gave_up()
                return 1
        except IngestClientError as exc:
            raise SkellyError(
                f"the Pi refused the connection: {exc.message}"
                + (" (check --token-file)" if exc.code == "auth" else "")
            ) from None
        except asyncio.CancelledError:
            interrupted = True
            raise
        finally:
            progress.cancel()
            left = len(client.unacked)
            await client.close()
            if interrupted and left:
                self._say(
                    f"interrupted: {left} events not acknowledged kept in {self.spool_path}; "
                    f"run again with --session {self.session} to resume"
                )
        if not self.quiet:
            self._progress()
        return 1 if (client.refused_count or self.skipped) else 0

    def _gave_up(self) -> None:
        c = self.client
        why = ""
        if not c.connects:
            why = f" never connected to {c.target} (last: {c.last_problem or 'no answer'});"
        self._say(
            f"gave up waiting after {self.args.timeout:g} s:{why} {len(c.unacked)} events not "
            f"acknowledged, kept in {self.spool_path}; run again with --session {self.session} "
            "to resume"
        )

    async def _pump(self, stream: IO[bytes]) -> None:
        """Read chunks on a thread (works for files, pipes and terminals) and queue events."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=4)

        def reader() -> None:
            read1 = getattr(stream, "read1", stream.read)
            while True:
                chunk = read1(1 << 16)
                try:
                    asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
                except (RuntimeError, concurrent.futures.CancelledError):
                    return  # the loop is gone: the sender gave up or was interrupted
                if not chunk:
                    return

        thread = threading.Thread(target=reader, name="send-input", daemon=True)
        thread.start()
        tail = b""
        while True:
            chunk = await queue.get()
            if not chunk:
                if tail.strip():
                    await self._line(tail)
                return
            lines = (tail + chunk).split(b"\n")
            tail = lines.pop()
            for line in lines:
                await self._line(line)
            # stdin cannot be read twice: what was read must be in the spool file even if this
            # process is killed (one write per input chunk, not per line)
            if self.client.spool is not None:
                self.client.spool.flush()

    async def _line(self, line: bytes) -> None:
        self.input_lines += 1
        if not line.strip():
            return
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self.skipped += 1
            self._say(f"input line {self.input_lines} is not JSON ({exc.msg}); skipped")
            return
        if not isinstance(event, dict):
            self.skipped += 1
            self._say(f"input line {self.input_lines} is not a JSON object; skipped")
            return
        if self.by_position and "seq" not in event:
            event = {**event, "seq": self.prev_seq + 1}
        try:
            if self.timeout is not None and len(self.client.unacked) >= self.client.max_buffer:
                # the buffer is full because the Pi does not acknowledge: --timeout bounds that
                self.prev_seq = await asyncio.wait_for(self.client.send(event), self.timeout)
            else:
                self.prev_seq = await self.client.send(event)
        except ValueError as exc:
            self.skipped += 1
            self._say(f"input line {self.input_lines}: {exc}; skipped")
