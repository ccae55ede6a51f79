"""Blind synthetic host-activity traces with scripted ground truth.

Written from docs/INGEST.md §4 (the wire format), modules/ingest/ (the validator), SPEC.md §4 (the
states) and the issue's description of each state, *without* reading the classifier or any other
trace family, so a classifier can be checked on data it was never tuned on.  Every trace is a
deterministic function of (script, persona, seed) and the host kind (``host`` only changes the
clock and the sampler, never the behaviour).

Models
------
*Behaviour* is a semi-Markov process per scripted state: each state has its own app-dwell law
(how long one application keeps the focus) and, inside a dwell, its own mix of operators with
their own duration laws.  The operators are those of a keystroke-level model (Card, Moran &
Newell): K (a keystroke), P (point, Fitts' law), B (button press), H (homing between keyboard and
pointer, ~0.35 s), M (mental preparation: the pauses), plus W (wheel flicks) and D (drags).

* Keystrokes.  A burst ("phrase") is a run of words (word length ~ 1 + geometric, mean given by the
  persona) and spaces.  Each inter-key interval is ``base * f * exp(sigma * Z)``: ``base`` is the
  persona's calibrated within-word median, ``f`` a digraph factor (alternating hands fast, same
  hand medium, row jump / same finger slow, doubled letters fast; word-initial letters after a
  space are slower, the space itself a little faster), ``Z`` standard normal.  Slips happen with
  the persona's per-key error rate; the typist notices them after 0-3 more keys (geometric),
  stops ~0.4 s (M), presses Backspace once per wrong key (``correction: true``, fast key-repeat
  rhythm) and retypes after a slightly longer interval.  Modifier keys (Shift, Alt+Tab) are
  ordinary keys.  ``base`` was calibrated once (``Persona.cal``) so that in FLOW the median
  interval between consecutive plain keys less than 1 s apart is the persona's ``iki_ms``.
* Pauses (M operators) are lognormal: phrase pauses (persona median ~1-2 s), sentence pauses
  (~3 s every few phrases), short thinking pauses (4-14 s, rare), long thinking pauses in the
  "thinking" activity (15-60 s every 40-150 s of work).
* Pointing: movement time ``MT = a + b * log2(D / W + 1)`` (Fitts / Shannon formulation) with
  the persona's ``a, b``, lognormal distance D and target width W; the path is 5-25 % longer than
  D.  A click follows after a short verification delay; some clicks are double clicks.  Drags
  (design strokes) press a button and move for 0.3-4 s at a lognormal speed.
* App switching: Alt+Tab (two or more key presses, the focus change when Alt is released) or a
  Fitts movement to a window / the task bar and a click.  Dwells: FLOW stays in the work app and
  makes a trip (terminal, docs, browser, chat; lognormal length) after a gamma-distributed
  interval of a few minutes; HYPERFOCUS the same with five times rarer trips; NEUTRAL dwells
  lognormal (median ~2 min); TRANSITIONING 25-55 s per app (1-2 switches a minute) with a new
  rhythm (speed factor) at each; DISTRACTED lognormal ~4.5 s per app, mostly leisure and
  communication apps, with erratic (high-variance, error-prone) typing, flicks and clicks.
* IDLE: no input except desk bumps (Poisson, one per ~10-15 min: a tiny pointer jiggle, rarely a
  stray key).  Reading: one document, a page key or a wheel flick every 5-10 s (lognormal,
  clipped), rarely a look-up.  Design: strokes, tool clicks, pan/zoom, shortcuts.  Meeting: the
  call app in front; notes, clicks and scrolls every ~1 min.

*Host* (the capture agent): key events at key-down, focus events at the switch, one ``mouse``
sample per 1-s sampler bin in which the pointer moved or clicked (mean speed = path length / span),
one ``scroll`` sample per bin with wheel ticks, an ``idle`` event (duration = the input gap) when
input resumes after at least 30 s without any.  Three host kinds:

* ``clean``  - exact millisecond timestamps;
* ``coarse`` - a 15.625 ms (64 Hz) or 10 ms clock tick, a small send delay before the timestamp is
  taken (exponential, ~2 ms, sometimes ~20 ms), occasional duplicate ``focus`` events;
* ``drift``  - wall clock offset by 10 min to 3 h (either sign) and running fast or slow by up to
  300 ppm; the truth spans are mapped through the same clock as the events' ``ts``.

The rotation ``HOSTS[(persona index + seed) % 3]`` lets every persona meet every host across
seeds.  No ``hello`` line is written: a trace file is what ``skelly send`` streams (§11), which
says the hello itself.  ``seq`` numbers the events 1, 2, 3, ... in ``ts`` order.

CLI: ``python bench/traces/blind.py --script day --persona b170 --seed 1 [--host clean]
[-o FILE] [--truth FILE]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

STATES = ("FLOW", "HYPERFOCUS", "NEUTRAL", "TRANSITIONING", "DISTRACTED", "IDLE")
HOSTS = ("clean", "coarse", "drift")
IDLE_THRESHOLD_S = 30.0
EPOCH_BASE = 1_812_345_600  # traces start 0-364 days after this, 07:00-10:30 UTC


class Seg(NamedTuple):
    state: str
    minutes: float
    activity: str


class Span(NamedTuple):
    start: float
    end: float
    state: str
    activity: str


def _seg(state: str, minutes: float, activity: str | None = None) -> Seg:
    return Seg(state, float(minutes), activity or state.lower())


SCRIPTS: dict[str, tuple[Seg, ...]] = {
    "flow40": (_seg("NEUTRAL", 3), _seg("FLOW", 40), _seg("NEUTRAL", 2)),
    "neutral40": (_seg("FLOW", 3), _seg("NEUTRAL", 40), _seg("FLOW", 2)),
    "distracted40": (_seg("NEUTRAL", 3), _seg("DISTRACTED", 40), _seg("NEUTRAL", 2)),
    "idle40": (_seg("NEUTRAL", 3), _seg("IDLE", 40), _seg("NEUTRAL", 2)),
    "hyperfocus100": (_seg("FLOW", 4), _seg("HYPERFOCUS", 100), _seg("NEUTRAL", 3)),
    "day": (
        _seg("NEUTRAL", 6),
        _seg("TRANSITIONING", 3),
        _seg("FLOW", 18),
        _seg("FLOW", 10, "thinking"),
        _seg("HYPERFOCUS", 30),
        _seg("IDLE", 8, "coffee"),
        _seg("NEUTRAL", 20, "meeting"),
        _seg("TRANSITIONING", 4),
        _seg("FLOW", 12, "reading"),
        _seg("DISTRACTED", 6),
        _seg("IDLE", 5),
        _seg("TRANSITIONING", 3),
        _seg("FLOW", 15, "design"),
        _seg("NEUTRAL", 8),
    ),
    "switchy": (
        _seg("TRANSITIONING", 5),
        _seg("NEUTRAL", 6),
        _seg("FLOW", 7),
        _seg("DISTRACTED", 4),
        _seg("TRANSITIONING", 4),
        _seg("NEUTRAL", 5),
        _seg("FLOW", 8),
        _seg("DISTRACTED", 5),
        _seg("TRANSITIONING", 4),
        _seg("NEUTRAL", 6),
        _seg("FLOW", 6),
    ),
    "reader": (_seg("NEUTRAL", 3), _seg("FLOW", 20, "reading"), _seg("NEUTRAL", 3)),
    "designer": (_seg("NEUTRAL", 3), _seg("FLOW", 20, "design"), _seg("NEUTRAL", 3)),
    "thinker": (_seg("NEUTRAL", 3), _seg("FLOW", 25, "thinking"), _seg("NEUTRAL", 3)),
}

# executable name -> category (docs/INGEST.md §4.3); the app_id is a salted hash of the name
APPS: dict[str, str] = {
    "code-oss": "code",
    "pycharm": "code",
    "rstudio": "code",
    "kitty": "terminal",
    "gnome-terminal": "terminal",
    "iterm2": "terminal",
    "firefox": "browser",
    "chromium": "browser",
    "safari": "browser",
    "zeal": "docs",
    "okular": "docs",
    "acrobat": "docs",
    "slack": "communication",
    "thunderbird": "communication",
    "signal": "communication",
    "discord": "communication",
    "zoom": "communication",
    "teams": "communication",
    "spotify": "media",
    "mpv": "media",
    "figma": "design",
    "inkscape": "design",
    "krita": "design",
    "lo-writer": "office",
    "lo-calc": "office",
    "obsidian": "office",
    "steam": "games",
    "solitaire": "games",
    "nautilus": "other",
    "finder": "other",
}


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    iki_ms: float  # median plain-key interval (< 1 s) in FLOW
    cal: float  # within-word median = iki_ms * cal (calibrated, see module docstring)
    sigma: float  # lognormal spread of within-burst intervals
    error_rate: float  # per-key slip probability
    phrase_words: float  # median words per burst
    word_len: float  # mean characters per word / token
    phrase_pause_s: float  # median pause between bursts
    sentence_every: float  # mean bursts per sentence / statement
    think_p: float  # P(short thinking pause) after a burst
    nav_p: float  # P(a navigation run: arrows, Home/End, shortcuts) instead of a burst
    trip_every_s: float  # mean interval between trips away from the work app (FLOW)
    trip_len_s: float  # median length of a trip
    pointer_p: float  # P(a pointer action) between bursts in FLOW
    scroll_p: float  # P(a wheel flick) between bursts in FLOW
    keyboard_switch_p: float  # P(Alt+Tab) rather than a click to switch apps
    wheel_p: float  # reading: P(wheel flick) rather than a page key
    fitts_a: float
    fitts_b: float
    work_app: str
    trip_apps: tuple[str, ...]
    neutral_apps: tuple[str, ...]
    leisure_apps: tuple[str, ...]
    read_app: str
    design_app: str
    call_app: str
    notes_app: str


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="b090",
        iki_ms=90.0,
        cal=1.0,
        sigma=0.30,
        error_rate=0.055,
        phrase_words=9.0,
        word_len=5.2,
        phrase_pause_s=1.1,
        sentence_every=3.0,
        think_p=0.05,
        nav_p=0.14,
        trip_every_s=170.0,
        trip_len_s=22.0,
        pointer_p=0.04,
        scroll_p=0.05,
        keyboard_switch_p=0.85,
        wheel_p=0.3,
        fitts_a=0.08,
        fitts_b=0.13,
        work_app="code-oss",
        trip_apps=("kitty", "kitty", "firefox", "zeal"),
        neutral_apps=("slack", "firefox", "thunderbird", "kitty", "obsidian"),
        leisure_apps=("firefox", "discord", "steam", "spotify"),
        read_app="zeal",
        design_app="inkscape",
        call_app="zoom",
        notes_app="obsidian",
    ),
    Persona(
        name="b130",
        iki_ms=130.0,
        cal=1.0,
        sigma=0.33,
        error_rate=0.04,
        phrase_words=7.0,
        word_len=4.7,
        phrase_pause_s=1.4,
        sentence_every=2.5,
        think_p=0.06,
        nav_p=0.06,
        trip_every_s=260.0,
        trip_len_s=30.0,
        pointer_p=0.08,
        scroll_p=0.07,
        keyboard_switch_p=0.5,
        wheel_p=0.7,
        fitts_a=0.09,
        fitts_b=0.14,
        work_app="lo-writer",
        trip_apps=("firefox", "acrobat", "thunderbird"),
        neutral_apps=("thunderbird", "firefox", "lo-calc", "signal", "acrobat"),
        leisure_apps=("firefox", "spotify", "mpv", "signal"),
        read_app="acrobat",
        design_app="figma",
        call_app="teams",
        notes_app="lo-writer",
    ),
    Persona(
        name="b170",
        iki_ms=170.0,
        cal=1.0,
        sigma=0.34,
        error_rate=0.05,
        phrase_words=6.0,
        word_len=5.0,
        phrase_pause_s=1.5,
        sentence_every=2.5,
        think_p=0.07,
        nav_p=0.10,
        trip_every_s=200.0,
        trip_len_s=35.0,
        pointer_p=0.10,
        scroll_p=0.08,
        keyboard_switch_p=0.6,
        wheel_p=0.8,
        fitts_a=0.10,
        fitts_b=0.15,
        work_app="rstudio",
        trip_apps=("chromium", "chromium", "gnome-terminal", "slack"),
        neutral_apps=("slack", "chromium", "lo-calc", "nautilus", "thunderbird"),
        leisure_apps=("chromium", "slack", "spotify", "solitaire"),
        read_app="okular",
        design_app="figma",
        call_app="zoom",
        notes_app="obsidian",
    ),
    Persona(
        name="b210",
        iki_ms=210.0,
        cal=1.0,
        sigma=0.36,
        error_rate=0.035,
        phrase_words=4.5,
        word_len=4.5,
        phrase_pause_s=1.7,
        sentence_every=2.0,
        think_p=0.08,
        nav_p=0.05,
        trip_every_s=300.0,
        trip_len_s=40.0,
        pointer_p=0.16,
        scroll_p=0.10,
        keyboard_switch_p=0.3,
        wheel_p=0.9,
        fitts_a=0.10,
        fitts_b=0.16,
        work_app="obsidian",
        trip_apps=("safari", "finder", "teams"),
        neutral_apps=("teams", "safari", "finder", "lo-calc", "thunderbird"),
        leisure_apps=("safari", "spotify", "mpv", "teams"),
        read_app="acrobat",
        design_app="figma",
        call_app="teams",
        notes_app="obsidian",
    ),
    Persona(
        name="b250",
        iki_ms=250.0,
        cal=1.0,
        sigma=0.40,
        error_rate=0.075,
        phrase_words=3.5,
        word_len=4.3,
        phrase_pause_s=2.0,
        sentence_every=2.0,
        think_p=0.09,
        nav_p=0.04,
        trip_every_s=240.0,
        trip_len_s=45.0,
        pointer_p=0.22,
        scroll_p=0.12,
        keyboard_switch_p=0.15,
        wheel_p=0.95,
        fitts_a=0.12,
        fitts_b=0.18,
        work_app="lo-calc",
        trip_apps=("firefox", "thunderbird", "signal"),
        neutral_apps=("thunderbird", "firefox", "signal", "nautilus", "lo-writer"),
        leisure_apps=("firefox", "signal", "mpv", "solitaire"),
        read_app="okular",
        design_app="krita",
        call_app="zoom",
        notes_app="lo-writer",
    ),
)
PERSONA_BY_NAME: dict[str, Persona] = {p.name: p for p in PERSONAS}


# --- behaviour ----------------------------------------------------------------------------------


class _Tape:
    """The raw input of one trace in true seconds since its start, before the host samples it."""

    def __init__(self, rng: random.Random, persona: Persona) -> None:
        self.rng = rng
        self.p = persona
        self.keys: list[tuple[float, bool]] = []
        self.moves: list[tuple[float, float, float]] = []  # (start, end, path length px)
        self.clicks: list[float] = []
        self.ticks: list[float] = []
        self.focus: list[tuple[float, str]] = []
        self.app = ""

    # helpers
    def logn(self, median: float, sigma: float) -> float:
        return median * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def clamp_logn(self, median: float, sigma: float, lo: float, hi: float) -> float:
        return min(hi, max(lo, self.logn(median, sigma)))

    def _word_len(self, mean: float) -> int:
        # 1 + geometric with the given mean
        q = 1.0 / max(mean, 1.01)
        return 1 + int(math.log(1.0 - self.rng.random()) / math.log(1.0 - q))

    def _digraph(self) -> float:
        r = self.rng.random()
        if r < 0.36:
            return 0.80  # alternating hands
        if r < 0.70:
            return 1.00  # same hand, other finger
        if r < 0.84:
            return 1.22  # same hand, row jump
        if r < 0.92:
            return 1.42  # same finger
        return 0.86  # doubled letter

    # K operators
    def type_run(
        self,
        t: float,
        n: int,
        end: float,
        speed: float = 1.0,
        spread: float = 1.0,
        err_mult: float = 1.0,
        word_len: float | None = None,
    ) -> float:
        """Type ``n`` keys, the first at ``t``; returns the time of the last key."""
        rng = self.rng
        gauss = rng.gauss
        base = self.p.iki_ms / 1000.0 * self.p.cal * speed
        sig = self.p.sigma * spread
        err = self.p.error_rate * err_mult
        wl = word_len or self.p.word_len
        keys = self.keys
        if t >= end:
            return t
        keys.append((t, False))
        last = t
        left = self._word_len(wl)
        typed = 1
        slip_len = 0  # keys typed since a slip (the wrong key included)
        lag = 0  # keys typed after the slip before it is noticed
        while typed < n:
            if left == 0:
                f = 0.93  # the space
                left = -1
            elif left < 0:
                f = 1.2  # first letter of a word
                left = self._word_len(wl) - 1
            else:
                f = self._digraph()
                left -= 1
            dt = base * f * math.exp(sig * gauss(0.0, 1.0))
            tk = last + max(dt, 0.022)
            if tk >= end:
                return last
            keys.append((tk, False))
            last = tk
            typed += 1
            if slip_len:
                slip_len += 1
            elif rng.random() < err:
                slip_len = 1
                lag = min(3, int(rng.expovariate(0.9)))
            if slip_len > lag:
                # noticed: stop (M), Backspace once per wrong key, retype a little later
                tk = last + self.clamp_logn(0.42, 0.35, 0.18, 1.6)
                bs = max(0.075, base * 0.8)
                for _ in range(slip_len):
                    if tk >= end:
                        return last
                    keys.append((tk, True))
                    last = tk
                    tk += bs * math.exp(0.2 * gauss(0.0, 1.0))
                last += base * 0.35
                slip_len = 0
        return last

    def keys_at(self, t: float, n: int, gap: float, end: float) -> float:
        """``n`` plain keys at a steady rhythm (page keys, arrows, shortcuts); returns the time
        of the last one."""
        last = t
        for _ in range(n):
            if t >= end:
                break
            self.keys.append((t, False))
            last = t
            t += gap * math.exp(0.15 * self.rng.gauss(0.0, 1.0))
        return last

    # P / B / D operators
    def point(
        self, t: float, end: float, dist: float | None = None, width: float = 20.0, clicks: int = 1
    ) -> float:
        """P (Fitts) then B: move to a target ``dist`` px away of ``width`` px and click."""
        if t >= end:
            return t
        rng = self.rng
        d = dist if dist is not None else self.clamp_logn(280.0, 0.6, 15.0, 1600.0)
        mt = (self.p.fitts_a + self.p.fitts_b * math.log2(d / width + 1.0)) * math.exp(
            0.15 * rng.gauss(0.0, 1.0)
        )
        path = d * rng.uniform(1.05, 1.25)
        self.moves.append((t, t + mt, path))
        t += mt
        for i in range(clicks):
            t += rng.uniform(0.06, 0.16) if i == 0 else rng.uniform(0.09, 0.16)
            self.clicks.append(t)
        if clicks and rng.random() < 0.12:
            t += rng.uniform(0.09, 0.16)
            self.clicks.append(t)  # a double click
        return t

    def drag(self, t: float, dur: float, speed: float) -> float:
        self.clicks.append(t)
        self.moves.append((t + 0.02, t + 0.02 + dur, speed * dur))
        return t + 0.02 + dur

    def wiggle(self, t: float, dur: float, dist: float) -> float:
        self.moves.append((t, t + dur, dist))
        return t + dur

    def home(self) -> float:
        return self.clamp_logn(0.36, 0.2, 0.2, 0.7)  # H operator

    # W operator
    def scroll(self, t: float, n: int, dur: float, end: float) -> float:
        if t >= end:
            return t
        for _ in range(n):
            tick = t + self.rng.random() * dur
            if tick < end:
                self.ticks.append(tick)
        return t + dur

    # app switch
    def switch(self, t: float, app: str, end: float, by_keys: bool | None = None) -> float:
        if app == self.app or t >= end:
            return t
        rng = self.rng
        if by_keys is None:
            by_keys = rng.random() < self.p.keyboard_switch_p
        if by_keys:
            self.keys.append((t, False))  # Alt
            t += rng.uniform(0.07, 0.17)
            for _ in range(1 + (rng.random() < 0.3) + (rng.random() < 0.1)):
                self.keys.append((t, False))  # Tab (more for an app further back)
                t += rng.uniform(0.12, 0.3)
            t += rng.uniform(0.0, 0.15)
        else:
            t = self.point(t, end, dist=self.clamp_logn(600.0, 0.4, 150.0, 1800.0), width=40.0)
            t += rng.uniform(0.02, 0.08)
        if t < end:
            self.focus.append((t, app))
            self.app = app
        return t + rng.uniform(0.2, 0.6)

    def other_app(self, apps: Sequence[str]) -> str:
        choices = [a for a in apps if a != self.app]
        return self.rng.choice(choices) if choices else apps[0]


def _burst_len(tp: _Tape, mult: float = 1.0) -> int:
    words = tp.logn(tp.p.phrase_words * mult, 0.5)
    return max(2, round(words * (tp.p.word_len + 1.0)))


def _flow(tp: _Tape, t: float, end: float, mode: str) -> None:
    """FLOW / HYPERFOCUS / the "thinking" activity in the persona's work app."""
    p, rng = tp.p, tp.rng
    hyper = mode == "hyper"
    burst_mult = 1.7 if hyper else 1.0
    pause_mult = 0.65 if hyper else 1.0
    speed = 0.96 if hyper else 1.0
    spread = 0.85 if hyper else 1.0
    trip_every = p.trip_every_s * (5.0 if hyper else 1.0)
    think_p = p.think_p * (0.25 if hyper else 1.0)
    t = tp.switch(t + rng.uniform(0.5, 3.0), p.work_app, end)
    next_trip = t + rng.gammavariate(2.0, trip_every / 2.0)
    next_think = t + rng.uniform(40.0, 150.0)
    while t < end - 0.3:
        if t >= next_trip:
            t = _trip(tp, t, end, hyper)
            next_trip = t + rng.gammavariate(2.0, trip_every / 2.0)
            continue
        if mode == "thinking" and t >= next_think:
            pause = rng.uniform(15.0, 60.0)
            if rng.random() < 0.3:  # scrolls back through the code while thinking
                tp.scroll(t + pause * rng.uniform(0.3, 0.7), rng.randint(2, 6), 0.8, end)
            t += pause
            next_think = t + rng.uniform(40.0, 150.0)
            continue
        if rng.random() < p.pointer_p * (0.6 if hyper else 1.0):
            t = tp.point(t + tp.home(), end, width=rng.uniform(6.0, 30.0))
            t += tp.home()
        elif rng.random() < p.scroll_p * (0.6 if hyper else 1.0):
            t = tp.scroll(t + tp.home(), rng.randint(2, 10), rng.uniform(0.4, 1.6), end)
            t += tp.clamp_logn(1.5, 0.5, 0.4, 5.0) + tp.home()
        if rng.random() < p.nav_p:
            gap = tp.clamp_logn(p.iki_ms / 1000.0 * 1.5, 0.3, 0.08, 0.6)
            t = tp.keys_at(t, rng.randint(2, 8), gap, end)
        else:
            t = tp.type_run(t, _burst_len(tp, burst_mult), end, speed, spread)
        pause = tp.logn(p.phrase_pause_s * pause_mult, 0.45)
        if rng.random() < 1.0 / p.sentence_every:
            pause += tp.logn(2.8 * pause_mult, 0.4)
        if rng.random() < think_p:
            pause += rng.uniform(4.0, 14.0)
        t += pause


