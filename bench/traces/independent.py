"""The independent trace family: host capture streams written apart from ``hw_sim.scenarios``.

Why it exists (issue 8, item 6): the classifier's rules were developed against
``hw_sim.scenarios`` (the *tuning* family). Scores on traces from the same hands flatter it, so
this second family was written from the issue, docs/INGEST.md §4 and SPEC.md alone, without
reading the classifier or the tuning generator, and is used only to *check*: tune on one family,
check on the other (bench/analysis.py scores both and prints them side by side).

How it differs from the tuning family, on purpose:

* **Typing is words, not bursts.** Each key of a word is a lognormal inter-key interval (IKI)
  around the persona's own median, the first key of a word slower, a space after it; words come
  in phrases (mean length per persona), phrases are separated by lognormal phrase pauses, every
  few phrases a longer sentence pause. A slip is typed on for 1-3 keys, noticed, then fixed with
  a *run* of backspaces (``correction: true``) faster than normal typing, and the rest retyped.
* **Personas** (:data:`PERSONAS`) span a median flow IKI from 90 to 250 ms, with their own IKI
  spread, slip rate, phrase length and phrase pause, and their own main apps (coders, writers).
* **Activities** beyond the six states: readers (a page key or a scroll every 5-10 s, little
  else), designers (mostly pointer strokes with clicks, shortcuts, a few labels), long thinkers
  (15-60 s pauses inside focused work), meetings (a call in front, notes now and then), coffee
  breaks (nothing at all).
* **Hosts** (:data:`HOSTS`): ``clean``; ``noisy`` (timestamps on a 15.6 ms clock tick, as
  Windows' default timer gives, plus ~5 ms of jitter, so ``ts`` may go backwards between
  neighbours; the focus event of a switch sometimes sent twice; the app in front re-announced
  every minute or so, as hosts that report every window raise do);
  ``skewed`` (the host clock up to 1.5 h off and drifting ±250 ppm; the truth is given on the
  host's clock, like the events).
* **Idle reports** follow INGEST.md §4.4: when input resumes after >= 30 s without any, an
  ``idle`` event with the length of the gap, stamped at the resuming input.

Ground truth (:class:`TruthSpan`): scripted segments ``[start, end)`` with a state and an
activity (``flow``, ``reading``, ``design``, ``thinking``, ``meeting``, ``coffee``, …). What the
states mean here (from the issue and SPEC §4): FLOW = steady work in one app with short visits
elsewhere; HYPERFOCUS = the same, denser and steadier, hardly leaving the app; NEUTRAL = ordinary
email-style work (short replies, reading, an app change every 1-4 min); TRANSITIONING = 1-2 app
switches a minute while the typing rhythm drifts; DISTRACTED = app hops every few seconds with
erratic input; IDLE = (almost) no input. Reading and design segments are scripted as FLOW
(focused work without much typing); the benchmark scores them as "focused" (FLOW or NEUTRAL).

Output: wire events exactly as ``skelly send`` / ``skelly replay`` take them (``kind``, ``seq``,
``ts`` and the kind's fields; never any content) and the truth list. Everything is deterministic
by (script, persona, host, seed).

Command line: ``python -m bench.traces.independent --script day --persona p170 --seed 1
[--host noisy] [--no-scroll] [--truth truth.json] [-o trace.ndjson]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

FLOW, HYPERFOCUS, NEUTRAL = "FLOW", "HYPERFOCUS", "NEUTRAL"
TRANSITIONING, DISTRACTED, IDLE = "TRANSITIONING", "DISTRACTED", "IDLE"
STATES = (FLOW, HYPERFOCUS, NEUTRAL, TRANSITIONING, DISTRACTED, IDLE)

HOST_IDLE_S = 30.0
"""The host's idle threshold: an ``idle`` event when input resumes after at least this long."""

BASE_START = 1_781_000_000.0
"""2026-06-09 10:13 UTC; each trace starts at a seeded offset from it."""

# ---------------------------------------------------------------------------------------------
# people, hosts, scripts


