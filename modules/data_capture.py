"""DataCapture: the host ingest server (protocol in docs/INGEST.md).

Theory of operation
-------------------
One asyncio ``Protocol`` per connection (TCP, TLS or Unix socket).  Bytes go through a
:class:`~modules.ingest.framing.LineSplitter` (hard line limit, overlong lines discarded without
being buffered) into a small backlog of lines; the backlog is worked off synchronously on the loop:

    AWAIT_HELLO --good hello + token--> WELCOMING --resume_point()--> READY --fatal--> CLOSED
         |  bad/late hello: fatal error line, close                         ^
         +------------------------------------------------------------------+

* Nothing but the hello is looked at before the token matched (``hmac.compare_digest`` over
  SHA-256 digests); the auth timer (<= 2 s from the accept, a TLS handshake included) closes
  silent peers.  A connection counts toward ``max_connections`` from its accept, also while its
  TLS handshake runs (``handshaking``).  Unauthenticated peers can make
  the server hold at most one read chunk plus one line.
* In READY every line is validated by :mod:`modules.ingest.validate`; a bad line gets one error
  line and the connection goes on.  Accepted events go to ``pending``; a per-connection committer
  task hands everything pending to ``sink.commit`` (the Storage's group commit) and only after it
  returned sends the cumulative ``{"ack": N}`` and publishes the events as RawEvent (the whole
  committed batch with one ``bus.publish_many``).
* Backpressure instead of buffers: reading stops (``transport.pause_reading``) while
  ``max_unacked`` events wait for their commit, while the token bucket of the rate limit is empty,
  and while the transport's write buffer is full (a peer that does not read its replies).
* Resume: the welcome carries ``resume_seq = sink.resume_point(host, session)``; events with
  ``seq <= resume_seq`` are dropped as duplicates and acknowledged.  The store's dedupe key
  (host, session, seq) catches the rest (e.g. a commit of a superseded connection still in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import stat
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import orjson

from bus import BusClosedError, ModuleId, ModuleStatus
from bus.messages import LinkStatus, RawEvent
from modules.base import Module
from modules.ingest.framing import LineSplitter
from modules.ingest.token import TOKEN_FILENAME, TokenError, load_or_create_token, tokens_equal
from modules.ingest.validate import (
    FAST_KINDS,
    HELLO_MAX_BYTES,
    PROTOCOL_VERSION,
    Hello,
    IngestError,
    loads_object,
    parse_hello,
    validate_event,
)

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 65536
MAX_AUTH_TIMEOUT_S = 2.0
_CLOSE_GRACE_S = 2.0


class EventSink(Protocol):
    """Where accepted events go (``modules.storage.Storage`` implements it)."""

    async def commit(self, events: Sequence[RawEvent]) -> int:
        """Return after the events are durably committed; duplicates by (host_id, session_id,
        seq) are ignored; returns how many were new."""
        ...

    async def resume_point(self, host_id: str, session_id: str) -> int:
        """Highest seq stored for the session, 0 if none."""
        ...


@dataclass(frozen=True)
class IngestConfig:
    """``[ingest]``: the host ingest server (docs/INGEST.md §1, §8)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    """TCP address to listen on; "" = no TCP listener.  Use "0.0.0.0" for the LAN (prefer TLS)."""
    port: int = 7878
    """TCP port (0 = pick a free one; the bound port is ``DataCapture.port``)."""
    unix_path: str = ""
    """Unix socket path (mode 0600); "" = none."""
    tls_cert: str = ""
    """PEM certificate chain; with tls_key enables TLS on the TCP listener."""
    tls_key: str = ""
    token_file: str = ""
    """Token file; "" = <data_dir>/ingest.token (created with mode 0600 if missing)."""
    auth_timeout_s: float = 2.0
    max_connections: int = 8
    max_line_bytes: int = MAX_LINE_BYTES
    max_events_per_s: float = 2000.0
    """Sustained events/s per connection (0 = no limit); excess is slowed down, never dropped."""
    burst_events: int = 20000
    max_unacked: int = 4096
    """Accepted events per connection waiting for their commit before reading stops."""
    max_errors_per_min: int = 100
    idle_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not 0 < self.auth_timeout_s <= MAX_AUTH_TIMEOUT_S:
            raise ValueError(
                f"auth_timeout_s must be more than 0 and at most {MAX_AUTH_TIMEOUT_S} s, "
                f"got {self.auth_timeout_s}"
            )
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0-65535, got {self.port}")
        if not HELLO_MAX_BYTES <= self.max_line_bytes <= MAX_LINE_BYTES:
            raise ValueError(
                f"max_line_bytes must be {HELLO_MAX_BYTES}-{MAX_LINE_BYTES}, "
                f"got {self.max_line_bytes}"
            )
        for name in ("max_connections", "burst_events", "max_unacked", "max_errors_per_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_events_per_s < 0:
            raise ValueError("max_events_per_s must be >= 0 (0 = no limit)")
        if self.idle_timeout_s <= 0:
            raise ValueError("idle_timeout_s must be more than 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")


@dataclass
class IngestStats:
    connections: int = 0
    rejected_busy: int = 0
    auth_failures: int = 0
    authenticated: int = 0
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    committed: int = 0
    acks: int = 0
    errors: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


_AWAIT_HELLO, _WELCOMING, _READY, _CLOSED = range(4)


class _Connection(asyncio.Protocol):
    def __init__(self, server: DataCapture) -> None:
        self.server = server
        self.cfg = server.config
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.state = _AWAIT_HELLO
        self.splitter = LineSplitter(self.cfg.max_line_bytes)
        self.backlog: deque[bytes | None] = deque()
        self.reading_paused = False
        self.write_paused = False
        self.rate_wait = False
        self.host_id = ""
        self.session_id = ""
        self.floor = 0
        self.last_seq = 0
        self.ack_sent = 0
        self.pending: list[RawEvent] = []
        self.inflight = 0
        self.wakeup = asyncio.Event()
        self.committer: asyncio.Task[None] | None = None
        self.tokens = float(self.cfg.burst_events)
        self.tokens_at = self.loop.time()
        self.rate_noticed = False
        self.errors_window_start = self.loop.time()
        self.errors_in_window = 0
        self.last_rx = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.peer = ""
        self.authed = False
        self.dup_unacked = False
        self.peer_eof = False
        # Accepted now (for TLS the protocol is made at the TCP accept, connection_made comes
        # after the handshake): the connection counts toward max_connections from here, and the
        # hello is due auth_timeout_s after this moment, the TLS handshake included.
        self.accepted_at = self.loop.time()
        self.over_limit = (
            len(server.connections) + len(server.handshaking) >= self.cfg.max_connections
        )
        self.expired = False
        self.expiry: asyncio.TimerHandle | None = None
        self.auth_due: float | None = None
        """Loop time the hello is due (set when the connection is admitted)."""
        if not self.over_limit:
            server.handshaking.add(self)
            # a failed TLS handshake never reaches connection_made: free the place when the
            # handshake timeout (= auth_timeout_s) has ended it anyway
            self.expiry = self.loop.call_later(self.cfg.auth_timeout_s, self._handshake_expired)

    def _handshake_expired(self) -> None:
        self.expiry = None
        self.expired = True
        self.server.handshaking.discard(self)

    # --- transport callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but has the same methods
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = str(peer) if peer else "unix"
        srv = self.server
        srv.stats.connections += 1
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        srv.handshaking.discard(self)
        if self.over_limit:
            srv.stats.rejected_busy += 1
            self.state = _CLOSED
            self.transport.write(
                IngestError(
                    "busy",
                    f"the Pi already serves {self.cfg.max_connections} connections; "
                    "retry later with backoff",
                    fatal=True,
                ).to_line()
            )
            self._linger(self.transport)
            return
        if self.expired:  # the handshake outlasted the whole auth timeout
            self._auth_timeout()
            return
        srv.connections.add(self)
        self.auth_due = self.accepted_at + self.cfg.auth_timeout_s
        self.timer = self.loop.call_at(max(self.auth_due, self.loop.time()), self._auth_timeout)

    def data_received(self, data: bytes) -> None:
        if self.state == _CLOSED:
            return
        self.last_rx = self.loop.time()
        self.backlog.extend(self.splitter.feed(data))
        self._work()

    def eof_received(self) -> bool | None:
        if self.state == _CLOSED:
            if self.transport is not None:
                self.transport.close()  # lingering after a fatal error: the peer is done too
            return None  # close our side too
        if self.transport is not None and self.transport.get_extra_info("ssl_object"):
            return None  # TLS has no half-close: the connection ends here
        # the host half-closed after its last line (e.g. `nc -N`): settle every complete line
        # received so far (commit, ack), then close; a torn last line is dropped (resent later)
        self.peer_eof = True
        self._finish_if_settled()
        return True

    def _finish_if_settled(self) -> None:
        if not self.peer_eof or self.transport is None or self.backlog:
            return
        if self.state == _AWAIT_HELLO or (
            self.state == _READY and not self.pending and not self.inflight
        ):
            transport = self.transport
            self._stop_processing()
            transport.close()  # after the buffered acks are written

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_processing()
        srv = self.server
        srv.connections.discard(self)
        key = (self.host_id, self.session_id)
        if srv.sessions.get(key) is self:  # also when lost before the welcome went out
            del srv.sessions[key]
        if self.authed:
            self.authed = False
            srv._host_down(self.host_id, "connection closed" if exc is None else str(exc))

    def _stop_processing(self) -> None:
        self.state = _CLOSED
        self._cancel_timer()
        self.backlog.clear()
        self.pending = []
        self.wakeup.set()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._pause()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._work()

    # --- helpers ------------------------------------------------------------------------------

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _pause(self) -> None:
        if not self.reading_paused and self.transport is not None and self.state != _CLOSED:
            self.reading_paused = True
            with contextlib.suppress(RuntimeError):
                self.transport.pause_reading()

    def _resume(self) -> None:
        if self.reading_paused and self.transport is not None and self.state != _CLOSED:
            self.reading_paused = False
            with contextlib.suppress(RuntimeError):
                self.transport.resume_reading()

    def _write(self, line: bytes) -> None:
        if self.transport is not None and self.state != _CLOSED:
            self.transport.write(line)

    def fatal(self, err: IngestError) -> None:
        if self.state == _CLOSED or self.transport is None:
            return
        err.fatal = True
        self.server.stats.errors += 1
        self.transport.write(err.to_line())
        log.info("ingest %s: closing: %s (%s)", self.peer, err.code, err.message)
        self._stop_processing()  # connection_lost does the bookkeeping when it comes
        self._linger(self.transport)

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close gracefully: FIN after the error line, then read and discard what the peer still
        sends for a moment.  Closing with unread input would send a TCP reset, and a reset can
        destroy the error line before the peer has read it."""
        try:
            lingering = transport.can_write_eof()
            if lingering:
                transport.write_eof()
                transport.resume_reading()
        except (OSError, RuntimeError):  # the peer is already gone: nothing to linger for
            lingering = False
        if lingering:
            self.loop.call_later(_CLOSE_GRACE_S / 2, transport.close)
        else:
            transport.close()
        self.loop.call_later(_CLOSE_GRACE_S, transport.abort)

    def _error(self, err: IngestError) -> None:
        srv = self.server
        srv.stats.errors += 1
        now = self.loop.time()
        if now - self.errors_window_start >= 60.0:
            self.errors_window_start = now
            self.errors_in_window = 0
        self.errors_in_window += 1
        if self.errors_in_window > self.cfg.max_errors_per_min:
            self.fatal(
                IngestError(
                    "too_many_errors",
                    f"more than {self.cfg.max_errors_per_min} bad lines in a minute; "
                    "fix the client (see the previous error lines) and reconnect",
                )
            )
            return
        self._write(err.to_line())

    def _auth_timeout(self) -> None:
        self.timer = None
        if self.state == _AWAIT_HELLO:
            self.server.stats.auth_failures += 1
            self.fatal(
                IngestError(
                    "auth_timeout",
                    f"no hello within {self.cfg.auth_timeout_s:g} s; send the hello line "
                    "first, right after connecting",
                )
            )

    def _idle_check(self) -> None:
        self.timer = None
        if self.state != _READY:
            return
        idle = self.loop.time() - self.last_rx
        if idle >= self.cfg.idle_timeout_s:
            self.fatal(
                IngestError(
                    "idle_timeout",
                    f"nothing received for {self.cfg.idle_timeout_s:g} s; "
                    'send {"kind":"ping"} when there is nothing else to send',
                )
            )
        else:
            self.timer = self.loop.call_later(self.cfg.idle_timeout_s - idle, self._idle_check)

    # --- the work loop ------------------------------------------------------------------------

    def _work(self) -> None:
        """Handle backlog lines until done or a reason to stop reading appears."""
        if self.state == _AWAIT_HELLO:
            if not self.backlog:
                return
            self._hello(self.backlog.popleft())
            return
        if self.state != _READY:
            if self.backlog:
                self._pause()
            return
        cfg = self.cfg
        limit_rate = cfg.max_events_per_s > 0
        backlog = self.backlog
        max_unacked = cfg.max_unacked
        handle = self._line
        if limit_rate:
            now = self.loop.time()
            self.tokens = min(
                float(cfg.burst_events),
                self.tokens + (now - self.tokens_at) * cfg.max_events_per_s,
            )
            self.tokens_at = now
        pending = self.pending
        fast = FAST_KINDS
        loads = orjson.loads
        popleft = backlog.popleft
        host, session = self.host_id, self.session_id
        n_fast = 0
        try:
            while backlog:
                # conditions only change on the slow path (an error line may fill the write
                # buffer), so they are checked once per run of lines, not per line
                if self.state != _READY:
                    return
                room = max_unacked - len(pending) - self.inflight
                if self.write_paused or room <= 0:
                    self._pause()
                    return
                if limit_rate:
                    if self.tokens < 1.0:
                        self._throttle()
                        return
                    room = min(room, int(self.tokens))
                    self.tokens -= room  # given back below for lines not taken
                last_seq = self.last_seq
                slow: bytes | None = b""
                while room and backlog:
                    room -= 1
                    line = popleft()
                    # fast path: a valid event in order; anything else takes the full path
                    if line:
                        try:
                            obj = loads(line)
                        except orjson.JSONDecodeError:
                            obj = None
                        if type(obj) is dict:
                            kind = obj.get("kind")
                            check = fast.get(kind) if type(kind) is str else None
                            if check is not None:
                                ev = check(obj, host, session)
                                if ev is not None and ev.seq > last_seq:
                                    last_seq = ev.seq
                                    pending.append(ev)
                                    n_fast += 1
                                    continue
                    slow = line
                    break
                self.last_seq = last_seq
                if limit_rate:
                    self.tokens += room
                if slow != b"" and not handle(slow) and limit_rate:
                    self.tokens += 1.0  # a ping or a blank line is not an event: no unit spent
        finally:
            if n_fast:
                stats = self.server.stats
                stats.lines += n_fast
                stats.accepted += n_fast
                if not self.inflight:
                    self.wakeup.set()
        if self.dup_unacked and not self.pending and not self.inflight:
            self.dup_unacked = False
            self._send_ack(max(self.ack_sent, self.floor))
        if self.state == _READY and not self.write_paused and not self.rate_wait:
            self._resume()
        self._finish_if_settled()

    def _throttle(self) -> None:
        self.server.stats.throttled += 1
        self._pause()
        if not self.rate_noticed:
            self.rate_noticed = True
            self._error(
                IngestError(
                    "rate",
                    f"more than {self.cfg.max_events_per_s:g} events/s (bursts of "
                    f"{self.cfg.burst_events}): reading paused; nothing is lost, slow down",
                )
            )
        if not self.rate_wait:
            self.rate_wait = True
            wait = (1.0 - self.tokens) / self.cfg.max_events_per_s
            self.loop.call_later(max(wait, 0.001), self._rate_resume)

    def _rate_resume(self) -> None:
        self.rate_wait = False
        self._work()

    def _send_ack(self, n: int) -> None:
        self.ack_sent = n
        self.server.stats.acks += 1
        self._write(b'{"ack":%d}\n' % n)

    def _hello(self, line: bytes | None) -> None:
        srv = self.server
        try:
            if line is None:
                raise IngestError("hello", f"hello line is longer than {HELLO_MAX_BYTES} bytes")
            hello = parse_hello(line.rstrip(b"\r"))
            if not tokens_equal(hello.token, srv.token):
                raise IngestError(
                    "auth",
                    "wrong token; nothing was stored. Copy the token shown by "
                    "`skelly token` on the Pi to the host",
                    field="token",
                )
        except IngestError as err:
            srv.stats.auth_failures += 1
            self.fatal(err)
            return
        self._cancel_timer()
        self.state = _WELCOMING
        self._pause()
        self.host_id = hello.host_id
        self.session_id = hello.session_id
        task = self.loop.create_task(self._welcome(hello), name=f"ingest-welcome-{self.peer}")
        srv.tasks.add(task)
        task.add_done_callback(srv.tasks.discard)

    async def _welcome(self, hello: Hello) -> None:
        srv = self.server
        key = (hello.host_id, hello.session_id)
        old = srv.sessions.get(key)
        if old is not None and old is not self:
            old.fatal(
                IngestError(
                    "superseded",
                    f"a newer connection for host {hello.host_id} session {hello.session_id} "
                    "said hello; this one is closed",
                )
            )
            if old.committer is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(old.committer)
        srv.sessions[key] = self
        try:
            floor = await srv.sink.resume_point(hello.host_id, hello.session_id)
        except Exception as exc:  # the store is broken: tell the host, keep serving others
            log.exception("ingest: resume_point failed")
            srv.set_status(ModuleStatus.DEGRADED, f"storage resume_point failed: {exc}")
            self.fatal(IngestError("storage", f"the Pi cannot read its store ({exc}); retry later"))
            return
        if self.state != _WELCOMING:
            return
        self.floor = self.last_seq = self.ack_sent = floor
        srv.stats.authenticated += 1
        self.authed = True
        cfg = self.cfg
        welcome = {
            "welcome": True,
            "proto": PROTOCOL_VERSION,
            "resume_seq": floor,
            "limits": {
                "max_line_bytes": cfg.max_line_bytes,
                "max_events_per_s": float(cfg.max_events_per_s),
                "burst_events": cfg.burst_events,
                "max_unacked": cfg.max_unacked,
                "idle_timeout_s": float(cfg.idle_timeout_s),
            },
        }
        self._write(orjson.dumps(welcome) + b"\n")
        self.state = _READY
        self.timer = self.loop.call_later(cfg.idle_timeout_s, self._idle_check)
        self.committer = self.loop.create_task(
            self._commit_loop(), name=f"ingest-commit-{hello.host_id}-{hello.session_id}"
        )
        srv.tasks.add(self.committer)
        self.committer.add_done_callback(srv.tasks.discard)
        srv._host_up(hello.host_id, self.peer)
        log.info(
            "ingest %s: host %s session %s authenticated, resume at %d",
            self.peer,
            hello.host_id,
            hello.session_id,
            floor,
        )
        self._work()

    def _line(self, line: bytes | None) -> bool:
        """Handle one line on the full path; False when it was no event at all (a ping, a blank
        line), which spends nothing of the rate limit."""
        srv = self.server
        srv.stats.lines += 1
        if line is None:
            self._error(
                IngestError(
                    "line_too_long",
                    f"line longer than {self.cfg.max_line_bytes} bytes was discarded; "
                    "events are small: send one event per line",
                )
            )
            return True
        if line[-1:] == b"\r":
            line = line[:-1]
        if not line or line.isspace():
            srv.stats.lines -= 1
            return False
        try:
            obj = loads_object(line)
            if obj.get("kind") == "ping":
                if len(obj) != 1:
                    raise IngestError(
                        "unknown_field", 'a ping is exactly {"kind":"ping"}', field="kind"
                    )
                self._write(b'{"pong":true,"ack":%d}\n' % self.ack_sent)
                return False
            ev = validate_event(obj, self.host_id, self.session_id)
        except IngestError as err:
            self._error(err)
            return True
        seq = ev.seq
        if seq <= self.floor:
            srv.stats.duplicates += 1
            self.dup_unacked = True
            return True
        if seq <= self.last_seq:
            self._error(
                IngestError(
                    "seq",
                    f"event seq {seq} ({ev.kind}) is not greater than the previous seq "
                    f"{self.last_seq} on this connection; send events in increasing seq order",
                    seq=seq,
                    field="seq",
                )
            )
            return True
        self.last_seq = seq
        srv.stats.accepted += 1
        self.pending.append(ev)
        if not self.inflight:
            self.wakeup.set()
        return True

    async def _commit_loop(self) -> None:
        srv = self.server
        sink = srv.sink
        while self.state != _CLOSED:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.pending and self.state != _CLOSED:
                batch = self.pending
                self.pending = []
                self.inflight = len(batch)
                try:
                    await sink.commit(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.exception("ingest: commit failed")
                    srv.set_status(ModuleStatus.DEGRADED, f"storage commit failed: {exc}")
                    self.inflight = 0
                    self.fatal(
                        IngestError(
                            "storage",
                            f"the Pi could not store events after seq {self.ack_sent} ({exc}); "
                            "reconnect later and resend",
                        )
                    )
                    return
                self.inflight = 0
                srv.stats.committed += len(batch)
                if srv.status is ModuleStatus.DEGRADED and srv.detail.startswith("storage"):
                    srv.set_status(ModuleStatus.HEALTHY, "running")
                if self.state == _CLOSED:
                    return
                self._send_ack(batch[-1].seq)
                srv._publish_events(batch)
                if self.backlog or self.reading_paused:
                    self._work()
                else:
                    self._finish_if_settled()


class DataCapture(Module):
    """The ingest server module.  ``DataCapture(config, sink=storage, state_dir=...)``."""

    name = ModuleId.DATA_CAPTURE

    def __init__(
        self,
        config: IngestConfig | None = None,
        *,
        sink: EventSink | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.config = config or IngestConfig()
        self._sink = sink
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self._token = token
        self._ssl_context = ssl_context
        self.stats = IngestStats()
        self.connections: set[_Connection] = set()
        self.handshaking: set[_Connection] = set()
        """Accepted connections whose TLS handshake is still running (they count toward
        ``max_connections``; plain TCP/Unix connections pass through at once)."""
        self.sessions: dict[tuple[str, str], _Connection] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._servers: list[asyncio.Server] = []
        self._host_conns: dict[str, int] = {}
        self.port = 0
        self.token_path: Path | None = None
        self.publish_events = True
        self.placeholder = False

    @property
    def sink(self) -> EventSink:
        if self._sink is None:
            raise RuntimeError("DataCapture has no sink")
        return self._sink

    @property
    def token(self) -> str:
        if self._token is None:
            raise RuntimeError("DataCapture has no token")
        return self._token

    def token_file(self) -> Path | None:
        if self.config.token_file:
            return Path(self.config.token_file).expanduser()
        if self.state_dir is not None:
            return self.state_dir / TOKEN_FILENAME
        return None

    async def on_start(self) -> None:
        cfg = self.config
        if not cfg.enabled:
            self.set_status(ModuleStatus.HEALTHY, "disabled in config ([ingest] enabled=false)")
            return
        if self._sink is None:
            self.set_status(
                ModuleStatus.DEGRADED, "no storage sink wired: ingest not listening (no acks)"
            )
            return
        if self._token is None:
            path = self.token_file()
            if path is None:
                self.set_status(
                    ModuleStatus.UNHEALTHY,
                    "no token: set [ingest] token_file or data_dir; not listening",
                )
                return
            try:
                self._token, created = load_or_create_token(path)
            except TokenError as exc:
                self.set_status(ModuleStatus.UNHEALTHY, f"{exc}; not listening")
                return
            except OSError as exc:  # creating it failed: report, never crash the service
                self.set_status(
                    ModuleStatus.UNHEALTHY,
                    f"cannot create the token file {path}: {exc.strerror or exc}; set [ingest] "
                    "token_file or data_dir to a writable place; not listening",
                )
                return
            self.token_path = path
            if created:
                log.warning("ingest: created a new token in %s (show it with `skelly token`)", path)
        ctx = self._ssl_context
        if ctx is None and cfg.tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
            except (OSError, ssl.SSLError) as exc:
                self.set_status(
                    ModuleStatus.UNHEALTHY,
                    f"cannot load TLS certificate {cfg.tls_cert} / key {cfg.tls_key}: {exc}",
                )
                return
        loop = asyncio.get_running_loop()
        where = []
        try:
            if cfg.host:
                kwargs: dict[str, Any] = {}
                if ctx is not None:
                    kwargs["ssl"] = ctx
                    kwargs["ssl_handshake_timeout"] = cfg.auth_timeout_s
                server = await loop.create_server(
                    lambda: _Connection(self), cfg.host, cfg.port, reuse_address=True, **kwargs
                )
                self._servers.append(server)
                self.port = server.sockets[0].getsockname()[1]
                where.append(f"{'tls' if ctx else 'tcp'}://{cfg.host}:{self.port}")
            if cfg.unix_path:
                path = Path(cfg.unix_path)
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        path.unlink()
                old_umask = os.umask(0o177)
                try:
                    userver = await loop.create_unix_server(lambda: _Connection(self), str(path))
                finally:
                    os.umask(old_umask)
                os.chmod(path, 0o600)
                self._servers.append(userver)
                where.append(f"unix:{path}")
        except OSError as exc:
            await self._close_servers()
            self.set_status(ModuleStatus.UNHEALTHY, f"cannot listen: {exc}")
            return
        self.set_status(ModuleStatus.HEALTHY, "listening on " + ", ".join(where))

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._servers.clear()

    async def on_stop(self) -> None:
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.fatal(IngestError("shutdown", "the Pi service is stopping; reconnect later"))
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5.0)
        for task in list(self.tasks):
            task.cancel()
        await self._close_servers()
        if self.config.unix_path:
            with contextlib.suppress(OSError):
                os.unlink(self.config.unix_path)

    # --- called by connections ----------------------------------------------------------------

    def _publish_events(self, batch: list[RawEvent]) -> None:
        """Publish a committed batch as RawEvents: one ``publish_many`` (one route pass and one
        timestamp for the burst; each event still its own envelope and delivery)."""
        if not self.publish_events or self._bus is None or not batch:
            return
        self._bus.publish_many(batch, source=self.name)

    def _host_up(self, host_id: str, peer: str) -> None:
        n = self._host_conns.get(host_id, 0)
        self._host_conns[host_id] = n + 1
        if n == 0 and self._bus is not None:
            self.publish(LinkStatus("host", True, host_id, f"connected from {peer}"))

    def _host_down(self, host_id: str, why: str) -> None:
        n = self._host_conns.get(host_id, 0) - 1
        if n > 0:
            self._host_conns[host_id] = n
            return
        self._host_conns.pop(host_id, None)
        if self._bus is not None:
            with contextlib.suppress(BusClosedError):
                self.publish(LinkStatus("host", False, host_id, why))


__all__ = ["MAX_LINE_BYTES", "DataCapture", "EventSink", "IngestConfig", "IngestStats"]