def _trip(tp: _Tape, t: float, end: float, hyper: bool) -> float:
    """A short visit from the work app to a terminal / docs / browser / chat and back."""
    p, rng = tp.p, tp.rng
    app = rng.choice(p.trip_apps)
    cat = APPS[app]
    dur = tp.clamp_logn(p.trip_len_s * (0.6 if hyper else 1.0), 0.5, 6.0, 120.0)
    t = tp.switch(t, app, end)
    stop = min(end, t + dur)
    while t < stop:
        if cat == "terminal":
            t = tp.type_run(t, rng.randint(6, 32), stop, word_len=3.5)
            t += tp.clamp_logn(3.0, 0.6, 0.8, 15.0)  # reads the output
        elif cat == "communication":
            t += tp.clamp_logn(3.0, 0.5, 1.0, 10.0)
            t = tp.type_run(t, rng.randint(8, 60), stop, speed=1.05)
            t += tp.clamp_logn(2.0, 0.5, 0.5, 8.0)
        else:
            if rng.random() < 0.3:
                t = tp.point(t + tp.home(), stop)
            t = tp.scroll(t, rng.randint(2, 9), rng.uniform(0.3, 1.2), stop)
            t += tp.clamp_logn(4.0, 0.5, 1.0, 15.0)
            if rng.random() < 0.15:
                t = tp.type_run(t, rng.randint(5, 20), stop)
    return tp.switch(min(t, stop), p.work_app, end)


