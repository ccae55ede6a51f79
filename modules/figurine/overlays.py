"""Overlays: animations and messages shown over the base look, in a priority queue.

Pure: every method takes ``now`` (monotonic seconds).  The rules (docs/FIGURINE.md §3), applied by
:meth:`OverlayQueue.update`:

1. expiry — a showing overlay ends ``duration_s`` after it started showing; one that waited
   ``stale_after_s`` without ever showing is dropped as stale;
2. coalescing — :meth:`push` of the same ``(name, intervention_id)`` replaces the entry (its
   duration restarts if it was showing);
3. priority — the highest priority shows, ties by arrival; a higher priority arrival interrupts
   the showing one, whose clock keeps running;
4. bound — at most ``max_len`` entries (lowest priority, oldest dropped).

``update`` returns what happened (started, ended, stale, dropped) so the caller can report
responses; it never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

PRIORITIES = {"break": 3, "nudge": 2, "recovery": 2, "snooze": 2, "celebrate": 1, "pet": 1}
FACES = {
    "break": "happy",
    "nudge": "neutral",
    "recovery": "happy",
    "snooze": "sleepy",
    "celebrate": "celebrate",
    "pet": "happy",
}
ANIMATIONS = {
    "break": "yawn",
    "nudge": "wave",
    "recovery": "nod",
    "snooze": "yawn",
    "celebrate": "celebrate",
    "pet": "wiggle",
}
OWN_DURATIONS = {"pet": 2.5, "snooze": 3.0}
"""Durations of the figurine's own feedback overlays (seconds)."""


@dataclass(slots=True)
class Overlay:
    name: str
    duration_s: float
    arrived: float
    text: str = ""
    glow: tuple[int, int, int] | None = None
    melt: int | None = None
    sound: str = ""
    intervention_id: str = ""
    started: float | None = None
    order: int = 0
    cue: int = 0
    """Serial number given when it first starts showing (one-shots play once per start)."""
    priority: int = field(init=False)

    def __post_init__(self) -> None:
        self.priority = PRIORITIES.get(self.name, 1)

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.intervention_id)

    @property
    def face(self) -> str:
        return FACES.get(self.name, "neutral")

    @property
    def animation(self) -> str:
        return ANIMATIONS.get(self.name, "")

    def ends(self) -> float | None:
        return None if self.started is None else self.started + self.duration_s


@dataclass(frozen=True, slots=True)
class Change:
    """What :meth:`OverlayQueue.update` / :meth:`OverlayQueue.push` did to one overlay:
    ``started`` (first time it shows), ``ended`` (its time ran out), ``stale`` (never showed
    within ``stale_after_s``), ``dropped`` (queue bound), ``removed`` (by :meth:`remove`)."""

    what: str
    overlay: Overlay


class OverlayQueue:
    def __init__(self, stale_after_s: float = 120.0, max_len: int = 8) -> None:
        self.stale_after_s = stale_after_s
        self.max_len = max_len
        self._entries: list[Overlay] = []
        self._order = 0
        self._showing: Overlay | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def showing(self) -> Overlay | None:
        """The overlay shown since the last :meth:`update` (None: the base look shows)."""
        return self._showing

    def entries(self) -> list[Overlay]:
        return list(self._entries)

    def push(self, overlay: Overlay, now: float) -> list[Change]:
        """Queue ``overlay`` (coalescing a repeat) and recompute what shows."""
        for i, old in enumerate(self._entries):
            if old.key == overlay.key:
                started = None if old.started is None else now
                self._entries[i] = replace(overlay, started=started, order=old.order)
                if self._showing is old:
                    self._showing = self._entries[i]
                return self.update(now)
        self._order += 1
        overlay.order = self._order
        self._entries.append(overlay)
        changes: list[Change] = []
        while len(self._entries) > self.max_len:
            victim = min(self._entries, key=lambda o: (o.priority, o.order))
            self._entries.remove(victim)
            changes.append(Change("dropped", victim))
        return changes + self.update(now)

    def remove(self, overlay: Overlay, now: float) -> list[Change]:
        if overlay in self._entries:
            self._entries.remove(overlay)
        if self._showing is overlay:
            self._showing = None
        return [Change("removed", overlay), *self.update(now)]

    def update(self, now: float) -> list[Change]:
        """Apply expiry, then choose what shows; a newly shown overlay is ``started``."""
        changes: list[Change] = []
        for o in list(self._entries):
            ends = o.ends()
            if ends is not None and now >= ends:
                self._entries.remove(o)
                changes.append(Change("ended", o))
            elif o.started is None and now >= o.arrived + self.stale_after_s:
                self._entries.remove(o)
                changes.append(Change("stale", o))
        if not self._entries:
            self._showing = None
            return changes
        best = max(self._entries, key=lambda o: (o.priority, -o.order))
        if best.started is None:
            best.started = now
            changes.append(Change("started", best))
        self._showing = best
        return changes

    def next_deadline(self) -> float | None:
        times: list[float] = []
        for o in self._entries:
            ends = o.ends()
            times.append(ends if ends is not None else o.arrived + self.stale_after_s)
        return min(times) if times else None