@dataclass(frozen=True)
class Persona:
    """A typist: how they type in flow, and what they work in."""

    name: str
    flow_iki_ms: float
    """Median inter-key interval inside words while in flow."""
    sigma: float
    """Lognormal shape of the IKI (0.35 ≈ CV 0.36)."""
    slip_rate: float
    """Probability per word of a slip fixed with a backspace run."""
    phrase_words: float
    """Mean words per phrase."""
    phrase_pause_s: float
    """Median pause between phrases in flow."""
    main: tuple[str, ...]
    """Main work apps (names in :data:`APPS`)."""


PERSONAS: tuple[Persona, ...] = (
    Persona("p090", 90.0, 0.45, 0.06, 9.0, 1.0, ("editor", "terminal")),
    Persona("p130", 130.0, 0.40, 0.045, 8.0, 1.2, ("writer", "wiki")),
    Persona("p170", 170.0, 0.37, 0.04, 7.0, 1.5, ("editor", "notebook")),
    Persona("p210", 210.0, 0.34, 0.035, 6.0, 1.8, ("spreadsheet", "writer")),
    Persona("p250", 250.0, 0.32, 0.03, 5.0, 2.2, ("editor", "wiki")),
)
PERSONA_BY_NAME = {p.name: p for p in PERSONAS}


@dataclass(frozen=True)
class HostNoise:
    name: str
    jitter_s: float = 0.0
    """Standard deviation of the timestamp jitter."""
    tick_s: float = 0.0
    """Resolution of the host's clock (0 = exact)."""
    dup_focus_p: float = 0.0
    """Probability that a switch's focus event is sent twice."""
    refocus_s: float = 0.0
    """Median interval at which the app in front is re-announced (0 = never)."""
    skew: bool = False
    """Host clock offset (up to ±1.5 h) and drift (up to ±250 ppm)."""


HOSTS: dict[str, HostNoise] = {
    "clean": HostNoise("clean"),
    "noisy": HostNoise("noisy", jitter_s=0.005, tick_s=1 / 64, dup_focus_p=0.35, refocus_s=70.0),
    "skewed": HostNoise("skewed", jitter_s=0.004, skew=True),
}


@dataclass(frozen=True)
class Seg:
    """One scripted segment: the true state, its length, and the activity that plays it."""

    state: str
    minutes: float
    activity: str = ""
    """"" = the state's ordinary activity (its name in lower case)."""

    @property
    def kind(self) -> str:
        return self.activity or self.state.lower()


@dataclass(frozen=True)
class TruthSpan:
    start: float
    end: float
    state: str
    activity: str


def _s(state: str, minutes: float, activity: str = "") -> Seg:
    return Seg(state, minutes, activity)


SCRIPTS: dict[str, tuple[Seg, ...]] = {
    # a mixed day: every state entered at least once, a meeting and a coffee break
    "day": (
        _s(NEUTRAL, 6),
        _s(FLOW, 25),
        _s(TRANSITIONING, 4),
        _s(DISTRACTED, 10),
        _s(NEUTRAL, 8, "meeting"),
        _s(IDLE, 9, "coffee"),
        _s(NEUTRAL, 5),
        _s(FLOW, 12),
        _s(HYPERFOCUS, 35),
        _s(TRANSITIONING, 3),
        _s(DISTRACTED, 6),
        _s(IDLE, 6),
        _s(NEUTRAL, 3),  # back at the desk: a replay has windows only up to the last event
    ),
    # many changes, for change latency
    "switchy": (
        _s(FLOW, 8),
        _s(DISTRACTED, 5),
        _s(FLOW, 7, "thinking"),
        _s(TRANSITIONING, 4),
        _s(NEUTRAL, 7),
        _s(IDLE, 5),
        _s(DISTRACTED, 4),
        _s(TRANSITIONING, 3),
        _s(FLOW, 10),
        _s(NEUTRAL, 6),
    ),
    # steady 40-minute traces (state changes per hour, unbroken time in state)
    "flow40": (_s(NEUTRAL, 3), _s(FLOW, 40)),
    "neutral40": (_s(FLOW, 3), _s(NEUTRAL, 40)),
    "distracted40": (_s(NEUTRAL, 3), _s(DISTRACTED, 40)),
    "idle40": (_s(NEUTRAL, 3), _s(IDLE, 40), _s(NEUTRAL, 3)),
    "hyperfocus100": (_s(FLOW, 4), _s(HYPERFOCUS, 100), _s(NEUTRAL, 3)),
    # reading, design work and long thinking pauses
    "reading": (_s(NEUTRAL, 3), _s(FLOW, 30, "reading"), _s(NEUTRAL, 3)),
    "design": (_s(NEUTRAL, 3), _s(FLOW, 30, "design"), _s(NEUTRAL, 3)),
    "thinker": (_s(NEUTRAL, 4), _s(FLOW, 30, "thinking"), _s(NEUTRAL, 4)),
}
STEADY = {"flow40": FLOW, "neutral40": NEUTRAL, "distracted40": DISTRACTED, "idle40": IDLE}
"""Scripts with one long steady segment (its state), for state changes per hour."""