def _run_mode(tp: _Tape, mode: str, t: float, stop: float, speed: float = 1.0) -> float:
    """One app dwell of ordinary work (NEUTRAL, TRANSITIONING)."""
    rng = tp.rng
    while t < stop - 0.3:
        if mode == "reply":  # read a message, answer it
            t += tp.clamp_logn(6.0, 0.6, 1.5, 25.0)
            if rng.random() < 0.4:
                t = tp.scroll(t, rng.randint(2, 6), rng.uniform(0.3, 1.0), stop) + 1.0
            for _ in range(rng.randint(1, 4)):
                t = tp.type_run(t, rng.randint(6, 40), stop, 1.15 * speed, 1.2)
                t += tp.clamp_logn(2.2, 0.6, 0.5, 10.0)
            t += tp.clamp_logn(12.0, 0.6, 3.0, 40.0)
        elif mode == "read":  # a page in a browser / viewer
            t += tp.clamp_logn(9.0, 0.6, 2.0, 35.0)
            r = rng.random()
            if r < 0.6:
                t = tp.scroll(t, rng.randint(2, 10), rng.uniform(0.3, 1.5), stop)
            elif r < 0.8:
                t = tp.point(t, stop, width=rng.uniform(10.0, 60.0))
            elif r < 0.9:
                t = tp.keys_at(t, rng.randint(1, 3), 0.25, stop)
            else:
                t = tp.type_run(t, rng.randint(5, 25), stop, 1.1 * speed, 1.1)
            if rng.random() < 0.2:
                t = tp.wiggle(t + 0.3, rng.uniform(0.2, 1.0), tp.logn(60.0, 0.6))
        elif mode == "write":  # a document / spreadsheet with some pointer work
            t += tp.clamp_logn(3.0, 0.7, 0.6, 20.0)
            r = rng.random()
            if r < 0.6:
                n = max(3, round(tp.logn(3.0, 0.6) * (tp.p.word_len + 1.0)))
                t = tp.type_run(t, n, stop, 1.1 * speed, 1.15)
            elif r < 0.85:
                t = tp.point(t + tp.home(), stop, width=rng.uniform(8.0, 40.0))
            else:
                t = tp.scroll(t, rng.randint(2, 8), rng.uniform(0.3, 1.2), stop)
        else:  # "point": files, settings, forms
            t += tp.clamp_logn(3.0, 0.6, 0.6, 15.0)
            r = rng.random()
            if r < 0.6:
                t = tp.point(t, stop, width=rng.uniform(15.0, 80.0), clicks=rng.randint(1, 2))
            elif r < 0.75:
                t = tp.point(t, stop, clicks=0)
                t = tp.drag(t, rng.uniform(0.4, 1.5), tp.logn(400.0, 0.4))
            elif r < 0.9:
                t = tp.scroll(t, rng.randint(1, 6), rng.uniform(0.2, 0.8), stop)
            else:
                t = tp.type_run(t, rng.randint(3, 15), stop, 1.1 * speed, 1.1)
    return t


