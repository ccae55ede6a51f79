"""Hypothesis: whatever mix of overlapping, repeated and out-of-order batches arrives — including
resends after a crash — the store holds each (host, session, seq) once, the counts returned add
up to the distinct events, and the resume point is the highest seq, also after a reopen."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.messages import RawEvent
from modules.storage import Storage, StorageConfig

SESSIONS = [("h1", "a"), ("h1", "b"), ("h2", "a")]

batch = st.lists(
    st.tuples(st.sampled_from(range(len(SESSIONS))), st.integers(min_value=1, max_value=60)),
    min_size=0,
    max_size=25,
)


def event(session: int, seq: int) -> RawEvent:
    host, sid = SESSIONS[session]
    return RawEvent(host, sid, seq, "key", 1000.0 + seq, (("correction", seq % 2 == 0),))


async def scenario(path: Path, batches: list[list[tuple[int, int]]], split: int) -> None:
    expected: set[tuple[int, int]] = set()
    total_new = 0
    cfg = StorageConfig(commit_max_wait_s=0.0)
    async with Storage(cfg, path) as store:
        # the first part sequentially, the rest concurrently (one group commit)
        for b in batches[:split]:
            total_new += await store.commit([event(s, q) for s, q in b])
            expected.update(b)
        counts = await asyncio.gather(
            *(store.commit([event(s, q) for s, q in b]) for b in batches[split:])
        )
        total_new += sum(counts)
        for b in batches[split:]:
            expected.update(b)
        assert total_new == len(expected)
        stored = await store._require_writer().call(
            lambda db: db.conn.execute(
                "SELECT s.host_id, s.session_id, e.seq FROM events e "
                "JOIN sessions s ON s.id = e.session"
            ).fetchall()
        )
        assert len(stored) == len(set(stored))
        assert set(stored) == {(*SESSIONS[s], q) for s, q in expected}
    async with Storage(cfg, path) as again:
        for i, (host, sid) in enumerate(SESSIONS):
            top = max((q for s, q in expected if s == i), default=0)
            assert await again.resume_point(host, sid) == top
        # a full resend after the reopen adds nothing
        everything = [event(s, q) for s, q in sorted(expected)]
        assert await again.commit(everything) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(batch, min_size=1, max_size=8), split=st.integers(0, 8))
def test_each_event_is_stored_once_whatever_arrives(
    batches: list[list[tuple[int, int]]], split: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp), batches, split))