# name -> category (docs/INGEST.md §4.3); ids are salted per trace, as a host would
APPS: dict[str, str] = {
    "editor": "code",
    "terminal": "terminal",
    "notebook": "code",
    "writer": "docs",
    "wiki": "docs",
    "pdf": "docs",
    "spreadsheet": "office",
    "slides": "office",
    "canvas": "design",
    "mail": "communication",
    "chat": "communication",
    "call": "communication",
    "browser": "browser",
    "video": "media",
    "game": "games",
    "misc": "other",
}
SIDE = ("terminal", "wiki", "browser", "pdf")
"""Short visits during focused work (run a command, look something up)."""
NEUTRAL_APPS = ("mail", "spreadsheet", "browser", "chat", "wiki", "slides")
LEISURE = ("browser", "chat", "video", "game", "misc", "mail")
WORKISH = ("editor", "writer", "spreadsheet", "wiki", "terminal", "mail", "browser", "chat")
READERS = ("pdf", "browser", "wiki", "writer")

# English-ish word lengths (code identifiers included), weights per length 1..12
_WORD_LEN = tuple(range(1, 13))
_WORD_W = (3.0, 16.0, 20.0, 16.0, 11.0, 9.0, 8.0, 6.0, 4.5, 2.5, 1.8, 1.2)

# ---------------------------------------------------------------------------------------------
# the generator


@dataclass(frozen=True)
class Trace:
    """One generated capture: wire events (host clock) and the truth on the same clock."""

    name: str
    persona: str
    host: str
    seed: int
    start: float
    end: float
    events: tuple[dict[str, Any], ...]
    truth: tuple[TruthSpan, ...]

    def lines(self) -> Iterator[str]:
        for e in self.events:
            yield json.dumps(e, separators=(",", ":"))

    def ndjson(self) -> str:
        """The events as NDJSON lines, as ``skelly send`` and ``skelly replay`` take them."""
        return "".join(line + "\n" for line in self.lines())

    def truth_list(self) -> list[tuple[float, float, str]]:
        return [(s.start, s.end, s.state) for s in self.truth]