_MODE_BY_CATEGORY = {
    "communication": ("reply", "reply", "read"),
    "browser": ("read", "read", "write"),
    "docs": ("read",),
    "office": ("write", "write", "point"),
    "other": ("point",),
    "terminal": ("write",),
    "code": ("write", "read"),
    "design": ("point",),
    "media": ("point",),
    "games": ("point",),
}


def _neutral(tp: _Tape, t: float, end: float) -> None:
    rng = tp.rng
    apps = tp.p.neutral_apps
    stay = tp.app in apps and rng.random() < 0.5  # carries on in the app already in front
    while t < end - 0.5:
        app = tp.app if stay else tp.other_app(apps)
        stay = False
        t = tp.switch(t + rng.uniform(0.3, 2.0), app, end)
        stop = min(end, t + tp.clamp_logn(110.0, 0.55, 35.0, 420.0))
        mode = rng.choice(_MODE_BY_CATEGORY[APPS[app]])
        t = _run_mode(tp, mode, t, stop)


def _transitioning(tp: _Tape, t: float, end: float) -> None:
    rng = tp.rng
    p = tp.p
    apps = (p.work_app, *p.trip_apps, *p.neutral_apps)
    while t < end - 0.5:
        app = tp.other_app(apps)
        t = tp.switch(t + rng.uniform(0.3, 2.5), app, end)
        stop = min(end, t + rng.uniform(25.0, 55.0))
        cat = APPS[app]
        mode = rng.choice((*_MODE_BY_CATEGORY[cat], "write" if cat == "code" else "point"))
        t = _run_mode(tp, mode, t, stop, speed=rng.uniform(0.95, 1.6))


