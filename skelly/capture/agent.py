"""The asyncio side of ``skelly capture``: summariser -> IngestClient, control socket, stats.

Listener callbacks (on pynput's threads) and the focus watcher feed the
:class:`~skelly.capture.summariser.Summariser` under a lock; every ``tick_s`` the agent closes
due sample spans, takes the summariser's outbox and queues the events on the existing
:class:`modules.ingest.client.IngestClient` (which spools, resends after a reconnect and speaks
TLS).  Spools left by earlier runs of this host's capture sessions are sent too, so a restart
loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modules.ingest.client import IngestClient, Spool, SpoolLockedError
from skelly.capture.control import agent_alive
from skelly.capture.summariser import Summariser

log = logging.getLogger(__name__)

MAX_HELD = 100_000
PING_AFTER_S = 60.0


class AgentError(Exception):
    """The agent cannot start (e.g. another agent owns the control socket)."""


class CaptureAgent:
    def __init__(
        self,
        client: IngestClient,
        summariser: Summariser,
        lock: threading.Lock,
        *,
        control_path: Path,
        clock: Callable[[], float] = time.time,
        tick_s: float = 0.25,
        hold_until_welcome: bool = False,
        make_client: Callable[[str, Spool], IngestClient] | None = None,
        say: Callable[[str], None] = lambda text: None,
        on_resume: Callable[[], None] = lambda: None,
        check_inputs: Callable[[], str] = lambda: "",
    ) -> None:
        self.client = client
        self.summariser = summariser
        self.lock = lock
        self.control_path = control_path
        self.clock = clock
        self.tick_s = tick_s
        self.hold = hold_until_welcome
        self.make_client = make_client
        self.say = say
        self.on_resume = on_resume
        self.check_inputs = check_inputs
        """Returns why input can no longer be read ('' while it can): the agent then stops
        with that reason instead of running on without sending anything."""
        self.held: deque[dict[str, Any]] = deque(maxlen=MAX_HELD)
        self.recent: deque[float] = deque()
        self.last_ack_at: float | None = None
        self.acked_seen = 0
        self.last_change = ""
        self.resumes_seen = 0
        self.started = time.monotonic()
        self.last_ping = 0.0
        self.stopping = asyncio.Event()
        self._leftovers: list[asyncio.Task[None]] = []

    # --- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        self._prune(now)
        with self.lock:
            until = self.summariser.paused_until
            dropped = self.summariser.dropped
        c = self.client
        return {
            "pid": os.getpid(),
            "target": str(c.target),
            "session": c.session_id,
            "connected": c.connected.is_set(),
            "problem": c.last_problem,
            "events_per_min": float(len(self.recent)),
            "last_ack_age_s": None if self.last_ack_at is None else now - self.last_ack_at,
            "unacked": len(c.unacked),
            "paused_until": None if until is None else ("resume" if math.isinf(until) else until),
            "last_change": self.last_change,
            "dropped": dropped,
        }

    def _prune(self, now: float) -> None:
        while self.recent and now - self.recent[0] > 60.0:
            self.recent.popleft()

    # --- pause / resume -----------------------------------------------------------------------

    def pause(self, seconds: float | None) -> None:
        now = self.clock()
        until = math.inf if seconds is None else now + seconds
        with self.lock:
            self.summariser.pause(now, until)
        stamp = time.strftime("%H:%M:%S", time.localtime(now))
        self.last_change = f"paused at {stamp}"
        what = "until --resume" if seconds is None else f"for {seconds / 60:g} min"
        self.say(f"paused {what}: nothing is captured")

    def resume(self) -> None:
        with self.lock:
            was = self.summariser.paused_until is not None
            self.summariser.resume()
            self.resumes_seen = self.summariser.resumes
        self.on_resume()
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        self.last_change = f"resumed at {stamp}"
        if was:
            self.say("resumed: capturing")

    # --- control socket -----------------------------------------------------------------------

    async def _serve_control(self) -> asyncio.AbstractServer:
        path = self.control_path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if await asyncio.to_thread(agent_alive, path):
                raise AgentError(
                    f"another skelly capture is already running (control socket {path}); stop "
                    "it first, or ask it with skelly capture --status"
                )
            path.unlink()
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._control, path=str(path))
        finally:
            os.umask(old)
        return server

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            req = json.loads(line) if line.strip() else {}
            cmd = req.get("cmd") if isinstance(req, dict) else None
            reply: dict[str, Any]
            if cmd == "pause":
                seconds = req.get("seconds")
                self.pause(float(seconds) if seconds is not None else None)
                reply = self.status()
            elif cmd == "resume":
                self.resume()
                reply = self.status()
            elif cmd == "status":
                reply = self.status()
            else:
                reply = {"error": "unknown command; use status, pause or resume"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, TimeoutError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # --- main loop ----------------------------------------------------------------------------

    def _drain(self) -> None:
        now_wall = self.clock()
        with self.lock:
            events = self.summariser.tick(now_wall)
            resumes = self.summariser.resumes
        if resumes != self.resumes_seen:  # a pause ran out (or was ended by --resume)
            self.resumes_seen = resumes
            if not self.last_change.startswith("resumed"):
                self.last_change = "resumed at " + time.strftime(
                    "%H:%M:%S", time.localtime(now_wall)
                )
                self.say("pause over: capturing")
            self.on_resume()
        if events and log.isEnabledFor(logging.DEBUG):
            log.debug("queued %s", dict(Counter(e["kind"] for e in events)))
        c = self.client
        if self.hold:
            self.held.extend(events)
            if c.resume_seq is None:
                return
            self.hold = False
            events = list(self.held)
            self.held.clear()
            if events and c.last_seq < c.resume_seq:
                events[0] = {**events[0], "seq": c.resume_seq + 1}
        now = time.monotonic()
        for event in events:
            c.send_nowait(event)
            self.recent.append(now)
        self._prune(now)  # the last minute only: memory stays bounded however long it runs
        if events and c.spool is not None:
            c.spool.flush()
        if c.acked > self.acked_seen:
            self.acked_seen = c.acked
            self.last_ack_at = now
        last_sent = self.recent[-1] if self.recent else self.started
        if now - max(last_sent, self.last_ping) >= PING_AFTER_S and c.ping():
            self.last_ping = now  # nothing to send for a minute: keep the connection open

    async def run(self, spool_dir: Path | None = None, stop: asyncio.Event | None = None) -> None:
        """Run until ``stop`` (or, without one, SIGTERM/SIGINT or :attr:`stopping`) is set."""
        server = await self._serve_control()
        loop = asyncio.get_running_loop()
        handled = []
        if stop is not None:
            self.stopping = stop
        else:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stopping.set)
                    handled.append(sig)
        if spool_dir is not None:
            self._start_leftovers(spool_dir)
        try:
            while not self.stopping.is_set():
                self._drain()
                await asyncio.sleep(self.tick_s)  # cheaper than a wait_for task per tick
                if self.client.failure is not None:
                    raise self.client.failure
                dead = self.check_inputs()
                if dead:
                    raise AgentError(dead)
            with self.lock:
                self.summariser.pause(self.clock(), math.inf)  # closes the open span
            self._drain()
            if self.held:
                self.say(
                    f"{len(self.held)} events captured before the Pi was first reached are not "
                    "kept: with a reused --session their numbers depend on what the Pi holds"
                )
            with contextlib.suppress(TimeoutError):
                await self.client.flush(2.0)
        finally:
            for sig in handled:
                loop.remove_signal_handler(sig)
            server.close()
            with contextlib.suppress(OSError):
                self.control_path.unlink()
            for task in self._leftovers:
                task.cancel()
            for task in self._leftovers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # --- spools of earlier runs ---------------------------------------------------------------

    def _start_leftovers(self, spool_dir: Path) -> None:
        if self.make_client is None:
            return
        mine = self.client.spool.path if self.client.spool is not None else None
        prefix = f"{self.client.host_id}-capture-"
        for path in sorted(spool_dir.glob(f"{prefix}*.ndjson")):
            if path == mine:
                continue
            try:
                with open(path, "rb") as f:
                    header = json.loads(f.readline())
                session = str(header["session_id"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            spool = Spool(path, self.client.host_id, session)
            self._leftovers.append(
                asyncio.create_task(self._send_leftover(self.make_client(session, spool), path))
            )

    async def _send_leftover(self, client: IngestClient, path: Path) -> None:
        try:
            await client.start()
        except (SpoolLockedError, ValueError):
            return  # another agent sends it, or it is not ours
        try:
            n = len(client.unacked)
            if n:
                self.say(f"sending {n} events left from an earlier run ({path.name})")
            await client.flush()
        finally:
            await client.close()