def _ln(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


def _clip(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


class _Player:
    """Plays segments into (true time, event, is user input) tuples."""

    def __init__(self, rng: random.Random, persona: Persona, salt: str, scroll: bool) -> None:
        self.rng = rng
        self.p = persona
        self.salt = salt
        self.scroll_kind = scroll
        self.t = 0.0
        self.app: str | None = None
        self.out: list[tuple[float, dict[str, Any], bool]] = []
        self.iki = persona.flow_iki_ms / 1000.0

    # --- primitive inputs

    def app_id(self, name: str) -> str:
        return hashlib.sha256(f"{self.salt}:{name}".encode()).hexdigest()[:16]

    def focus(self, name: str) -> None:
        if name == self.app:
            return
        self.t += _ln(self.rng, 0.25, 0.5)  # the alt-tab / click that switched
        self.app = name
        ev = {"kind": "focus", "category": APPS[name], "app_id": self.app_id(name)}
        self.out.append((self.t, ev, True))

    def key(self, dt: float, correction: bool = False) -> None:
        self.t += max(dt, 0.025)
        self.out.append((self.t, {"kind": "key", "correction": correction}, True))

    def mouse(self, seconds: float, speed: float, clicks_per_s: float) -> None:
        """Pointer moving for about ``seconds``: one sample per ~1 s span, ``ts`` = span end."""
        left = max(seconds, 0.3)
        while left > 0:
            span = min(left, self.rng.uniform(0.9, 1.1))
            left -= span
            self.t += span
            clicks = 0
            lam = clicks_per_s * span
            while self.rng.random() < lam / (1.0 + lam) and clicks < 5:
                clicks += 1
            ev = {
                "kind": "mouse",
                "speed": round(_clip(_ln(self.rng, speed, 0.6), 1.0, 20000.0), 1),
                "clicks": clicks,
                "span_ms": max(round(span * 1000), 1),
            }
            self.out.append((self.t, ev, True))

    def scroll(self, ticks: int) -> None:
        """Wheel ticks. Without a ``scroll`` kind on the wire, a short slow pointer sample."""
        self.t += _ln(self.rng, 0.4, 0.4)
        if self.scroll_kind:
            ev: dict[str, Any] = {"kind": "scroll", "ticks": ticks, "span_ms": 400}
        else:
            ev = {"kind": "mouse", "speed": 15.0, "clicks": 0, "span_ms": 400}
        self.out.append((self.t, ev, True))

    # --- typing model

    def word(self, iki: float, sigma: float, slip: float) -> None:
        rng = self.rng
        n = rng.choices(_WORD_LEN, _WORD_W)[0]
        slip_at = rng.randrange(n) if rng.random() < slip else -1
        for i in range(n):
            self.key(_ln(rng, iki * (1.35 if i == 0 else 1.0), sigma))
            if i == slip_at:
                wrong = rng.randint(1, 3)
                for _ in range(wrong):
                    self.key(_ln(rng, iki, sigma))
                self.t += _ln(rng, 0.35, 0.4)  # noticing
                run = wrong + 1 + (rng.randint(0, 2) if rng.random() < 0.3 else 0)
                for _ in range(run):
                    self.key(_ln(rng, iki * 0.7, 0.25), correction=True)
                # the run went past the slip: retype what it took with it
                for _ in range(run - wrong):
                    self.key(_ln(rng, iki * 1.2, sigma))
        self.key(_ln(rng, iki * 1.15, sigma))  # space

    def phrase(self, iki: float, sigma: float, slip: float, words: float) -> None:
        n = 1 + int(self.rng.expovariate(1.0 / max(words - 1.0, 0.2)))
        for _ in range(min(n, 40)):
            self.word(iki, sigma, slip)

    # --- activities

    def play(self, seg: Seg, end: float) -> None:
        k = seg.kind
        if k in ("flow", "thinking", "hyperfocus"):
            self.focused(end, deep=k == "hyperfocus", thinking=k == "thinking")
        elif k == "neutral":
            self.neutral(end)
        elif k == "transitioning":
            self.transitioning(end)
        elif k == "distracted":
            self.distracted(end)
        elif k in ("idle", "coffee"):
            self.idle(end, nudges=k == "idle")
        elif k == "reading":
            self.reading(end)
        elif k == "design":
            self.design(end)
        elif k == "meeting":
            self.meeting(end)
        else:
            raise ValueError(f"unknown activity {k!r}")

    def focused(self, end: float, *, deep: bool, thinking: bool) -> None:
        rng, p = self.rng, self.p
        iki = self.iki * (0.93 if deep else 1.0)
        sigma = p.sigma * (0.85 if deep else 1.0)
        slip = p.slip_rate * (0.7 if deep else 1.0)
        words = p.phrase_words * (1.3 if deep else 1.0)
        pause = p.phrase_pause_s * (0.6 if deep else 1.0)
        main = rng.choice(p.main)
        self.focus(main)
        visit_every = 720.0 if deep else 300.0
        next_visit = self.t + _ln(rng, visit_every, 0.5)
        next_think = self.t + _ln(rng, 120.0, 0.5) if thinking else math.inf
        sentence = rng.randint(2, 4)
        n = 0
        while self.t < end:
            if self.t >= next_visit:
                self.visit(iki, sigma, short=deep)
                self.focus(main)
                next_visit = self.t + _ln(rng, visit_every, 0.5)
            if self.t >= next_think:
                self.t += rng.uniform(15.0, 60.0)
                next_think = self.t + _ln(rng, 120.0, 0.5)
            self.phrase(iki, sigma, slip, words)
            n += 1
            self.t += _ln(rng, pause, 0.55)
            if n % sentence == 0:
                self.t += _ln(rng, 3.0 * (0.6 if deep else 1.0), 0.5)
                sentence = rng.randint(2, 4)
            if rng.random() < (0.03 if deep else 0.08):
                self.mouse(rng.uniform(1.0, 4.0), 250.0, 0.4)

    def visit(self, iki: float, sigma: float, *, short: bool) -> None:
        rng = self.rng
        side = rng.choice([a for a in SIDE if a != self.app])
        self.focus(side)
        stay = _clip(_ln(rng, 20.0 if short else 35.0, 0.4), 8.0, 90.0)
        until = self.t + stay
        while self.t < until:
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 3)):
                    self.word(iki, sigma, 0.02)
            else:
                self.mouse(rng.uniform(1.0, 3.0), 300.0, 0.3)
            self.t += _ln(rng, 2.5, 0.5)

    def neutral(self, end: float) -> None:
        rng, p = self.rng, self.p
        while self.t < end:
            self.focus(rng.choice([a for a in NEUTRAL_APPS if a != self.app]))
            until = min(self.t + _clip(_ln(rng, 110.0, 0.45), 40.0, 300.0), end)
            while self.t < until:
                r = rng.random()
                if r < 0.45:  # a short reply
                    for _ in range(rng.randint(1, 3)):
                        self.phrase(
                            self.iki * 1.25, p.sigma * 1.25, p.slip_rate * 1.6, p.phrase_words * 0.6
                        )
                        self.t += _ln(rng, p.phrase_pause_s * 2.5, 0.6)
                elif r < 0.8:  # reading with the pointer
                    self.mouse(rng.uniform(2.0, 8.0), 300.0, 0.15)
                    self.t += _ln(rng, 4.0, 0.5)
                else:  # reading without input
                    self.t += _ln(rng, 9.0, 0.5)

    def transitioning(self, end: float) -> None:
        rng, p = self.rng, self.p
        rhythm = rng.uniform(1.0, 1.4)
        while self.t < end:
            self.focus(rng.choice([a for a in WORKISH if a != self.app]))
            until = min(self.t + rng.uniform(30.0, 60.0), end)
            rhythm = _clip(rhythm * math.exp(rng.gauss(0.0, 0.35)), 0.85, 2.2)
            while self.t < until:
                r = rng.random()
                if r < 0.55:
                    for _ in range(rng.randint(1, 4)):
                        self.word(self.iki * rhythm, p.sigma * 1.3, p.slip_rate * 1.5)
                    self.t += _ln(rng, 3.0 * rhythm, 0.6)
                elif r < 0.85:
                    self.mouse(rng.uniform(1.0, 5.0), 400.0, 0.3)
                    self.t += _ln(rng, 2.0, 0.5)
                else:
                    self.t += rng.uniform(3.0, 10.0)

    def distracted(self, end: float) -> None:
        rng, p = self.rng, self.p
        while self.t < end:
            pool = WORKISH if rng.random() < 0.15 else LEISURE
            self.focus(rng.choice([a for a in pool if a != self.app]))
            until = min(self.t + _clip(_ln(rng, 7.0, 0.6), 2.0, 30.0), end)
            while self.t < until:
                r = rng.random()
                if r < 0.35:
                    iki = self.iki * rng.uniform(0.7, 2.5)
                    for _ in range(rng.randint(2, 12)):
                        self.key(_ln(rng, iki, p.sigma * 1.6), rng.random() < p.slip_rate * 2)
                elif r < 0.8:
                    self.mouse(rng.uniform(1.0, 4.0), 600.0, 0.6)
                else:
                    self.t += rng.uniform(0.5, 4.0)

    def idle(self, end: float, *, nudges: bool) -> None:
        while True:
            gap = _ln(self.rng, 300.0, 0.6) if nudges else math.inf
            if self.t + gap >= end:
                self.t = end
                return
            self.t += gap
            self.mouse(self.rng.choice([0.5, 1.0, 2.0]), 80.0, 0.0)  # the desk was bumped

    def reading(self, end: float) -> None:
        rng = self.rng
        self.focus(rng.choice(READERS))
        wheel = rng.random() < 0.5
        while self.t < end:
            self.t += rng.uniform(5.0, 10.0)
            if rng.random() < 0.02:
                self.t += rng.uniform(15.0, 35.0)  # a figure, a hard paragraph
            if wheel:
                self.scroll(rng.randint(1, 6))
            else:
                for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
                    self.key(_ln(rng, 0.2, 0.3))  # Page Down / arrow
            if rng.random() < 0.05:
                self.mouse(rng.uniform(1.0, 3.0), 200.0, 0.5)  # select, follow a link

    def design(self, end: float) -> None:
        rng, p = self.rng, self.p
        self.focus("canvas")
        next_ref = self.t + _ln(rng, 360.0, 0.5)
        while self.t < end:
            if self.t >= next_ref:
                self.focus("browser")
                self.mouse(rng.uniform(5.0, 15.0), 400.0, 0.3)
                self.t += rng.uniform(5.0, 20.0)
                self.focus("canvas")
                next_ref = self.t + _ln(rng, 360.0, 0.5)
            r = rng.random()
            if r < 0.6:  # a stroke / drag
                self.mouse(rng.uniform(3.0, 20.0), 350.0, 0.5)
            elif r < 0.8:  # shortcuts
                for _ in range(rng.randint(1, 4)):
                    self.key(rng.uniform(0.12, 0.25))
            elif r < 0.88:  # a label
                for _ in range(rng.randint(1, 3)):
                    self.word(self.iki, p.sigma, p.slip_rate)
            self.t += _ln(rng, 2.5, 0.7)

    def meeting(self, end: float) -> None:
        rng, p = self.rng, self.p
        self.focus("call")
        while self.t < end:
            self.t += rng.uniform(20.0, 80.0)
            if self.t >= end:
                break
            if rng.random() < 0.5:
                self.mouse(rng.uniform(1.0, 3.0), 200.0, 0.2)
            else:
                self.focus("writer")
                for _ in range(rng.randint(1, 2)):
                    self.phrase(self.iki * 1.3, p.sigma * 1.2, p.slip_rate, p.phrase_words * 0.7)
                    self.t += _ln(rng, 2.0, 0.5)
                self.focus("call")