def _distracted(tp: _Tape, t: float, end: float) -> None:
    rng = tp.rng
    p = tp.p
    fun = (*p.leisure_apps, *p.leisure_apps, p.neutral_apps[0])
    work = (p.work_app, *p.trip_apps[:2])
    while t < end - 0.3:
        app = tp.other_app(fun if rng.random() < 0.68 else work)
        t = tp.switch(t + rng.uniform(0.1, 0.8), app, end, by_keys=rng.random() < 0.65)
        dwell = tp.clamp_logn(3.5, 0.55, 1.2, 15.0)
        if APPS[app] == "media" and rng.random() < 0.35:
            dwell = rng.uniform(10.0, 25.0)  # watches a clip
        stop = min(end, t + dwell)
        while t < stop - 0.2:
            r = rng.random()
            if r < 0.35:
                n = rng.randint(2, 18)
                t = tp.type_run(t, n, stop, rng.uniform(0.8, 2.2), 1.8, 2.0)
            elif r < 0.6:
                t = tp.scroll(t, rng.randint(3, 15), rng.uniform(0.3, 1.5), stop)
            elif r < 0.85:
                t = tp.point(t, stop, width=rng.uniform(10.0, 60.0), clicks=rng.randint(0, 2))
            t += tp.clamp_logn(0.9, 0.8, 0.1, 4.0)


