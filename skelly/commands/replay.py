"""``skelly replay``: run a recorded capture through the service's windowing and analysis.

Input is NDJSON event lines exactly as ``skelly send`` takes them (docs/INGEST.md §4): a hello
line is optional (it names the host and session of the lines after it), events without ``seq``
are numbered by position, ``ping`` lines and blank lines are skipped.  Every event goes through
the ingest validator; a duplicate (host, session, seq) is ignored as Storage ignores it.

Event time is the events' own timestamps: the newest ``ts`` read so far is "now".  Storage's own
windowing code (:meth:`modules.storage.Storage.feed_windows` / ``emit_due``) cuts the windows,
stepped one ``emit_every_s`` at a time so an input gap yields the empty windows the service
would publish, and :meth:`modules.analysis.AnalysisEngine.process` analyses them.  Output: one
JSON object per analysed window on stdout, in window order (docs/ANALYSIS.md §8).

Nothing is stored unless ``--state-dir`` is given: then the events are committed to that
directory's database and the analysis reads and saves its per-person typing baseline there
(``analysis.baseline``), as the service does.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from bus.messages import EventBatch, RawEvent
from modules.analysis import AnalysisEngine, WindowResult
from modules.ingest.validate import IngestError, loads_object, parse_hello, validate_event
from modules.storage import Storage, StorageError
from skelly.config import Config, load
from skelly.errors import SkellyError, require_dir

DEFAULT_HOST = "replay"
DEFAULT_SESSION = "replay-1"
COMMIT_EVERY = 2000
"""Events per database commit with ``--state-dir``."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "replay",
        help="run a recorded capture file through the windowing and analysis, print the states",
        description=(
            "Reads NDJSON capture events (as `skelly send` takes them, docs/INGEST.md §4; a hello "
            "line is optional) and runs them through the service's own windowing and "
            "AnalysisEngine on the events' timestamps, as fast as the CPU allows. Prints one "
            'JSON object per analysed window: {"window_end", "state", "confidence", '
            '"raw_state", "time_in_state_s", "host_id", "window_start"}. Nothing is stored '
            'unless --state-dir is given. With --explain every line also has an "explain" object.'
        ),
    )
    p.add_argument("input", nargs="?", default="-", help="NDJSON file, or - for stdin (default)")
    p.add_argument("--config", help="TOML config file ([analysis] and [storage] windows)")
    p.add_argument(
        "--state-dir",
        default="",
        help="store the events in this directory's database and start from (and update) the "
        "typing baseline kept there (default: store nothing, start from the population "
        "baseline)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="add to every line why the window got its state: the six scores, the named rule "
        "terms, the person's baseline, the tracker's evidence and the features of the three "
        "spans (docs/ANALYSIS.md §8)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    state_dir: Path | None = None
    if args.state_dir:
        state_dir = Path(args.state_dir).expanduser()
        require_dir(
            state_dir,
            write=True,
            create=True,
            what="the state directory",
            hint="give --state-dir a directory you can write, or leave it out to store nothing",
        )
    if args.input == "-":
        return asyncio.run(_replay(config, sys.stdin.buffer, state_dir, args.explain))
    path = Path(args.input).expanduser()
    try:
        stream = path.open("rb")
    except OSError as exc:
        raise SkellyError(
            f"cannot read {path}: {exc.strerror or exc}; give an NDJSON capture file or - for stdin"
        ) from None
    with stream:
        return asyncio.run(_replay(config, stream, state_dir, args.explain))


class _Input:
    """Turns input lines into validated RawEvents (hello, numbering, duplicates)."""

    def __init__(self) -> None:
        self.host_id = DEFAULT_HOST
        self.session_id = DEFAULT_SESSION
        self.prev_seq = 0
        self.line_no = 0
        self.seen: dict[tuple[str, str], set[int]] = {}

    def events(self, stream: IO[bytes]) -> Iterator[RawEvent]:
        for line in stream:
            self.line_no += 1
            line = line.strip()
            if not line:
                continue
            try:
                ev = self._event(loads_object(line, what=f"input line {self.line_no}"))
            except IngestError as exc:
                raise SkellyError(
                    f"input line {self.line_no}: {exc.message}; fix or remove the line "
                    "(events as `skelly send` takes them, docs/INGEST.md §4)"
                ) from None
            if ev is not None:
                yield ev

    def _event(self, obj: dict[str, Any]) -> RawEvent | None:
        kind = obj.get("kind")
        if kind == "ping":
            return None
        if kind == "hello":
            obj = {"token": "-", **obj} if "token" not in obj else obj
            hello = parse_hello(orjson.dumps(obj))
            self.host_id, self.session_id, self.prev_seq = hello.host_id, hello.session_id, 0
            return None
        if "seq" not in obj:
            obj = {**obj, "seq": self.prev_seq + 1}
        ev = validate_event(obj, self.host_id, self.session_id)
        self.prev_seq = ev.seq
        seqs = self.seen.setdefault((self.host_id, self.session_id), set())
        if ev.seq in seqs:
            return None
        seqs.add(ev.seq)
        return ev


def _line(result: WindowResult, host_id: str, explain: bool = False) -> bytes:
    step = result.step
    line: dict[str, Any] = {
        "window_end": result.window_end,
        "state": step.state.value,
        "confidence": round(step.confidence, 4),
        "raw_state": result.full.state.value,
        "time_in_state_s": round(step.time_in_state_s, 3),
        "host_id": host_id,
        "window_start": result.window_start,
    }
    if explain:
        line["explain"] = _explain(result)
    return orjson.dumps(line)


def _explain(result: WindowResult) -> dict[str, Any]:
    """Why the window got its state (docs/ANALYSIS.md §8)."""
    full, ctx, step = result.full, result.context, result.step
    rhythm = ctx.flow_rhythm
    return {
        "scores": {s.value: round(v, 4) for s, v in full.scores},
        "margin": round(full.decisiveness, 4),
        "terms": {name: round(v, 4) for name, v in full.terms},
        "person": {
            "scale": round(ctx.scale, 4),
            "flow_duty": round(ctx.flow_duty, 4),
            "flow_rhythm": None if rhythm is None else [round(rhythm[0], 2), round(rhythm[1], 4)],
        },
        "context": {
            "silence_s": round(ctx.silence_s, 3),
            "hyperfocus_s": None if ctx.hyperfocus_s is None else round(ctx.hyperfocus_s, 3),
            "in_session": ctx.in_session,
            "watched_s": round(ctx.watched_s, 3) if math.isfinite(ctx.watched_s) else None,
            "returns": ctx.returns,
        },
        "pending": {
            s.value: {"evidence": round(e, 4), "votes": votes, "need": need}
            for s, e, votes, need in step.pending
        },
        "features": {
            "window": dict(result.features.as_pairs()),
            "medium": dict(ctx.medium.as_pairs()),
            "long": dict(ctx.long.as_pairs()),
        },
    }


async def _replay(
    config: Config, stream: IO[bytes], state_dir: Path | None, explain: bool = False
) -> int:
    now = -math.inf
    storage = Storage(config.storage, state_dir, clock=lambda: now)
    engine = AnalysisEngine(config.analysis)
    out = sys.stdout.buffer
    every = config.storage.emit_every_s
    grace = config.storage.window_grace_s
    pending: list[RawEvent] = []
    if state_dir is not None:
        try:
            await storage.open()
        except StorageError as exc:
            raise SkellyError(f"cannot use the database in {state_dir}: {exc}") from None
        engine.store = storage
        await engine.load_baselines()

    def publish(batches: list[EventBatch]) -> None:
        for batch in batches:
            result = engine.process(batch)
            if result is not None:
                out.write(_line(result, batch.host_id, explain) + b"\n")

    async def flush() -> None:
        if state_dir is not None and pending:
            await storage.commit(pending)
            await engine.save_baselines()
        pending.clear()

    try:
        source = _Input()
        k: int | None = None  # the next window: it ends at k * every, is due at + grace
        for ev in source.events(stream):
            if k is None:
                now = ev.ts
                # the first window is the first one that holds the first event
                k = math.floor(now / every + 1e-9) + 1
            # every window whose end + grace has passed before this event, one step at a time
            # (the service's clock ticks through input gaps and publishes empty windows too)
            while k * every + grace <= ev.ts:
                now = max(now, k * every + grace)
                publish(storage.emit_due(k * every + grace))
                k += 1
            now = max(now, ev.ts)
            storage.feed_windows([ev])
            pending.append(ev)
            if len(pending) >= COMMIT_EVERY:
                await flush()
        if k is not None:
            # the windows up to the first one that holds the newest event
            last_k = math.floor(now / every + 1e-9) + 1
            while k <= last_k:
                now = max(now, k * every + grace)
                publish(storage.emit_due(k * every + grace))
                k += 1
        await flush()
        out.flush()
    finally:
        if state_dir is not None:
            await storage.close()
    return 0