def _idle_reports(
    evs: list[tuple[float, dict[str, Any], bool]],
) -> list[tuple[float, dict[str, Any], bool]]:
    """Insert the host's idle events (INGEST.md §4.4) before input that ends a >= 30 s gap."""
    out: list[tuple[float, dict[str, Any], bool]] = []
    last: float | None = None
    for t, ev, is_input in evs:
        if is_input:
            began = t - ev["span_ms"] / 1000.0 if "span_ms" in ev else t
            if last is not None and began - last >= HOST_IDLE_S:
                out.append((t, {"kind": "idle", "duration_s": round(began - last, 3)}, False))
            last = t
        out.append((t, ev, is_input))
    return out


def _host_focus_noise(
    evs: list[tuple[float, dict[str, Any], bool]], host: HostNoise, rng: random.Random, end: float
) -> list[tuple[float, dict[str, Any], bool]]:
    """Duplicate focus events (a switch sent twice, the app in front re-announced)."""
    extra: list[tuple[float, dict[str, Any], bool]] = []
    focus = [(t, ev) for t, ev, _ in evs if ev["kind"] == "focus"]
    for i, (t, ev) in enumerate(focus):
        if rng.random() < host.dup_focus_p:
            extra.append((t + rng.uniform(0.001, 0.4), dict(ev), False))
        if host.refocus_s > 0:
            until = focus[i + 1][0] if i + 1 < len(focus) else end
            r = t + _ln(rng, host.refocus_s, 0.5)
            while r < until:
                extra.append((r, dict(ev), False))
                r += _ln(rng, host.refocus_s, 0.5)
    return sorted(evs + extra, key=lambda x: x[0])