def _idle(tp: _Tape, t: float, end: float, every_s: float) -> None:
    rng = tp.rng
    t += 35.0 + rng.expovariate(1.0 / every_s)
    while t < end - 10.0:
        if rng.random() < 0.1:
            tp.keys.append((t, False))  # a stray key
        else:
            tp.wiggle(t, rng.uniform(0.05, 0.5), rng.uniform(3.0, 60.0))
        t += 60.0 + rng.expovariate(1.0 / every_s)


def _reading(tp: _Tape, t: float, end: float) -> None:
    p, rng = tp.p, tp.rng
    t = tp.switch(t + rng.uniform(0.5, 3.0), p.read_app, end)
    next_lookup = t + rng.expovariate(1.0 / 720.0)
    while t < end - 0.3:
        gap = tp.clamp_logn(7.2, 0.2, 4.8, 10.8)
        if rng.random() < 0.05:
            gap = rng.uniform(11.0, 20.0)  # a figure, a dense passage
        t += gap
        if t >= end - 0.3:
            break
        if rng.random() < p.wheel_p:
            t = tp.scroll(t, rng.randint(3, 9), rng.uniform(0.25, 1.1), end)
        else:
            r = rng.random()
            if r < 0.65:
                tp.keys.append((t, False))  # Page Down
            elif r < 0.85:
                t = tp.keys_at(t, 2, 0.3, end)
            else:
                t = tp.keys_at(t, rng.randint(3, 6), 0.13, end)  # arrow keys
        if rng.random() < 0.08:
            t = tp.wiggle(t + 0.5, rng.uniform(0.2, 0.8), tp.logn(40.0, 0.6))
        if rng.random() < 0.03:  # a short annotation
            t = tp.type_run(t + 1.0, rng.randint(10, 40), end, 1.1)
        if t >= next_lookup:
            app = tp.other_app((p.trip_apps[0], *p.leisure_apps[:1]))
            t = tp.switch(t + 1.0, app, end)
            stop = min(end, t + rng.uniform(10.0, 30.0))
            t = tp.type_run(t + 1.0, rng.randint(6, 20), stop)
            t = tp.scroll(t + 1.5, rng.randint(2, 6), 0.8, stop) + rng.uniform(2.0, 8.0)
            t = tp.switch(min(t, stop), p.read_app, end)
            next_lookup = t + rng.expovariate(1.0 / 720.0)


def _design(tp: _Tape, t: float, end: float) -> None:
    p, rng = tp.p, tp.rng
    t = tp.switch(t + rng.uniform(0.5, 3.0), p.design_app, end, by_keys=False)
    next_trip = t + rng.gammavariate(2.0, 240.0)
    while t < end - 0.3:
        r = rng.random()
        if r < 0.45:  # a stroke: reach its start, draw
            t = tp.point(t, end, clicks=0, width=rng.uniform(4.0, 20.0))
            t = tp.drag(t, tp.clamp_logn(1.1, 0.6, 0.3, 4.0), tp.logn(330.0, 0.5))
        elif r < 0.67:  # a tool / palette / layer
            t = tp.point(t, end, dist=tp.clamp_logn(500.0, 0.5, 80.0, 1600.0), width=24.0)
        elif r < 0.77:  # pan / zoom
            t = tp.scroll(t, rng.randint(2, 8), rng.uniform(0.3, 1.0), end)
        elif r < 0.87:  # shortcut (undo, tool letter, nudges)
            t = tp.keys_at(t, rng.randint(1, 4), 0.14, end)
        else:  # hovering while looking
            t = tp.wiggle(t, rng.uniform(0.5, 2.0), tp.logn(120.0, 0.6))
        t += tp.clamp_logn(1.5, 0.7, 0.2, 8.0)
        if rng.random() < 0.06:
            t += rng.uniform(5.0, 15.0)  # steps back, looks
        if t >= next_trip and t < end - 20.0:
            app = tp.other_app((p.trip_apps[0], p.neutral_apps[0]))
            t = tp.switch(t, app, end)
            t = _run_mode(tp, "read", t, min(end, t + rng.uniform(10.0, 35.0)))
            t = tp.switch(t, p.design_app, end, by_keys=False)
            next_trip = t + rng.gammavariate(2.0, 240.0)


def _meeting(tp: _Tape, t: float, end: float) -> None:
    p, rng = tp.p, tp.rng
    t = tp.switch(t + rng.uniform(0.5, 2.0), p.call_app, end, by_keys=False)
    while t < end - 0.3:
        t += tp.clamp_logn(60.0, 0.6, 12.0, 200.0)
        if t >= end - 0.3:
            break
        r = rng.random()
        if r < 0.42:  # a note in the call's chat
            for _ in range(rng.randint(1, 3)):
                t = tp.type_run(t, rng.randint(8, 50), end, 1.2, 1.2)
                t += tp.clamp_logn(2.0, 0.5, 0.5, 8.0)
        elif r < 0.62:  # notes in the notes app, then back to the call
            t = tp.switch(t, p.notes_app, end)
            for _ in range(rng.randint(1, 4)):
                t = tp.type_run(t, rng.randint(10, 60), end, 1.15, 1.2)
                t += tp.clamp_logn(4.0, 0.6, 1.0, 20.0)
            t = tp.switch(t, p.call_app, end)
        elif r < 0.88:  # mute / unmute, a reaction, the participants list
            t = tp.point(t, end, width=rng.uniform(20.0, 40.0))
        else:  # scrolls a shared document
            t = tp.scroll(t, rng.randint(2, 6), rng.uniform(0.3, 1.0), end)


def _behave(tp: _Tape, seg: Seg, t0: float, t1: float) -> None:
    state, act = seg.state, seg.activity
    if act == "reading":
        _reading(tp, t0, t1)
    elif act == "design":
        _design(tp, t0, t1)
    elif act == "thinking":
        _flow(tp, t0, t1, "thinking")
    elif act == "meeting":
        _meeting(tp, t0, t1)
    elif state == "HYPERFOCUS":
        _flow(tp, t0, t1, "hyper")
    elif state == "FLOW":
        _flow(tp, t0, t1, "flow")
    elif state == "NEUTRAL":
        _neutral(tp, t0, t1)
    elif state == "TRANSITIONING":
        _transitioning(tp, t0, t1)
    elif state == "DISTRACTED":
        _distracted(tp, t0, t1)
    else:  # IDLE, coffee
        _idle(tp, t0, t1, 900.0 if act == "coffee" else 600.0)


