"""Host-side ingest client (docs/INGEST.md §10): connect, hello, send, track acks, resume.

``IngestClient`` keeps every event until a cumulative ``{"ack": N}`` covers it.  A background
task owns the connection: it connects (TCP, TLS or Unix socket), says hello, drops what the
welcome's ``resume_seq`` says is stored, resends the rest in order, then streams new events; on a
disconnect or a retryable fatal error it reconnects with capped, jittered exponential backoff.
An optional :class:`Spool` mirrors the unacknowledged events in a file, so a restarted sender
(``skelly send``) resumes where it stopped; the spool is locked (``flock`` on ``<spool>.lock``)
while a client uses it, so two senders never share one (docs/CLI.md §3).  A failed connection
is reported at every retry through ``on_problem`` (or ``on_status``), with the reason and the
delay before the next try.

Usage::

    client = IngestClient("127.0.0.1:7878", token, host_id="laptop", session_id="s1")
    await client.start()
    await client.send({"kind": "key", "ts": time.time(), "correction": False})  # seq assigned
    await client.flush()          # every event acknowledged (durably stored) or refused
    await client.close()

Used by ``skelly send`` and by the simulated host (``hw_sim.host_client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import ssl
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from modules.ingest.validate import MAX_SEQ, PROTOCOL_VERSION
from modules.lockfile import try_lock, write_holder

log = logging.getLogger(__name__)

FATAL_FOR_GOOD = frozenset(("auth", "hello", "version"))


class IngestClientError(Exception):
    """The Pi refused the client for good (wrong token, bad hello, unsupported version)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SpoolLockedError(ValueError):
    """Another process (another ``skelly send``) uses this spool file."""

    def __init__(self, path: Path, pid: str) -> None:
        who = f" (pid {pid})" if pid else ""
        super().__init__(
            f"the spool {path} is in use by another skelly send{who} with the same host and "
            "session; let it finish or stop it, or give this run another --session (or --spool)"
        )
        self.path = path
        self.pid = pid


def spool_lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def lock_spool(path: Path) -> int:
    """Take the exclusive lock of the spool ``path``; return its fd (holding our pid).

    Raises :class:`SpoolLockedError` at once if another process holds it.  The holder removes
    the lock file when it is done (:func:`unlock_spool`), so after taking the lock we check that
    the file we locked is still the one at the path, and start over if it is not.
    """
    lock_path = spool_lock_path(path)
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        holder = try_lock(fd)
        if holder is not None:
            raise SpoolLockedError(path, holder)
        try:
            now = os.stat(lock_path)
            mine = os.fstat(fd)
            same = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    write_holder(fd)
    return fd


def unlock_spool(fd: int, path: Path) -> None:
    """Remove the lock file (while still holding it) and release the lock."""
    with contextlib.suppress(OSError):
        spool_lock_path(path).unlink()
    with contextlib.suppress(OSError):
        os.close(fd)


@dataclass(frozen=True)
class Target:
    host: str = ""
    port: int = 0
    unix_path: str = ""

    @classmethod
    def parse(cls, text: str) -> Target:
        """``HOST:PORT``, ``[V6]:PORT`` or ``unix:PATH``; ValueError with a hint otherwise."""
        if text.startswith("unix:"):
            path = text[5:]
            if not path:
                raise ValueError("unix: needs a socket path, e.g. unix:/run/skelly/ingest.sock")
            return cls(unix_path=path)
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                f"{text!r} is not HOST:PORT or unix:PATH (e.g. 192.168.1.20:7878 or "
                "unix:/run/skelly/ingest.sock)"
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"