def generate(
    script: str | Sequence[Seg],
    persona: Persona | str = "p170",
    seed: int = 0,
    host: HostNoise | str = "clean",
    *,
    scroll: bool = True,
    name: str | None = None,
) -> Trace:
    """Play a script (a name in :data:`SCRIPTS` or segments) for one persona on one host.

    ``scroll``: readers who use the wheel send ``scroll`` events (docs/INGEST.md §4.7); with
    ``False`` (for a Pi older than that kind) a wheel tick is sent as a short slow pointer sample.
    """
    if isinstance(script, str):
        if script not in SCRIPTS:
            raise ValueError(
                f"unknown script {script!r}; choose one of {', '.join(sorted(SCRIPTS))}"
            )
        name = name or script
        segments: Sequence[Seg] = SCRIPTS[script]
    else:
        segments = script
        name = name or "custom"
    if not segments:
        raise ValueError("a script needs at least one segment")
    p = PERSONA_BY_NAME[persona] if isinstance(persona, str) else persona
    h = HOSTS[host] if isinstance(host, str) else host
    key = f"{name}|{p.name}|{h.name}|{seed}"
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    rng = random.Random(digest)
    noise = random.Random(digest ^ 0x5EED)

    player = _Player(rng, p, salt=f"{p.name}-{seed}-{h.name}", scroll=scroll)
    spans: list[tuple[float, float, Seg]] = []
    for seg in segments:
        if seg.minutes <= 0:
            raise ValueError(f"segment {seg} must last more than 0 minutes")
        begin = player.t
        end = begin + seg.minutes * 60.0
        n = len(player.out)
        player.play(seg, end)
        # what would run past the scripted end is cut (at most one phrase)
        player.out[n:] = [x for x in player.out[n:] if x[0] < end]
        player.t = end
        spans.append((begin, end, seg))
    total = player.t

    evs = sorted(player.out, key=lambda x: x[0])
    evs = _idle_reports(evs)
    evs = _host_focus_noise(evs, h, noise, total)

    start = BASE_START + noise.uniform(0.0, 30 * 86400.0)
    start = math.floor(start) + noise.uniform(0.0, 10.0)  # a random phase of the 10 s grid
    offset = noise.uniform(-5400.0, 5400.0) if h.skew else 0.0
    drift = noise.uniform(-250e-6, 250e-6) if h.skew else 0.0

    def clock(t: float) -> float:
        return start + offset + t * (1.0 + drift)

    events: list[dict[str, Any]] = []
    for seq, (t, ev, _) in enumerate(evs, start=1):
        ts = clock(t) + (noise.gauss(0.0, h.jitter_s) if h.jitter_s else 0.0)
        if h.tick_s:
            ts = math.floor(ts / h.tick_s) * h.tick_s
        events.append(
            {"kind": ev["kind"], "seq": seq, "ts": round(ts, 3)}
            | {k: v for k, v in ev.items() if k != "kind"}
        )
    truth = tuple(
        TruthSpan(round(clock(a), 3), round(clock(b), 3), seg.state, seg.kind)
        for a, b, seg in spans
    )
    return Trace(
        name=name,
        persona=p.name,
        host=h.name,
        seed=seed,
        start=truth[0].start,
        end=truth[-1].end,
        events=tuple(events),
        truth=truth,
    )