def _confined(tp: _Tape, seg: Seg, t0: float, t1: float) -> None:
    """Run one segment's behaviour and cut what it did past the segment's end (an operator
    started just before the end would otherwise spill into the next state)."""
    marks = (len(tp.keys), len(tp.moves), len(tp.clicks), len(tp.ticks), len(tp.focus))
    _behave(tp, seg, t0, t1)
    nk, nm, nc, nt, nf = marks
    tp.keys[nk:] = [k for k in tp.keys[nk:] if k[0] < t1]
    tp.moves[nm:] = [
        (a, min(b, t1), d * (min(b, t1) - a) / max(b - a, 1e-9))
        for a, b, d in tp.moves[nm:]
        if a < t1
    ]
    tp.clicks[nc:] = [c for c in tp.clicks[nc:] if c < t1]
    tp.ticks[nt:] = [c for c in tp.ticks[nt:] if c < t1]
    tp.focus[nf:] = [f for f in tp.focus[nf:] if f[0] < t1]
    if tp.focus:
        tp.app = tp.focus[-1][1]  # the app really in front


# --- host ---------------------------------------------------------------------------------------


class _Clock:
    """Maps true seconds since the trace start to the host's wall clock and its ``ts`` text."""

    def __init__(self, host: str, t0: int, rng: random.Random) -> None:
        self.host = host
        self.t0 = t0
        self.rng = rng
        self.offset = 0.0
        self.ppm = 0.0
        self.tps = 0  # coarse: ticks per second
        if host == "drift":
            self.offset = rng.choice((-1.0, 1.0)) * rng.uniform(600.0, 10_800.0)
            self.ppm = rng.uniform(-300.0, 300.0)
        elif host == "coarse":
            self.tps = rng.choice((64, 100))

    def exact(self, t: float) -> float:
        """The host clock at true time ``t`` (unquantised): the truth spans use it."""
        return self.t0 + self.offset + t * (1.0 + self.ppm * 1e-6)

    def ticks(self, t: float) -> int:
        """Coarse host: the tick count when the event's timestamp is taken (after a send delay)."""
        rng = self.rng
        delay = rng.expovariate(500.0)
        if rng.random() < 0.02:
            delay += rng.uniform(0.01, 0.03)
        return self.t0 * self.tps + math.floor((t + delay) * self.tps)

    def text(self, t: float) -> tuple[float, str]:
        """(sort key, ts text) of an event at true time ``t``."""
        if self.tps:
            n = self.ticks(t)
            if self.tps == 64:
                return n / 64, repr(n / 64)
            return n / 100, f"{n // 100}.{n % 100:02d}"
        h = self.exact(t)
        return h, f"{h:.3f}"

    def span_ms(self, a: float, b: float) -> int:
        if self.tps:
            na = math.floor(a * self.tps)
            nb = math.floor(b * self.tps)
            return max(1, round((nb - na) * 1000 / self.tps))
        return max(1, round((b - a) * (1.0 + self.ppm * 1e-6) * 1000.0))

    def duration(self, a: float, b: float) -> str:
        if self.tps:
            return f"{(math.floor(b * self.tps) - math.floor(a * self.tps)) / self.tps:.3f}"
        return f"{(b - a) * (1.0 + self.ppm * 1e-6):.3f}"


def _app_id(salt: bytes, exe: str) -> str:
    return hmac.new(salt, exe.encode(), hashlib.sha256).hexdigest()[:16]


def _render(tp: _Tape, clock: _Clock, total: float, salt: bytes) -> list[str]:
    rng = clock.rng
    ev: list[tuple[float, float, int, str, str]] = []  # (sort ts, true t, prio, ts text, body)
    ids = {app: _app_id(salt, app) for app in APPS}

    def add(t: float, prio: int, body: str) -> None:
        key, text = clock.text(t)
        ev.append((key, t, prio, text, body))

    for t, corr in tp.keys:
        if 0.0 <= t <= total:
            add(t, 2, '"correction":true}' if corr else '"correction":false}')
    for t, app in tp.focus:
        if 0.0 <= t <= total:
            body = f'"category":"{APPS[app]}","app_id":"{ids[app]}"}}'
            add(t, 1, body)
            if clock.tps and rng.random() < 0.04:  # the coarse host reports it twice
                add(min(total, t + rng.randint(0, 2) / clock.tps), 1, body)

    # the 1-s samplers
    phase = rng.random()
    dist: dict[int, float] = {}
    clicks: dict[int, int] = {}
    for a, b, d in tp.moves:
        b = min(b, total)
        if b <= a:
            continue
        rate = d / (b - a)
        k = math.floor(a - phase)
        while True:
            lo = max(a, phase + k)
            hi = min(b, phase + k + 1)
            if hi > lo:
                dist[k] = dist.get(k, 0.0) + rate * (hi - lo)
            if phase + k + 1 >= b:
                break
            k += 1
    for c in tp.clicks:
        if 0.0 <= c <= total:
            k = math.floor(c - phase)
            clicks[k] = clicks.get(k, 0) + 1
            dist.setdefault(k, 0.0)
    ticks: dict[int, int] = {}
    for c in tp.ticks:
        if 0.0 <= c <= total:
            k = math.floor(c - phase)
            ticks[k] = ticks.get(k, 0) + 1

    def bounds(k: int) -> tuple[float, float]:
        return max(0.0, phase + k), min(total, phase + k + 1)

    for k, d in dist.items():
        lo, hi = bounds(k)
        span = hi - lo
        speed = d / span if span > 0 else 0.0
        ms = clock.span_ms(lo, hi)
        add(
            hi,
            3,
            f'"speed":{min(speed, 100_000.0):.1f},"clicks":{clicks.get(k, 0)},"span_ms":{ms}}}',
        )
    for k, n in ticks.items():
        lo, hi = bounds(k)
        add(hi, 4, f'"ticks":{n},"span_ms":{clock.span_ms(lo, hi)}}}')

    # idle spans: input resumes after >= 30 s without any
    spans: list[tuple[float, float]] = [(t, t) for t, _ in tp.keys]
    spans += [(a, b) for a, b, _ in tp.moves]
    spans += [(c, c) for c in tp.clicks]
    spans += [(c, c) for c in tp.ticks]
    spans = sorted(s for s in spans if s[0] <= total)
    last_end: float | None = None
    for a, b in spans:
        if last_end is not None and a - last_end >= IDLE_THRESHOLD_S:
            add(a, 0, f'"duration_s":{clock.duration(last_end, a)}}}')
        last_end = b if last_end is None else max(last_end, b)

    ev.sort(key=lambda e: (e[0], e[1], e[2]))
    kinds = ("idle", "focus", "key", "mouse", "scroll")
    return [
        f'{{"kind":"{kinds[prio]}","seq":{seq},"ts":{text},{body}'
        for seq, (_, _, prio, text, body) in enumerate(ev, 1)
    ]