class Spool:
    """The unacknowledged events of one session in a file (NDJSON, first line a header).

    ``append`` buffers the line and ``flush`` hands the buffer to the OS (``skelly send`` flushes
    after every input chunk, so a killed sender keeps what it read; not fsynced per line);
    ``settled`` compacts the file when at least half of it is acknowledged; ``close`` compacts
    and fsyncs.  ``load`` takes the spool's lock (:func:`lock_spool`: a second user is refused
    with :class:`SpoolLockedError`) and ``close`` releases it.
    """

    def __init__(self, path: str | os.PathLike[str], host_id: str, session_id: str) -> None:
        self.path = Path(path)
        self.host_id = host_id
        self.session_id = session_id
        self._f: Any = None
        self._lock_fd: int | None = None
        self._lines_in_file = 0
        self._acked_in_file = 0
        self.provisional_from: int | None = None
        """The first seq this session's client numbered before the Pi said where the session
        stands (kept in the header, so a sender killed before its first welcome still has its
        events renumbered by the next run; see :meth:`IngestClient.number_after`)."""

    def lock(self) -> None:
        """Take the spool's lock (idempotent); :class:`SpoolLockedError` if another has it."""
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = lock_spool(self.path)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            unlock_spool(self._lock_fd, self.path)
            self._lock_fd = None

    def load(self) -> list[tuple[int, bytes]]:
        """Lock the spool and return the events left from an earlier run of this session (a
        torn last line is ignored)."""
        self.lock()
        try:
            return self._load()
        except BaseException:
            self.unlock()
            raise

    def _load(self) -> list[tuple[int, bytes]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        if not lines or not lines[0]:
            return []
        try:
            header = orjson.loads(lines[0])
        except orjson.JSONDecodeError:
            raise ValueError(f"spool file {self.path} has no valid header; move it away") from None
        if header.get("host_id") != self.host_id or header.get("session_id") != self.session_id:
            raise ValueError(
                f"spool file {self.path} belongs to host {header.get('host_id')!r} session "
                f"{header.get('session_id')!r}; use that --session or another --spool"
            )
        provisional = header.get("provisional_from")
        self.provisional_from = provisional if isinstance(provisional, int) else None
        out: list[tuple[int, bytes]] = []
        last = 0
        for line in lines[1:]:
            if not line:
                continue
            try:
                seq = orjson.loads(line)["seq"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by a crash while it was written
            if isinstance(seq, int) and seq > last:
                out.append((seq, line))
                last = seq
        return out

    def open(self, unacked: Iterable[bytes]) -> None:
        """Start the file afresh with the header and ``unacked``."""
        self._rewrite(list(unacked))

    def _rewrite(self, lines: list[bytes]) -> None:
        if self._f is not None:
            self._f.close()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fields: dict[str, Any] = {
            "spool": 1,
            "host_id": self.host_id,
            "session_id": self.session_id,
        }
        if self.provisional_from is not None:
            fields["provisional_from"] = self.provisional_from
        header = orjson.dumps(fields)
        with open(tmp, "wb") as f:
            f.write(header + b"\n")
            for line in lines:
                f.write(line + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._f = open(self.path, "ab")  # noqa: SIM115 - kept open for appends
        self._lines_in_file = len(lines)
        self._acked_in_file = 0

    def append(self, line: bytes) -> None:
        self._f.write(line + b"\n")
        self._lines_in_file += 1

    def flush(self) -> None:
        if self._f is not None:
            self._f.flush()

    def settled(self, count: int, remaining: Callable[[], list[bytes]]) -> None:
        self._acked_in_file += count
        if self._acked_in_file >= 4096 and self._acked_in_file * 2 >= self._lines_in_file:
            self._rewrite(remaining())

    def close(self, remaining: list[bytes]) -> None:
        try:
            if self._f is None:
                return
            if remaining:
                self._rewrite(remaining)
                self._f.close()
            else:
                self._f.close()
                self.path.unlink(missing_ok=True)
            self._f = None
        finally:
            self.unlock()


class IngestClient:
    def __init__(
        self,
        target: str | Target,
        token: str,
        *,
        host_id: str,
        session_id: str,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        spool: Spool | None = None,
        max_buffer: int = 100_000,
        max_unacked: int = 4096,
        backoff: tuple[float, float] = (0.2, 10.0),
        connect_timeout: float = 5.0,
        client_name: str = "skelly-ingest-client/1",
        on_refused: Callable[[dict[str, Any]], None] | None = None,
        on_status: Callable[[str], None] | None = None,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.target = target if isinstance(target, Target) else Target.parse(target)
        self.token = token
        self.host_id = host_id
        self.session_id = session_id
        self.ssl_context = ssl_context
        self.server_hostname = server_hostname
        self.spool = spool
        self.max_buffer = max_buffer
        self.max_unacked = max_unacked
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.client_name = client_name
        self.on_refused = on_refused
        self.on_status = on_status
        self.on_problem = on_problem
        self.last_problem = ""
        """Why the last connection attempt failed or the last connection ended ('' if none)."""
        self.unacked: OrderedDict[int, bytes] = OrderedDict()
        self.last_seq = 0
        self.acked = 0
        self.resume_seq: int | None = None
        self._provisional_from: int | None = None
        self.refused: deque[dict[str, Any]] = deque(maxlen=1000)
        self.refused_count = 0
        self.sent_lines = 0
        self.connects = 0
        self.failure: IngestClientError | None = None
        self.connected = asyncio.Event()
        self._to_write: deque[int] = deque()
        self._write_wakeup = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._writer: asyncio.StreamWriter | None = None

    # --- public API ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self.spool is not None:
            for seq, line in self.spool.load():
                self.unacked[seq] = line
                self.last_seq = seq
            if self.unacked:
                # the spool keeps every unsettled event: those below its first were settled
                # (acknowledged or refused) by an earlier run, so a replay of them is no error
                self.acked = max(self.acked, next(iter(self.unacked)) - 1)
                self._provisional_from = self.spool.provisional_from
            else:
                self.spool.provisional_from = None
            self.spool.open(self.unacked.values())
        self._task = asyncio.create_task(self._run(), name=f"ingest-client-{self.session_id}")

    async def wait_connected(self, timeout: float | None = None) -> int:
        """Wait for a welcome; returns its ``resume_seq``."""
        await asyncio.wait_for(self._wait_connected(), timeout)
        assert self.resume_seq is not None
        return self.resume_seq

    async def _wait_connected(self) -> None:
        while not self.connected.is_set():
            self._raise_failure()
            self._changed.clear()
            waiter = asyncio.ensure_future(self.connected.wait())
            changed = asyncio.ensure_future(self._changed.wait())
            await asyncio.wait((waiter, changed), return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            changed.cancel()
        self._raise_failure()

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def send(self, event: dict[str, Any]) -> int:
        """Queue one event (assigning ``seq`` if it has none); waits while the buffer is full."""
        seq, numbered = self._numbered(event)
        if numbered is None:
            return seq  # already sent: a replayed input line
        while len(self.unacked) >= self.max_buffer:
            self._raise_failure()
            self._changed.clear()
            await self._changed.wait()
        self._queue(seq, orjson.dumps(numbered))
        return seq

    def _mark_provisional(self, seq: int) -> None:
        """Events numbered here before the first welcome are provisional: the Pi may already
        hold this session's events up to a higher seq (a rerun of a named session whose spool
        was emptied), and numbered from 1 again they would be dropped by the Pi as duplicates.
        The first welcome renumbers them after its ``resume_seq`` (:meth:`_renumber`)."""
        self._provisional_from = seq
        if self.spool is not None:
            self.spool.provisional_from = seq
            self.spool.open(self.unacked.values())

    def _renumber(self, resume: int) -> None:
        first = self._provisional_from
        if first is None:
            return
        self._provisional_from = None
        shift = resume - first + 1
        if shift > 0 and any(seq >= first for seq in self.unacked):
            moved: OrderedDict[int, bytes] = OrderedDict()
            for seq, line in self.unacked.items():
                if seq >= first:
                    seq += shift
                    line = orjson.dumps({**orjson.loads(line), "seq": seq})
                moved[seq] = line
            self.unacked = moved
            self.last_seq += shift
            self._status(
                f"session {self.session_id}: the Pi already holds up to seq {resume}; the events "
                f"read before it said so are numbered from {first + shift}"
            )
        elif shift > 0:
            self.last_seq = max(self.last_seq, resume)
        if self.spool is not None:
            self.spool.provisional_from = None
            self.spool.open(self.unacked.values())

    def send_nowait(self, event: dict[str, Any]) -> int:
        """Like :meth:`send` but never waits (the buffer may exceed ``max_buffer``)."""
        seq, numbered = self._numbered(event)
        if numbered is not None:
            self._queue(seq, orjson.dumps(numbered))
        return seq

    def _numbered(self, event: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        """``(seq, event with seq)``, or ``(seq, None)`` for a replay of an event already sent;
        ValueError for a seq that is not a valid integer or goes backwards."""
        self._raise_failure()
        seq = event.get("seq")
        if seq is None:
            seq = self.last_seq + 1
            if self.resume_seq is None and self._provisional_from is None:
                self._mark_provisional(seq)
            return seq, {**event, "seq": seq}
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= MAX_SEQ:
            raise ValueError(f"event seq {seq!r} is not an integer from 1 to {MAX_SEQ}")
        if seq <= self.last_seq:
            if seq <= self.acked or seq in self.unacked:
                return seq, None
            raise ValueError(
                f"event seq {seq} is not greater than the previous seq {self.last_seq}"
            )
        return seq, event

    def _queue(self, seq: int, line: bytes) -> None:
        self.last_seq = seq
        self.unacked[seq] = line
        if self.spool is not None:
            self.spool.append(line)
        if self.connected.is_set():
            self._to_write.append(seq)
            self._write_wakeup.set()

    def ping(self) -> bool:
        """Send ``{"kind":"ping"}`` now if connected (docs/INGEST.md §4.5: a client with
        nothing to send pings so the Pi's idle timeout does not close the connection); the
        ``pong`` carries an ack like any other.  Returns whether it was sent."""
        if self._writer is None or not self.connected.is_set():
            return False
        self._writer.write(b'{"kind":"ping"}\n')
        return True

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued event is acknowledged or refused."""
        if self.spool is not None:
            self.spool.flush()
        await asyncio.wait_for(self._flush(), timeout)

    async def _flush(self) -> None:
        while self.unacked:
            self._raise_failure()
            self._changed.clear()
            await self._changed.wait()
        self._raise_failure()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.spool is not None:
            self.spool.close(list(self.unacked.values()))

    # --- connection task ----------------------------------------------------------------------

    def _status(self, text: str) -> None:
        log.info("ingest client: %s", text)
        if self.on_status is not None:
            self.on_status(text)

    def _problem(self, text: str) -> None:
        """A failed connection (attempt): said at every retry, to ``on_problem`` if set."""
        if self.on_problem is None:
            self._status(text)
            return
        log.info("ingest client: %s", text)
        self.on_problem(text)

    def _why(self, exc: BaseException) -> str:
        """What went wrong with a connection, in words (and what to check)."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"the Pi's TLS certificate is not trusted ({exc.verify_message}); give the Pi's "
                "certificate with --ca, and --tls-name if it names another host"
            )
        if isinstance(exc, ssl.SSLError):
            return f"TLS failed: {exc.reason or exc}; check --tls/--ca and the Pi's [ingest] tls_*"
        if isinstance(exc, ConnectionRefusedError):
            return (
                "connection refused: nothing listens there; check that `skelly run` runs on the "
                "Pi and that [ingest] host/port (or unix_path) match --to"
            )
        if isinstance(exc, FileNotFoundError) and self.target.unix_path:
            return "no socket there; check that `skelly run` runs and [ingest] unix_path"
        if isinstance(exc, TimeoutError):
            return f"no answer within {self.connect_timeout:g} s"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        return str(exc) or type(exc).__name__

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        t = self.target
        limit = 1 << 20
        if t.unix_path:
            return await asyncio.open_unix_connection(t.unix_path, limit=limit)
        kwargs: dict[str, Any] = {}
        if self.ssl_context is not None:
            kwargs["ssl"] = self.ssl_context
            kwargs["server_hostname"] = self.server_hostname or t.host
        return await asyncio.open_connection(t.host, t.port, limit=limit, **kwargs)

    async def _run(self) -> None:
        delay = self.backoff[0]
        while not self._closing:
            connects = self.connects
            try:
                await self._session()
                what = f"the Pi at {self.target} ended the connection"
            except IngestClientError as exc:
                self.failure = exc
                self._changed.set()
                self._status(f"refused for good: {exc}")
                return
            except (OSError, EOFError, asyncio.IncompleteReadError, TimeoutError) as exc:
                what = self._why(exc)
            except (ValueError, KeyError, TypeError) as exc:  # a reply line that is not protocol
                what = f"protocol error from {self.target}: {exc!r}"
            finally:
                self.connected.clear()
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                self._changed.set()
            welcomed = self.connects > connects
            if welcomed:
                delay = self.backoff[0]  # it worked for a while: start the backoff afresh
            sleep = delay * (0.5 + random.random() / 2)
            delay = min(delay * 2, self.backoff[1])
            self.last_problem = what
            head = (
                f"connection to {self.target} lost"
                if welcomed
                else f"cannot connect to {self.target}"
            )
            self._problem(f"{head}: {what}; retrying in {sleep:.1f} s")
            await asyncio.sleep(sleep)

    async def _session(self) -> bool:
        reader, writer = await asyncio.wait_for(self._open(), self.connect_timeout)
        self._writer = writer
        hello = {
            "kind": "hello",
            "proto": PROTOCOL_VERSION,
            "token": self.token,
            "host_id": self.host_id,
            "session_id": self.session_id,
            "client": self.client_name,
        }
        writer.write(orjson.dumps(hello) + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), self.connect_timeout)
        if not line.endswith(b"\n"):
            raise EOFError("the Pi closed the connection before the welcome")
        reply = orjson.loads(line)
        if "error" in reply:
            code = str(reply.get("error"))
            if code in FATAL_FOR_GOOD:
                raise IngestClientError(code, str(reply.get("message", "")))
            raise EOFError(f"the Pi said {code}: {reply.get('message', '')}")
        resume = int(reply["resume_seq"])
        limits = reply.get("limits") or {}
        window = min(self.max_unacked, int(limits.get("max_unacked", self.max_unacked)))
        self.connects += 1
        self._renumber(resume)
        self.resume_seq = resume
        self._settle(resume)
        self._to_write = deque(s for s in self.unacked if s > resume)
        self.connected.set()
        self._changed.set()
        self._status(f"connected to {self.target}, Pi has up to seq {resume}")
        writer_task = asyncio.create_task(self._writer_loop(writer, window), name="ingest-writer")
        try:
            await self._reader_loop(reader)
        finally:
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await writer_task
        return True

    async def _writer_loop(self, writer: asyncio.StreamWriter, window: int) -> None:
        todo = self._to_write
        while True:
            if not todo:
                self._write_wakeup.clear()
                await self._write_wakeup.wait()
                continue
            in_flight = len(self.unacked) - len(todo)
            if in_flight >= window:
                self._changed.clear()
                await self._changed.wait()
                continue
            chunk: list[bytes] = []
            budget = min(window - in_flight, 1024)
            while todo and budget > 0:
                seq = todo.popleft()
                line = self.unacked.get(seq)
                if line is not None:
                    chunk.append(line)
                    budget -= 1
            if chunk:
                chunk.append(b"")
                writer.write(b"\n".join(chunk))
                self.sent_lines += len(chunk) - 1
                await writer.drain()

    async def _reader_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                raise EOFError("the Pi closed the connection")
            if not line.endswith(b"\n"):
                raise EOFError("connection cut in the middle of a reply line")
            msg = orjson.loads(line)
            if "ack" in msg and "error" not in msg:
                self._settle(int(msg["ack"]))
            elif "error" in msg:
                code = str(msg["error"])
                seq = msg.get("seq")
                if isinstance(seq, int) and seq in self.unacked:
                    self._refuse(seq, msg)
                elif msg.get("fatal"):
                    if code in FATAL_FOR_GOOD:
                        raise IngestClientError(code, str(msg.get("message", "")))
                    raise EOFError(f"the Pi closed the connection: {code}: {msg.get('message')}")
                else:
                    self._status(f"notice from the Pi: {code}: {msg.get('message')}")

    def _settle(self, n: int) -> None:
        if n <= self.acked and not (self.unacked and next(iter(self.unacked)) <= n):
            return
        self.acked = max(self.acked, n)
        done = 0
        unacked = self.unacked
        while unacked:
            first, line = unacked.popitem(last=False)
            if first > n:
                unacked[first] = line
                unacked.move_to_end(first, last=False)
                break
            done += 1
        if done:
            if self.spool is not None:
                self.spool.settled(done, lambda: list(self.unacked.values()))
            self._changed.set()

    def _refuse(self, seq: int, msg: dict[str, Any]) -> None:
        self.unacked.pop(seq, None)
        self.refused.append(msg)
        self.refused_count += 1
        if self.spool is not None:
            self.spool.settled(1, lambda: list(self.unacked.values()))
        if self.on_refused is not None:
            self.on_refused(msg)
        self._changed.set()