def host_for(persona: Persona, seed: int) -> str:
    """The host a (persona, seed) runs on in :func:`family`: every persona meets every host."""
    names = tuple(HOSTS)
    return names[(PERSONAS.index(persona) + seed) % len(names)]


def family(
    seeds: Sequence[int],
    personas: Sequence[Persona] = PERSONAS,
    scripts: Sequence[str] = tuple(SCRIPTS),
    *,
    scroll: bool = True,
) -> Iterator[Trace]:
    """Every script for every persona and seed, hosts assigned by :func:`host_for`."""
    for seed in seeds:
        for p in personas:
            for s in scripts:
                yield generate(s, p, seed, host_for(p, seed), scroll=scroll)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write one independent trace as NDJSON.")
    ap.add_argument("--script", default="day", choices=sorted(SCRIPTS))
    ap.add_argument("--persona", default="p170", choices=sorted(PERSONA_BY_NAME))
    ap.add_argument("--host", default="clean", choices=sorted(HOSTS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-scroll", action="store_true", help="wheel ticks as pointer samples (no scroll kind)"
    )
    ap.add_argument("--truth", help="write the truth list [[start, end, state, activity], ...]")
    ap.add_argument("-o", "--output", help="NDJSON file (default: stdout)")
    args = ap.parse_args(argv)
    tr = generate(args.script, args.persona, args.seed, args.host, scroll=not args.no_scroll)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(tr.ndjson())
    else:
        sys.stdout.write(tr.ndjson())
    if args.truth:
        with open(args.truth, "w", encoding="utf-8") as f:
            json.dump([[s.start, s.end, s.state, s.activity] for s in tr.truth], f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