# --- traces -------------------------------------------------------------------------------------


class Trace:
    """One generated trace: its NDJSON event lines and the scripted truth on the host's clock."""

    def __init__(
        self,
        name: str,
        persona: str,
        seed: int,
        host: str,
        truth: list[Span],
        lines: list[str],
        clock: _Clock,
    ) -> None:
        self.name = name
        self.persona = persona
        self.seed = seed
        self.host = host
        self.truth = truth
        self._lines = lines
        self.clock_offset_s = clock.offset
        self.drift_ppm = clock.ppm
        self.tick_s = 1.0 / clock.tps if clock.tps else 0.0

    def lines(self) -> list[str]:
        """The event lines, without their ``\\n``."""
        return list(self._lines)

    def ndjson(self) -> str:
        return "".join(line + "\n" for line in self._lines)

    def truth_json(self) -> list[list[float | str]]:
        return [[s.start, s.end, s.state, s.activity] for s in self.truth]

    def __repr__(self) -> str:
        return (
            f"Trace({self.name!r}, persona={self.persona!r}, seed={self.seed}, "
            f"host={self.host!r}, events={len(self._lines)})"
        )


def _choices(what: str, valid: Sequence[str]) -> str:
    return f"{what}; valid choices: {', '.join(valid)}"


def _persona(persona: str | Persona) -> Persona:
    if isinstance(persona, Persona):
        return persona
    try:
        return PERSONA_BY_NAME[persona]
    except (KeyError, TypeError):
        raise ValueError(_choices(f"unknown persona {persona!r}", list(PERSONA_BY_NAME))) from None


def host_for(persona: str | Persona, seed: int) -> str:
    """The rotation's host kind for (persona, seed)."""
    p = _persona(persona)
    idx = next((i for i, q in enumerate(PERSONAS) if q.name == p.name), 0)
    return HOSTS[(idx + seed) % len(HOSTS)]


def generate(script: str, persona: str | Persona, seed: int, host: str | None = None) -> Trace:
    """The trace of ``script`` for ``persona`` and ``seed`` (host None = the rotation's choice)."""
    if script not in SCRIPTS:
        raise ValueError(_choices(f"unknown script {script!r}", list(SCRIPTS)))
    p = _persona(persona)
    if host is None:
        host = host_for(p, seed)
    elif host not in HOSTS:
        raise ValueError(_choices(f"unknown host {host!r}", HOSTS))
    segs = SCRIPTS[script]

    brng = random.Random(f"blind/behaviour/{script}/{p.name}/{seed}")
    day = brng.randrange(365)
    t0 = EPOCH_BASE + day * 86_400 + brng.randrange(7 * 3600, 10 * 3600 + 1800)
    tp = _Tape(brng, p)
    tp.app = brng.choice(p.neutral_apps)
    tp.focus.append((brng.uniform(0.05, 0.5), tp.app))  # the agent reports the app in front

    bounds: list[tuple[float, float]] = []
    t = 0.0
    for seg in segs:
        bounds.append((t, t + seg.minutes * 60.0))
        t += seg.minutes * 60.0
    total = t
    for seg, (a, b) in zip(segs, bounds, strict=True):
        _confined(tp, seg, a, b)
    # the trace ends with the person still at it: input up to the very end
    inputs = [k for k, _ in tp.keys] + [b for _, b, _ in tp.moves] + tp.ticks + tp.clicks
    last = max([x for x in inputs if x <= total] + [0.0])
    if last < total - 1.5:
        tp.type_run(total - 3.5, brng.randint(3, 8), total - 1.0)
        tp.keys.append((total - brng.uniform(0.2, 0.8), False))

    hrng = random.Random(f"blind/host/{host}/{p.name}/{seed}/{script}")
    clock = _Clock(host, t0, hrng)
    salt = f"blind-salt/{p.name}/{seed}/{host}".encode()
    lines = _render(tp, clock, total, salt)
    truth = [
        Span(clock.exact(a), clock.exact(b), seg.state, seg.activity)
        for seg, (a, b) in zip(segs, bounds, strict=True)
    ]
    return Trace(script, p.name, seed, host, truth, lines, clock)


def family(seeds: Sequence[int], personas: Sequence[Persona] = PERSONAS) -> Iterator[Trace]:
    """Every script for every persona and seed."""
    for seed in seeds:
        for p in personas:
            for script in SCRIPTS:
                yield generate(script, p, seed)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Write a blind synthetic host trace (NDJSON).")
    ap.add_argument("--script", required=True, help="one of: " + ", ".join(SCRIPTS))
    ap.add_argument("--persona", required=True, help="one of: " + ", ".join(PERSONA_BY_NAME))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--host", default=None, help="one of: " + ", ".join(HOSTS))
    ap.add_argument("-o", "--out", default="-", help="NDJSON output file (default stdout)")
    ap.add_argument("--truth", default=None, help="write the truth spans as JSON here")
    args = ap.parse_args(argv)
    try:
        trace = generate(args.script, args.persona, args.seed, args.host)
    except ValueError as exc:
        ap.error(str(exc))
    if args.out == "-":
        sys.stdout.write(trace.ndjson())
    else:
        Path(args.out).write_text(trace.ndjson(), encoding="utf-8")
    if args.truth:
        Path(args.truth).write_text(json.dumps(trace.truth_json()) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
