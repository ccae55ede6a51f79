"""The held-out trace family: synthetic host activity the classifier was never tuned on.

What it is
    A third family of scripted activity traces (NDJSON event lines exactly as docs/INGEST.md §4
    defines them, plus the scripted ground truth) for the focus-state benchmark
    (``bench/analysis.py``). It was written apart from the classifier (``modules/analysis/``) and
    from the other two families (``hw_sim/scenarios.py``, ``bench/traces/independent.py``), none of
    which were read while writing it (of the other family only the calling convention of its
    test file was looked at, to mirror the API). Its only sources are the wire format
    (docs/INGEST.md §4), the meaning of the states (SPEC.md §4 and the issue) and published
    figures on how people type and use computers. Scores on it are therefore an honest check of
    rules tuned on the other two.

How its models differ in kind
    * Typing is a two-level hidden-Markov process, not "words with lognormal gaps": the typist
      alternates between *composing* and *reviewing* episodes (heavy-tailed episode lengths);
      composing emits *bursts* whose lengths are discrete-Pareto and whose gaps are a lognormal
      body with a Pareto tail. Each burst has a tempo that drifts as an AR(1) process in
      log-space (steadier in hyperfocus, re-centred on every task in transitioning, wild when
      distracted). Inside a burst the characters come from a letter-bigram Markov chain (prose
      or code) and every inter-key interval is ex-Gaussian, scaled by a digraph factor from a
      QWERTY hand/finger model: hand alternation and common bigrams are fast, same-finger pairs,
      word starts, shifted keys, digits and keys after punctuation or a line break are slow.
      Errors are noticed after a geometric lag and fixed with backspace runs (tapped, or held
      with the host's auto-repeat); navigation keys are sometimes held (auto-repeat runs).
      Each persona is calibrated once (three hours of its own flow behaviour, fixed seed) so
      that its median interval between two plain keys less than 1 s apart in flow equals its
      ``flow_iki_ms``.
    * The pointer moves in strokes with a minimum-jerk speed profile (duration from Fitts' law,
      corrective sub-movements, clicks and double clicks at the end, drags in design tools);
      the host integrates the distance over its own sample period (1 s, 0.5 s or 0.25 s with
      partial first spans) and sends one ``mouse`` sample per busy period. Scrolling is made of
      wheel/touchpad flicks of a few ticks, summed the same way into ``scroll`` samples.
    * App use is a dwell process per state: heavy-tailed dwells, app pools per state and
      persona, switches by alt-tab (two or three key events) or by a pointer stroke and click to
      the task bar, followed by the ``focus`` event. ``app_id`` is derived as INGEST.md §4.3 says
      (a keyed hash of the executable name with a per-host salt), in a host-specific format.
    * Three host agents: ``clean`` (exact millisecond stamps, 1 s samples, event-driven focus),
      ``noisy`` (10 ms clock tick; keyboard hook stalls and a slow focus listener, so events are
      sent out of time order and ``ts`` sometimes goes backwards; focus notifications sometimes
      delivered twice; the app in front re-announced on title changes now and then; 0.5 s
      samples with timer jitter), ``skewed`` (host clock 0.5–2 h off and drifting 100–450 ppm,
      truth on the same host clock; 0.25 s samples whose first span after a rest starts at the
      first movement).
    * Idle reports as the reference client sends them: when input resumes after ≥ 30 s without
      any (user) input, an ``idle`` event with the gap's length, stamped where input resumed
      (for a sample: the start of its span) and sent just before the resuming event. Host
      re-announcements of the same app are not user input.

Scripts (segments: state, minutes, activity; see :data:`SCRIPTS`)
    ``flow40`` NEUTRAL 3, FLOW 40, NEUTRAL 2 · ``neutral40`` FLOW 3, NEUTRAL 40, FLOW 2 ·
    ``distracted40`` NEUTRAL 3, DISTRACTED 40, NEUTRAL 2 · ``idle40`` NEUTRAL 3, IDLE 40,
    NEUTRAL 2 · ``hyperfocus100`` FLOW 4, HYPERFOCUS 100, NEUTRAL 3 · ``day`` (168 min, every
    state, with thinking, a meeting, a coffee break, reading and design) · ``switchy``
    (TRANSITIONING / NEUTRAL / FLOW / DISTRACTED, 4–8 min each) · ``reader`` NEUTRAL 3,
    reading 20, NEUTRAL 3 · ``designer`` NEUTRAL 3, design 20, NEUTRAL 3 · ``thinker``
    NEUTRAL 3, thinking 25, NEUTRAL 3. None ends in silence.

Personas
    ``h090``, ``h130``, ``h170``, ``h210``, ``h250`` — median flow inter-key interval 90 … 250 ms,
    each with its own burstiness, pauses, error and repair habits, switching habit (keyboard or
    pointer), reading habit (scroll or page keys) and apps.

Hosts
    ``clean``, ``noisy``, ``skewed``; a family run picks one per trace by rotation over
    (script, persona, seed), so one seed already contains all three.

Everything is deterministic in (script, persona, host, seed): each trace draws from
``random.Random`` seeded with a string (behaviour from script, persona and seed; host quirks
from those and the host), never from the global generator or ``hash()``.

Command line::

    python -m bench.traces.holdout --script day --persona h170 --seed 1 [--host noisy]
        [--truth truth.json] [-o trace.ndjson]
"""

from __future__ import annotations

import argparse
import base64
import bisect
import functools
import hashlib
import hmac
import json
import math
import random
import statistics
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

STATES = ("FLOW", "HYPERFOCUS", "NEUTRAL", "TRANSITIONING", "DISTRACTED", "IDLE")

#: activity label → the state it is scripted as
ACTIVITIES: dict[str, str] = {
    "flow": "FLOW",
    "hyperfocus": "HYPERFOCUS",
    "neutral": "NEUTRAL",
    "transitioning": "TRANSITIONING",
    "distracted": "DISTRACTED",
    "idle": "IDLE",
    "reading": "FLOW",
    "design": "FLOW",
    "thinking": "FLOW",
    "meeting": "NEUTRAL",
    "coffee": "IDLE",
}

HOST_IDLE_S = 30.0  # the host's idle threshold (the reference client's)
EPOCH = 1_790_000_000.0  # 2026-09-21; each trace starts at a seeded offset after it

# --------------------------------------------------------------------------- scripts


class Seg(NamedTuple):
    """One scripted segment: ground-truth state, length in minutes, activity label."""

    state: str
    minutes: float
    activity: str = ""

    @property
    def kind(self) -> str:
        """The activity label (the lower-case state name for a plain segment)."""
        return self.activity or self.state.lower()


def _s(state: str, minutes: float, activity: str = "") -> Seg:
    return Seg(state, minutes, activity or state.lower())


SCRIPTS: dict[str, tuple[Seg, ...]] = {
    "flow40": (_s("NEUTRAL", 3), _s("FLOW", 40), _s("NEUTRAL", 2)),
    "neutral40": (_s("FLOW", 3), _s("NEUTRAL", 40), _s("FLOW", 2)),
    "distracted40": (_s("NEUTRAL", 3), _s("DISTRACTED", 40), _s("NEUTRAL", 2)),
    "idle40": (_s("NEUTRAL", 3), _s("IDLE", 40), _s("NEUTRAL", 2)),
    "hyperfocus100": (_s("FLOW", 4), _s("HYPERFOCUS", 100), _s("NEUTRAL", 3)),
    "day": (
        _s("NEUTRAL", 10),
        _s("TRANSITIONING", 4),
        _s("FLOW", 22),
        _s("FLOW", 10, "thinking"),
        _s("NEUTRAL", 5),
        _s("NEUTRAL", 20, "meeting"),
        _s("NEUTRAL", 4),
        _s("IDLE", 8, "coffee"),
        _s("TRANSITIONING", 3),
        _s("HYPERFOCUS", 30),
        _s("DISTRACTED", 10),
        _s("FLOW", 12, "reading"),
        _s("NEUTRAL", 4),
        _s("FLOW", 15, "design"),
        _s("IDLE", 6),
        _s("NEUTRAL", 5),
    ),
    "switchy": (
        _s("TRANSITIONING", 4),
        _s("NEUTRAL", 6),
        _s("TRANSITIONING", 5),
        _s("FLOW", 8),
        _s("TRANSITIONING", 4),
        _s("DISTRACTED", 6),
        _s("NEUTRAL", 5),
        _s("FLOW", 7),
        _s("TRANSITIONING", 4),
        _s("DISTRACTED", 5),
        _s("NEUTRAL", 6),
    ),
    "reader": (_s("NEUTRAL", 3), _s("FLOW", 20, "reading"), _s("NEUTRAL", 3)),
    "designer": (_s("NEUTRAL", 3), _s("FLOW", 20, "design"), _s("NEUTRAL", 3)),
    "thinker": (_s("NEUTRAL", 3), _s("FLOW", 25, "thinking"), _s("NEUTRAL", 3)),
}

# --------------------------------------------------------------------------- apps

#: executable name → focus category (INGEST.md §4.3); the wire carries only a salted hash
APPS: dict[str, str] = {
    "vscode": "code",
    "pycharm": "code",
    "rstudio": "code",
    "kitty": "terminal",
    "windowsterminal": "terminal",
    "obsidian": "docs",
    "notion": "docs",
    "zathura": "docs",
    "acrobat": "docs",
    "firefox": "browser",
    "chrome": "browser",
    "safari": "browser",
    "thunderbird": "communication",
    "outlook": "communication",
    "slack": "communication",
    "teams": "communication",
    "zoom": "communication",
    "discord": "communication",
    "telegram": "communication",
    "signal": "communication",
    "spotify": "media",
    "vlc": "media",
    "mpv": "media",
    "figma": "design",
    "inkscape": "design",
    "krita": "design",
    "word": "office",
    "excel": "office",
    "lo-writer": "office",
    "lo-calc": "office",
    "steam": "games",
    "solitaire": "games",
    "minecraft": "games",
    "nautilus": "other",
    "explorer": "other",
    "finder": "other",
}

# --------------------------------------------------------------------------- personas


@dataclass(frozen=True)
class Persona:
    """A typist with habits. ``flow_iki_ms`` is the median inter-key interval inside bursts
    while in flow; the other traits shape bursts, pauses, errors, pointer use and apps."""

    name: str
    flow_iki_ms: float
    register: str = "prose"  # what the bigram chain types: "prose" or "code"
    iki_sd: float = 0.18  # ex-Gaussian: sd of the normal part (relative)
    iki_tau: float = 0.28  # ex-Gaussian: mean of the exponential part (relative)
    burst_min: float = 10.0  # discrete-Pareto burst length: scale (keys) …
    burst_alpha: float = 1.4  # … and tail index (lower = burstier)
    pause_s: float = 2.5  # median of the lognormal body of pauses between bursts
    tempo_sigma: float = 0.11  # AR(1) tempo: stationary sd of log-tempo in flow
    error_rate: float = 0.06  # chance per key of an error that gets fixed
    hold_backspace: float = 0.3  # chance a fix of ≥ 3 keys holds Backspace (auto-repeat)
    repeat_runs: float = 0.03  # chance per burst of a held navigation key afterwards
    kb_switch: float = 0.5  # share of app switches done with alt-tab (else pointer)
    scroll_share: float = 0.6  # reading: share of page turns done by scrolling (else keys)
    mouse_tempo: float = 1.0  # stroke duration multiplier (lower = faster pointer)
    work: tuple[str, str] = ("vscode", "kitty")  # main work app, second work app
    browser: str = "firefox"
    mail: str = "thunderbird"
    chat: str = "slack"
    call: str = "zoom"
    notes: str = "obsidian"
    reader: str = "zathura"
    design_app: str = "inkscape"
    fun: tuple[str, ...] = ("discord", "spotify", "steam")


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "h090",
        90.0,
        register="code",
        iki_sd=0.16,
        iki_tau=0.24,
        burst_min=14,
        burst_alpha=1.25,
        pause_s=1.6,
        tempo_sigma=0.10,
        error_rate=0.03,
        hold_backspace=0.55,
        repeat_runs=0.06,
        kb_switch=0.85,
        scroll_share=0.3,
        mouse_tempo=0.85,
        work=("vscode", "kitty"),
        browser="firefox",
        mail="thunderbird",
        chat="slack",
        call="zoom",
        notes="obsidian",
        reader="zathura",
        design_app="inkscape",
        fun=("discord", "spotify", "steam"),
    ),
    Persona(
        "h130",
        130.0,
        register="prose",
        iki_sd=0.14,
        iki_tau=0.22,
        burst_min=16,
        burst_alpha=1.6,
        pause_s=2.2,
        tempo_sigma=0.08,
        error_rate=0.04,
        hold_backspace=0.3,
        repeat_runs=0.02,
        kb_switch=0.5,
        scroll_share=0.8,
        mouse_tempo=1.0,
        work=("obsidian", "chrome"),
        browser="chrome",
        mail="outlook",
        chat="teams",
        call="zoom",
        notes="notion",
        reader="acrobat",
        design_app="figma",
        fun=("telegram", "vlc", "solitaire"),
    ),
    Persona(
        "h170",
        170.0,
        register="code",
        iki_sd=0.18,
        iki_tau=0.30,
        burst_min=10,
        burst_alpha=1.4,
        pause_s=2.6,
        tempo_sigma=0.12,
        error_rate=0.045,
        hold_backspace=0.4,
        repeat_runs=0.05,
        kb_switch=0.6,
        scroll_share=0.6,
        mouse_tempo=1.0,
        work=("pycharm", "lo-calc"),
        browser="chrome",
        mail="thunderbird",
        chat="slack",
        call="teams",
        notes="notion",
        reader="acrobat",
        design_app="figma",
        fun=("telegram", "vlc", "solitaire"),
    ),
    Persona(
        "h210",
        210.0,
        register="prose",
        iki_sd=0.20,
        iki_tau=0.30,
        burst_min=9,
        burst_alpha=1.5,
        pause_s=3.0,
        tempo_sigma=0.13,
        error_rate=0.035,
        hold_backspace=0.2,
        repeat_runs=0.02,
        kb_switch=0.25,
        scroll_share=0.9,
        mouse_tempo=0.9,
        work=("word", "figma"),
        browser="safari",
        mail="outlook",
        chat="signal",
        call="zoom",
        notes="notion",
        reader="safari",
        design_app="figma",
        fun=("telegram", "spotify", "minecraft"),
    ),
    Persona(
        "h250",
        250.0,
        register="prose",
        iki_sd=0.22,
        iki_tau=0.35,
        burst_min=6,
        burst_alpha=1.7,
        pause_s=3.4,
        tempo_sigma=0.15,
        error_rate=0.06,
        hold_backspace=0.15,
        repeat_runs=0.01,
        kb_switch=0.15,
        scroll_share=0.5,
        mouse_tempo=1.25,
        work=("excel", "rstudio"),
        browser="chrome",
        mail="outlook",
        chat="teams",
        call="zoom",
        notes="word",
        reader="chrome",
        design_app="krita",
        fun=("discord", "mpv", "solitaire"),
    ),
)
PERSONA_BY_NAME: dict[str, Persona] = {p.name: p for p in PERSONAS}

# --------------------------------------------------------------------------- hosts


@dataclass(frozen=True)
class Host:
    """A capture agent on the user's computer: its clock, sampling and quirks."""

    name: str
    sample_s: float  # mouse/scroll sample period
    partial_spans: bool = False  # first sample after a rest spans from the first movement
    tick_s: float = 0.0  # clock resolution (0: exact, written in milliseconds)
    hook_delay_s: float = 0.0  # mean keyboard-hook delivery delay
    stall_p: float = 0.0  # chance a keyboard event is delivered after a stall
    focus_delay_s: tuple[float, float] = (0.0, 0.0)  # focus listener delivery delay range
    dup_focus_p: float = 0.0  # chance a focus notification is delivered twice
    reannounce_s: tuple[float, float] | None = None  # re-announce the app in front every …
    span_jitter_ms: float = 0.0  # sample timer jitter
    offset_s: tuple[float, float] = (0.0, 0.0)  # |clock offset| range
    drift_ppm: tuple[float, float] = (0.0, 0.0)  # |clock drift| range
    app_id_style: str = "hex16"  # "hex16", "b64", "HEX12"
    repeat_delay_s: float = 0.5  # keyboard auto-repeat delay …
    repeat_hz: float = 30.0  # … and rate


HOSTS: dict[str, Host] = {
    "clean": Host("clean", sample_s=1.0),
    "noisy": Host(
        "noisy",
        sample_s=0.5,
        tick_s=0.01,
        hook_delay_s=0.004,
        stall_p=0.03,
        focus_delay_s=(0.03, 0.4),
        dup_focus_p=0.12,
        reannounce_s=(45.0, 300.0),
        span_jitter_ms=4.0,
        app_id_style="b64",
        repeat_delay_s=0.6,
        repeat_hz=25.0,
    ),
    "skewed": Host(
        "skewed",
        sample_s=0.25,
        partial_spans=True,
        offset_s=(1800.0, 7200.0),
        drift_ppm=(100.0, 450.0),
        app_id_style="HEX12",
        repeat_delay_s=0.25,
        repeat_hz=40.0,
    ),
}
_HOST_ROTATION = ("clean", "noisy", "skewed")

# --------------------------------------------------------------------------- trace


@dataclass
class TruthSpan:
    start: float
    end: float
    state: str
    activity: str


@dataclass
class Trace:
    name: str
    persona: str
    host: str
    seed: int
    truth: list[TruthSpan]
    events: list[dict[str, Any]]

    @property
    def start(self) -> float:
        return self.truth[0].start

    @property
    def end(self) -> float:
        return self.truth[-1].end

    def lines(self) -> list[str]:
        """The wire lines (compact JSON, no newline)."""
        dumps = json.JSONEncoder(separators=(",", ":")).encode
        return [dumps(e) for e in self.events]

    def ndjson(self) -> str:
        return "".join(line + "\n" for line in self.lines())


# --------------------------------------------------------------------------- text and digraphs

_PROSE = """Thanks for the notes from yesterday. I went through the draft again this morning and
most of it reads well, but the second section still feels long. Could we move the part about
the survey results up front? People will want the numbers first, and the method can follow.
I also think the title should say what changed, not only that something did. If you have time
on Thursday we could look at it together; otherwise I will send a new version by the end of
the week. The figures are in the shared folder, and the old ones are still there in case we
need them. One more thing: the budget line for travel is missing, so please check with Anna
before we send it out. Let me know what you think.
The river was low that summer, and the children walked out on the stones to the middle where
the water still ran fast and cold. Their mother called from the bank, but they could not hear
her over the noise, or they pretended not to. Later, when the light turned orange, they came
back with wet shoes and a jar full of small grey fish, which they kept on the window sill for
three days before letting them go again at the same place.
"""

_CODE = """def load_config(path: str) -> dict:
    with open(path) as fh:
        data = json.load(fh)
    if not data.get("name"):
        raise ValueError("config needs a name")
    return data
for item in items:
    total += item.price * item.count
    if total > limit:
        break
result = [x for x in values if x is not None]
self.cache[key] = value
return self.cache.get(key, default)
class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
    def next_token(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        start = self.pos
        return self.text[start:self.pos]
assert parse("1 + 2") == 3, "simple sum"
logger.info("loaded %d rows from %s", len(rows), name)
if err != nil {
    return fmt.Errorf("open: %w", err)
}
def test_empty_list_gives_zero():
    assert total([]) == 0
"""

_SHIFTED = dict(zip('~!@#$%^&*()_+{}|:"<>?', "`1234567890-=[]\\;',./", strict=True))
_FINGER: dict[str, tuple[str, int]] = {}
for _keys, _hand, _finger in (
    ("`1qaz", "L", 0),
    ("2wsx", "L", 1),
    ("3edc", "L", 2),
    ("45rtfgvb", "L", 3),
    ("67yuhjnm", "R", 3),
    ("8ik,", "R", 2),
    ("9ol.", "R", 1),
    ("0p;/-=[]'\\\n", "R", 0),
    (" ", "T", 0),
):
    for _k in _keys:
        _FINGER[_k] = (_hand, _finger)
_COMMON_BIGRAMS = (
    "th he in er an re on at en nd ti es or te of ed is it al ar st to nt ng se ha as ou io le "
    "ve co me de hi ri ro ic ne ea ra ce li ch ll be ma si om ur"
)
_COMMON = frozenset(_COMMON_BIGRAMS.split())
_PUNCT = frozenset(".,;:!?")
_BOUNDARY = frozenset(" \n.,;:()")


def _base_key(c: str) -> tuple[str, bool]:
    """The physical key of a character and whether Shift is needed."""
    if c.isupper():
        return c.lower(), True
    if c in _SHIFTED:
        return _SHIFTED[c], True
    return c, False


def _digraph(a: str, b: str) -> float:
    """How much slower (> 1) or faster (< 1) than typical the interval from ``a`` to ``b`` is."""
    kb, shift = _base_key(b)
    ka, _ = _base_key(a)
    if a == " ":
        f = 1.30  # word start
    elif a == "\n":
        f = 1.65  # start of a line
    elif a in _PUNCT:
        f = 1.10 if b == " " else 1.50  # after punctuation
    elif b == " ":
        f = 0.95
    elif b == "\n":
        f = 1.25
    elif (a + b).lower() in _COMMON:
        f = 0.78
    elif ka == kb:
        f = 0.90
    else:
        ha, fa = _FINGER.get(ka, ("R", 0))
        hb, fb = _FINGER.get(kb, ("R", 0))
        f = 0.86 if ha != hb else (1.32 if fa == fb else 1.04)
    if shift:
        f *= 1.35
    if kb.isdigit():
        f *= 1.20
    return f


class _Chain(NamedTuple):
    nxt: dict[str, tuple[list[str], list[float]]]
    fac: dict[str, dict[str, float]]


def _build_chain(text: str) -> _Chain:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    flat = "\n".join(line for line in lines if line) + "\n"
    counts: dict[str, dict[str, int]] = {}
    for a, b in zip(flat, flat[1:] + flat[0], strict=True):
        counts.setdefault(a, {}).setdefault(b, 0)
        counts[a][b] += 1
    nxt: dict[str, tuple[list[str], list[float]]] = {}
    fac: dict[str, dict[str, float]] = {}
    for a, row in counts.items():
        chars = sorted(row)
        cum: list[float] = []
        total = 0.0
        for c in chars:
            total += row[c]
            cum.append(total)
        nxt[a] = (chars, cum)
        fac[a] = {c: _digraph(a, c) for c in chars}
    return _Chain(nxt, fac)


_CHAINS: dict[str, _Chain] = {"prose": _build_chain(_PROSE), "code": _build_chain(_CODE)}

# --------------------------------------------------------------------------- helpers


def _lognorm(rng: random.Random, median: float, sigma: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, median * math.exp(sigma * rng.gauss(0.0, 1.0))))


def _pareto(rng: random.Random, xmin: float, alpha: float) -> float:
    return xmin * math.pow(1.0 - rng.random(), -1.0 / alpha)


def _min_jerk(x: float) -> float:
    """Share of a minimum-jerk stroke's distance covered by time share ``x``."""
    return x * x * x * (10.0 + x * (-15.0 + 6.0 * x))


@dataclass(frozen=True)
class _Typing:
    """How a state types: AR(1) tempo (mean ``mu`` in log space, sd ``sigma``, memory ``phi``),
    interval noise and error multipliers, burst length law, chance of held navigation keys."""

    mu: float
    sigma: float
    phi: float
    noise: float
    err: float
    burst_min: float
    alpha: float
    cap: int
    nav: float


def _ty_flow(p: Persona) -> _Typing:
    return _Typing(
        0.0, p.tempo_sigma, 0.7, 1.0, 1.0, p.burst_min, p.burst_alpha, 220, p.repeat_runs
    )


def _ty_hyper(p: Persona) -> _Typing:
    return _Typing(
        math.log(0.93),
        0.55 * p.tempo_sigma,
        0.8,
        0.8,
        0.8,
        1.6 * p.burst_min,
        p.burst_alpha + 0.3,
        300,
        p.repeat_runs,
    )


def _ty_neutral(p: Persona) -> _Typing:
    return _Typing(
        math.log(1.12),
        1.4 * p.tempo_sigma,
        0.7,
        1.2,
        1.2,
        max(3.0, 0.5 * p.burst_min),
        1.3,
        80,
        p.repeat_runs,
    )


# --------------------------------------------------------------------------- behaviour


class _Sim:
    """The person at the computer, in true seconds from the trace start."""

    def __init__(self, p: Persona, rng: random.Random, host: Host, base_s: float) -> None:
        self.p = p
        self.rng = rng
        self.host = host
        self.base = base_s
        self.chain = _CHAINS[p.register]
        self.keys_t: list[float] = []
        self.keys_c: list[bool] = []
        self.strokes: list[tuple[float, float, float]] = []  # start, duration, distance px
        self.clicks: list[float] = []
        self.ticks: list[float] = []
        self.focus: list[tuple[float, str]] = []
        self.app: str | None = None
        self.prev = " "
        self.z = 0.0
        self.limit = math.inf

    # ---- primitives

    def key(self, t: float, correction: bool = False) -> None:
        if t < self.limit:
            self.keys_t.append(t)
            self.keys_c.append(correction)

    def _next_char(self, prev: str) -> str:
        chars, cum = self.chain.nxt.get(prev) or self.chain.nxt[" "]
        return chars[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def repeat_run(self, t: float, correction: bool, n: int) -> float:
        """A held key: one press, then the host's auto-repeat after its delay."""
        self.key(t, correction)
        t += self.host.repeat_delay_s * self.rng.uniform(0.97, 1.03)
        step = 1.0 / self.host.repeat_hz
        for _ in range(n):
            self.key(t, correction)
            t += step * self.rng.uniform(0.98, 1.02)
        return t

    def _fix(self, t: float, n: int, unit: float) -> float:
        """Notice an error and delete ``n`` characters."""
        rng = self.rng
        t += unit * rng.uniform(2.2, 4.5)
        if n >= 3 and rng.random() < self.p.hold_backspace:
            t = self.repeat_run(t, True, n - 1 + rng.randint(0, 2))
        else:
            for i in range(n):
                if i:
                    t += unit * rng.uniform(0.75, 1.25)
                self.key(t, True)
        return t + unit * rng.uniform(0.5, 1.2)

    def burst(self, t: float, n: int, ty: _Typing) -> float:
        """Type a burst of about ``n`` keys (ending at a word boundary); returns the end time."""
        if t >= self.limit:
            return t
        rng, p = self.rng, self.p
        phi = ty.phi
        innov = math.sqrt(1.0 - phi * phi) * ty.sigma
        self.z = phi * self.z + innov * rng.gauss(0.0, 1.0)
        unit = self.base * math.exp(ty.mu + self.z)
        sd = p.iki_sd * ty.noise
        lam = 1.0 / (p.iki_tau * ty.noise)
        perr = p.error_rate * ty.err
        gauss, expo, rnd = rng.gauss, rng.expovariate, rng.random
        fac = self.chain.fac
        nxt = self._next_char
        limit = self.limit
        kt, kc = self.keys_t, self.keys_c
        prev = nxt(self.prev)
        if t < limit:
            kt.append(t)
            kc.append(False)
        typed = 1
        err_left = -1
        err_n = 0
        while typed < n or prev not in _BOUNDARY:
            if typed > n + 30 or t >= limit:
                break
            c = nxt(prev)
            if typed % 16 == 0:  # a long burst drifts too
                self.z = phi * self.z + innov * gauss(0.0, 1.0)
                unit = self.base * math.exp(ty.mu + self.z)
            g = gauss(1.0, sd)
            t += unit * fac[prev][c] * ((g if g > 0.35 else 0.35) + expo(lam))
            if t < limit:
                kt.append(t)
                kc.append(False)
            typed += 1
            if err_left > 0:
                err_left -= 1
                if err_left == 0:
                    t = self._fix(t, err_n, unit)
                    typed -= err_n
                    err_left = -1
            elif rnd() < perr:
                lag = rng.choices((0, 1, 2, 3), (0.45, 0.3, 0.15, 0.1))[0]
                if lag == 0:
                    t = self._fix(t, 1, unit)
                    typed -= 1
                else:
                    err_left, err_n = lag, lag + 1
            prev = c
        self.prev = prev
        if rnd() < ty.nav:  # hold an arrow key / space afterwards
            t = self.repeat_run(t + rng.uniform(0.25, 0.8), False, rng.randint(3, 25))
        if rnd() < perr * 0.3:  # rewrite: hold Backspace over the last phrase
            t = self.repeat_run(t + rng.uniform(0.4, 1.2), True, rng.randint(5, 30))
        return t

    def burst_len(self, ty: _Typing) -> int:
        return max(1, min(ty.cap, int(_pareto(self.rng, ty.burst_min, ty.alpha))))

    def stroke(self, t: float, dist: float, click: float = 0.0, speed: float = 1.0) -> float:
        """A pointer stroke with a minimum-jerk profile, Fitts-law duration, sometimes a
        corrective sub-movement, then a click with chance ``click``. Returns its end."""
        if t >= self.limit:
            return t
        rng = self.rng
        width = rng.uniform(8.0, 60.0)
        dur = (0.1 + 0.1 * math.log2(1.0 + dist / width)) * self.p.mouse_tempo * speed
        dur *= rng.uniform(0.85, 1.2)
        self.strokes.append((t, dur, dist))
        t += dur
        if dist > 40 and rng.random() < 0.3:
            t += rng.uniform(0.04, 0.12)
            d2 = rng.uniform(0.15, 0.3)
            self.strokes.append((t, d2, dist * rng.uniform(0.03, 0.12)))
            t += d2
        if rng.random() < click:
            t += rng.uniform(0.05, 0.18)
            if t < self.limit:
                self.clicks.append(t)
            if rng.random() < 0.12:
                t += rng.uniform(0.08, 0.16)
                if t < self.limit:
                    self.clicks.append(t)
        return t

    def flick(self, t: float, n: int, rate: float) -> float:
        """A wheel or touchpad flick of ``n`` ticks at about ``rate`` ticks per second."""
        rng = self.rng
        for _ in range(n):
            if t < self.limit:
                self.ticks.append(t)
            t += rng.uniform(0.7, 1.3) / rate
        return t

    def switch(self, t: float, app: str) -> float:
        """Bring ``app`` to the front (alt-tab or a pointer stroke to the task bar)."""
        if app == self.app or t >= self.limit:
            return t
        rng = self.rng
        if self.app is not None:
            if rng.random() < self.p.kb_switch:
                self.key(t)  # Alt
                t += rng.uniform(0.08, 0.2)
                self.key(t)  # Tab
                if rng.random() < 0.3:
                    t += rng.uniform(0.15, 0.35)
                    self.key(t)  # Tab again
                t += rng.uniform(0.05, 0.15)
            else:
                t = self.stroke(t, _lognorm(rng, 500, 0.5, 150, 1600), click=1.0)
                t += rng.uniform(0.03, 0.1)
            if t >= self.limit:  # the segment is over before the switch completes
                return t
        self.focus.append((t, app))
        self.app = app
        return t + rng.uniform(0.2, 0.6)

    # ---- steps: one action and the gap after it; ``pace`` scales the gaps

    def write_step(self, t: float, ty: _Typing, pace: float) -> float:
        rng = self.rng
        t = self.burst(t, self.burst_len(ty), ty)
        r = rng.random()
        if r < 0.15:
            t = self.stroke(t + rng.uniform(0.2, 0.8), _lognorm(rng, 200, 0.8, 20, 900), 0.9)
        elif r < 0.25:
            t = self.flick(t + rng.uniform(0.2, 0.8), rng.randint(2, 8), 12.0)
        return t + pace * (1.0 + _lognorm(rng, 3.5, 0.8, 0.0, 30.0))

    def mail_step(self, t: float, ty: _Typing, pace: float) -> float:
        rng = self.rng
        r = rng.random()
        if r < 0.45:  # read
            t = self.flick(t, rng.randint(2, 8), rng.uniform(8, 16))
            return t + pace * _lognorm(rng, 6.0, 0.6, 1.5, 30.0)
        if r < 0.65:  # open a message
            t = self.stroke(t, _lognorm(rng, 350, 0.6, 30, 1400), 1.0)
            return t + pace * _lognorm(rng, 3.0, 0.6, 0.8, 15.0)
        for i in range(rng.randint(1, 3)):  # a short reply
            if i:
                t += _lognorm(rng, 2.5, 0.6, 1.2, 10.0)
            t = self.burst(t, self.burst_len(ty), ty)
        t = self.stroke(t + rng.uniform(0.3, 1.5), _lognorm(rng, 300, 0.6, 30, 1200), 1.0)
        return t + pace * _lognorm(rng, 4.0, 0.6, 1.0, 20.0)

    def chat_step(self, t: float, ty: _Typing, pace: float) -> float:
        rng = self.rng
        for i in range(rng.choice((1, 1, 2))):
            if i:
                t += _lognorm(rng, 1.8, 0.5, 1.0, 6.0)
            t = self.burst(t, max(3, min(60, self.burst_len(ty))), ty)
        t += rng.uniform(0.15, 0.4)
        self.key(t)  # Enter
        wait = pace * _lognorm(rng, 12.0, 0.8, 2.0, 60.0)
        if rng.random() < 0.3:
            self.flick(t + wait * rng.uniform(0.2, 0.7), rng.randint(2, 6), 12.0)
        return t + wait

    def browse_step(self, t: float, ty: _Typing, pace: float) -> float:
        rng = self.rng
        r = rng.random()
        if r < 0.5:
            t = self.flick(t, rng.randint(2, 10), rng.uniform(8, 20))
        elif r < 0.8:
            t = self.stroke(t, _lognorm(rng, 400, 0.7, 20, 1800), 0.85)
        elif r < 0.9:
            t = self.burst(t, rng.randint(5, 25), ty)
            t += rng.uniform(0.2, 0.5)
            self.key(t)  # Enter
        return t + pace * _lognorm(rng, 4.0, 0.7, 0.8, 25.0)

    def media_step(self, t: float, pace: float) -> float:
        rng = self.rng
        r = rng.random()
        if r < 0.3:
            t = self.stroke(t, _lognorm(rng, 300, 0.6, 20, 1200), 1.0)
        elif r < 0.4:
            self.key(t)  # space: play / pause
        return t + pace * _lognorm(rng, 8.0, 0.7, 2.0, 40.0)

    def game_step(self, t: float, pace: float) -> float:
        rng = self.rng
        if rng.random() < 0.5:
            t = self.repeat_run(t, False, rng.randint(5, 30))
        for _ in range(rng.randint(1, 4)):
            t = self.stroke(t, _lognorm(rng, 250, 0.8, 10, 1500), 0.7, speed=0.7)
        return t + pace * _lognorm(rng, 0.8, 0.5, 0.2, 4.0)

    def other_step(self, t: float, pace: float) -> float:
        rng = self.rng
        t = self.stroke(t, _lognorm(rng, 350, 0.6, 20, 1400), 1.0)
        return t + pace * _lognorm(rng, 2.0, 0.6, 0.5, 10.0)

    def design_step(self, t: float, ty: _Typing) -> float:
        rng = self.rng
        r = rng.random()
        if r < 0.62:  # manipulate: strokes, drags and clicks
            for _ in range(rng.randint(2, 8)):
                if rng.random() < 0.3:  # drag: press at the start
                    if t < self.limit:
                        self.clicks.append(t)
                    t = self.stroke(t + 0.05, _lognorm(rng, 180, 0.8, 5, 1200), 0.0, 1.3)
                else:
                    t = self.stroke(t, _lognorm(rng, 220, 0.9, 5, 1500), 0.7)
                t += rng.uniform(0.15, 0.7)
        elif r < 0.74:  # a shortcut
            for _ in range(rng.randint(1, 3)):
                self.key(t, rng.random() < 0.08)  # Delete now and then
                t += rng.uniform(0.08, 0.25)
        elif r < 0.80:  # a label
            t = self.burst(t, rng.randint(4, 25), ty)
        else:  # look
            t += _lognorm(rng, 3.0, 0.6, 1.0, 12.0)
        return t + _lognorm(rng, 0.8, 0.6, 0.2, 4.0)

    def activity(self, t: float, t_end: float, app: str, ty: _Typing, pace: float) -> float:
        """Do what one does in ``app`` until ``t_end``."""
        cat = APPS[app]
        p = self.p
        step: Callable[[float], float]
        if app == p.mail:
            step = functools.partial(self.mail_step, ty=ty, pace=pace)
        elif cat == "communication":
            step = functools.partial(self.chat_step, ty=ty, pace=pace)
        elif cat == "browser":
            step = functools.partial(self.browse_step, ty=ty, pace=pace)
        elif cat == "media":
            step = functools.partial(self.media_step, pace=pace)
        elif cat == "games":
            step = functools.partial(self.game_step, pace=pace)
        elif cat == "design":
            step = functools.partial(self.design_step, ty=ty)
        elif cat == "other":
            step = functools.partial(self.other_step, pace=pace)
        else:
            step = functools.partial(self.write_step, ty=ty, pace=pace)
        while t < t_end and t < self.limit:
            t = step(t)
        return t

    # ---- regimes: one per activity, each runs from t to t1

    def focused(self, t: float, t1: float, kind: str) -> None:
        """flow, hyperfocus, thinking: one work app, composing/reviewing, rare short visits."""
        rng, p = self.rng, self.p
        hyper = kind == "hyperfocus"
        think = kind == "thinking"
        ty = _ty_hyper(p) if hyper else _ty_flow(p)
        t = self.switch(t, p.work[0])
        gap_med = 1500.0 if hyper else (600.0 if think else 380.0)
        next_visit = t + _lognorm(rng, gap_med, 0.5, 120.0, 3 * gap_med)
        compose_med = 300.0 if hyper else (40.0 if think else 100.0)
        compose_end = t + _lognorm(rng, compose_med, 0.6, 12.0, 6 * compose_med)
        while t < t1:
            if t >= next_visit:
                t = self.visit(t, hyper)
                next_visit = t + _lognorm(rng, gap_med, 0.5, 120.0, 3 * gap_med)
                continue
            if t >= compose_end and not think:
                t = self.review(t, hyper)
                compose_end = t + _lognorm(rng, compose_med, 0.6, 12.0, 6 * compose_med)
                continue
            t = self.burst(t, self.burst_len(ty), ty)
            if rng.random() < (0.05 if hyper else 0.12):  # place the caret
                t = self.stroke(t + rng.uniform(0.3, 1.0), _lognorm(rng, 200, 0.7, 20, 900), 1.0)
            if think and t >= compose_end:  # stop and think: nothing at all for 15-60 s
                t += _lognorm(rng, 30.0, 0.4, 15.0, 58.0)
                compose_end = t + _lognorm(rng, compose_med, 0.6, 12.0, 6 * compose_med)
                continue
            if rng.random() < (0.03 if hyper else 0.06):  # a longer look (Pareto tail)
                t += min(_pareto(rng, 6.0, 1.3), 25.0 if hyper else 45.0)
            else:
                med = p.pause_s * (0.6 if hyper else 1.0)
                t += 1.1 + _lognorm(rng, med, 0.5 if hyper else 0.75, 0.0, 20.0)

    def review(self, t: float, hyper: bool) -> float:
        rng = self.rng
        end = t + (_lognorm(rng, 8, 0.5, 3, 20) if hyper else _lognorm(rng, 15, 0.6, 5, 45))
        while t < end:
            r = rng.random()
            if r < 0.4:
                t = self.flick(t, rng.randint(2, 9), rng.uniform(8, 18))
            elif r < 0.4 + min(0.25, 4 * self.p.repeat_runs):  # hold an arrow key
                t = self.repeat_run(t, False, rng.randint(2, 20))
            elif r < 0.85:
                t = self.stroke(t, _lognorm(rng, 250, 0.8, 20, 1200), 0.9)
            t += _lognorm(rng, 2.5, 0.6, 0.6, 9.0)
        return t

    def visit(self, t: float, hyper: bool) -> float:
        """A short look elsewhere and back."""
        rng, p = self.rng, self.p
        home = self.app or p.work[0]
        app = rng.choice([a for a in (p.work[1], p.browser, p.chat, p.notes) if a != home])
        t = self.switch(t, app)
        stay = _lognorm(rng, 7, 0.5, 3, 20) if hyper else _lognorm(rng, 15, 0.7, 4, 60)
        t = self.activity(t, t + stay, app, _ty_neutral(p), 0.6)
        return self.switch(t, home)

    def neutral(self, t: float, t1: float) -> None:
        rng, p = self.rng, self.p
        pool = (p.mail, p.chat, p.browser, p.work[0], p.work[1], p.notes)
        weights = (3.0, 2.5, 2.5, 1.5, 1.0, 0.5)
        ty = _ty_neutral(p)
        first = True
        while t < t1:
            if not (first and self.app in pool):
                choices = [(a, w) for a, w in zip(pool, weights, strict=True) if a != self.app]
                app = rng.choices([a for a, _ in choices], [w for _, w in choices])[0]
                t = self.switch(t, app)
            first = False
            assert self.app is not None
            dwell = _lognorm(rng, 90.0, 0.4, 50.0, 210.0)
            t = self.activity(t, min(t + dwell, t1), self.app, ty, 1.0)

    def transitioning(self, t: float, t1: float) -> None:
        """1–2 switches a minute between tasks, the typing rhythm re-centred on every task."""
        rng, p = self.rng, self.p
        pool = (p.work[0], p.work[1], p.browser, p.notes, p.mail, p.chat)
        while t < t1:
            app = rng.choice([a for a in pool if a != self.app])
            t = self.switch(t, app)
            ty = _Typing(
                rng.uniform(math.log(0.8), math.log(1.7)),
                1.8 * p.tempo_sigma,
                0.5,
                1.3,
                rng.uniform(1.0, 2.5),
                rng.uniform(3.0, 14.0),
                rng.uniform(1.1, 1.8),
                60,
                p.repeat_runs,
            )
            dwell = _lognorm(rng, 32.0, 0.3, 18.0, 60.0)
            t = self.activity(t, min(t + dwell, t1), app, ty, 0.7)

    def distracted(self, t: float, t1: float) -> None:
        """App hops every few seconds, erratic input."""
        rng, p = self.rng, self.p
        pool = (*p.fun, p.browser, p.browser, p.chat, "explorer")
        while t < t1:
            app = rng.choice([a for a in pool if a != self.app])
            t = self.switch(t, app)
            ty = _Typing(
                rng.gauss(0.1, 0.3),
                2.5 * p.tempo_sigma,
                0.3,
                1.8,
                2.2,
                2.0,
                1.1,
                25,
                0.05,
            )
            dwell = _lognorm(rng, 2.5, 0.7, 1.0, 40.0)
            t = self.activity(t, min(t + dwell, t1), app, ty, 0.25)

    def idle(self, t: float, t1: float, nudges: bool) -> None:
        """Away: nothing, now and then a stray nudge of the mouse."""
        rng = self.rng
        if not nudges:
            return
        t += rng.expovariate(1 / 1800.0)
        while t < t1:
            self.stroke(t, rng.uniform(2.0, 25.0), 0.0, speed=0.6)
            t += rng.expovariate(1 / 1800.0)

    def reading(self, t: float, t1: float) -> None:
        """A page key or a few scroll ticks every 5–10 s in one app, little else."""
        rng, p = self.rng, self.p
        t = self.switch(t, p.reader)
        while t < t1:
            if rng.random() < p.scroll_share:
                t = self.flick(t, rng.randint(2, 6), rng.uniform(10, 18))
                if rng.random() < 0.3:
                    t = self.flick(t + rng.uniform(0.2, 0.6), rng.randint(1, 4), 12.0)
            else:
                self.key(t)
                if rng.random() < 0.2:
                    t += rng.uniform(0.2, 0.5)
                    self.key(t)
            if rng.random() < 0.04:
                t = self.stroke(t + rng.uniform(0.3, 1.0), _lognorm(rng, 200, 0.7, 10, 900), 0.3)
            wait = _lognorm(rng, 7.0, 0.22, 4.5, 11.0)
            if rng.random() < 0.04:
                wait = rng.uniform(12.0, 20.0)
            t += wait

    def design(self, t: float, t1: float) -> None:
        rng, p = self.rng, self.p
        ty = _ty_flow(p)
        t = self.switch(t, p.design_app)
        next_visit = t + _lognorm(rng, 480.0, 0.4, 180.0, 1200.0)
        while t < t1:
            if t >= next_visit:  # a reference picture in the browser
                t = self.switch(t, p.browser)
                t = self.activity(t, t + _lognorm(rng, 15, 0.5, 6, 40), p.browser, ty, 0.6)
                t = self.switch(t, p.design_app)
                next_visit = t + _lognorm(rng, 480.0, 0.4, 180.0, 1200.0)
            t = self.design_step(t, ty)

    def meeting(self, t: float, t1: float) -> None:
        """A call app in front; now and then a note or a click (mute, react)."""
        rng, p = self.rng, self.p
        ty = _ty_neutral(p)
        t = self.switch(t, p.call)
        t = self.stroke(t, _lognorm(rng, 300, 0.5, 50, 1000), 1.0)  # join
        while t < t1:
            t += _lognorm(rng, 60.0, 0.6, 10.0, 200.0)
            if t >= t1:
                break
            r = rng.random()
            if r < 0.55:
                for i in range(rng.randint(1, 3)):
                    if i:
                        t += _lognorm(rng, 3.0, 0.6, 1.0, 15.0)
                    t = self.burst(t, self.burst_len(ty), ty)
            elif r < 0.85:
                for _ in range(rng.randint(1, 2)):
                    t = self.stroke(t, _lognorm(rng, 300, 0.6, 20, 1200), 1.0)
            else:
                t = self.switch(t, p.notes)
                t = self.activity(t, t + _lognorm(rng, 40, 0.4, 15, 90), p.notes, ty, 0.6)
                t = self.switch(t, p.call)

    def run(self, seg: Seg, t0: float, t1: float) -> None:
        a = seg.kind
        if a in ("flow", "hyperfocus", "thinking"):
            self.focused(t0, t1, a)
        elif a == "neutral":
            self.neutral(t0, t1)
        elif a == "transitioning":
            self.transitioning(t0, t1)
        elif a == "distracted":
            self.distracted(t0, t1)
        elif a in ("idle", "coffee"):
            self.idle(t0, t1, nudges=a == "idle")
        elif a == "reading":
            self.reading(t0, t1)
        elif a == "design":
            self.design(t0, t1)
        elif a == "meeting":
            self.meeting(t0, t1)
        else:  # pragma: no cover - checked in generate()
            raise ValueError(f"unknown activity {a!r}")

    def last_input(self) -> float:
        ends = [-math.inf]
        if self.keys_t:
            ends.append(self.keys_t[-1])
        if self.strokes:
            s, d, _ = max(self.strokes, key=lambda x: x[0] + x[1])
            ends.append(s + d)
        for lst in (self.clicks, self.ticks):
            if lst:
                ends.append(max(lst))
        if self.focus:
            ends.append(self.focus[-1][0])
        return max(ends)


@functools.lru_cache(maxsize=64)
def _base_interval(p: Persona) -> float:
    """Seconds per typing unit such that the persona's median inter-key interval in flow (two
    plain keys in a row, less than 1 s apart: inside bursts, held keys and alt-tabs included)
    is its ``flow_iki_ms``. Measured on three hours of the persona's own flow behaviour (fixed
    seed, clean host) and refined a few times, since auto-repeat runs do not scale."""
    target = p.flow_iki_ms / 1000.0
    base = target
    for _ in range(3):
        gaps: list[float] = []
        for run in range(6):
            rng = random.Random(f"holdout|calibrate|{p!r}|{run}")
            sim = _Sim(p, rng, HOSTS["clean"], base)
            sim.limit = 1800.0
            sim.switch(0.0, p.work[0])
            sim.focused(0.5, 1800.0, "flow")
            kt, kc = sim.keys_t, sim.keys_c
            gaps += [
                kt[i] - kt[i - 1]
                for i in range(1, len(kt))
                if not kc[i] and not kc[i - 1] and kt[i] - kt[i - 1] < 1.0
            ]
        base *= target / statistics.median(gaps)
    return base


# --------------------------------------------------------------------------- the wire


def _app_ids(host: Host, salt: bytes) -> dict[str, str]:
    out = {}
    for exe in APPS:
        digest = hmac.new(salt, exe.encode(), hashlib.sha256).digest()
        if host.app_id_style == "b64":
            out[exe] = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        elif host.app_id_style == "HEX12":
            out[exe] = digest.hex()[:12].upper()
        else:
            out[exe] = digest.hex()[:16]
    return out


def _samples(
    times: list[tuple[float, float, float]],
    points: list[float],
    period: float,
    phase: float,
    partial: bool,
) -> list[tuple[float, float, int, float]]:
    """Sum strokes (start, duration, distance) and point events into the host's sample periods:
    (period end, distance, count of points, first activity in the period)."""
    bins: dict[int, list[float]] = {}
    for s, d, dist in times:
        k0 = math.floor((s - phase) / period)
        k1 = math.floor((s + d - phase) / period)
        for k in range(k0, k1 + 1):
            a = max(s, phase + k * period)
            b = min(s + d, phase + (k + 1) * period)
            if b <= a:
                continue
            share = _min_jerk((b - s) / d) - _min_jerk((a - s) / d)
            row = bins.setdefault(k, [0.0, 0.0, a])
            row[0] += dist * share
            row[2] = min(row[2], a)
    for x in points:
        k = math.floor((x - phase) / period)
        row = bins.setdefault(k, [0.0, 0.0, x])
        row[1] += 1
        row[2] = min(row[2], x)
    out = []
    for k in sorted(bins):
        dist, n, first = bins[k]
        end = phase + (k + 1) * period
        span = end - first if partial and (k - 1) not in bins else period
        out.append((end, dist, int(n), span))
    return out


class _Item(NamedTuple):
    t: float  # true time the host saw it happen (sample: period end)
    kind: str
    user: bool  # user input (counts for idle detection)
    a: Any = None
    b: Any = None
    c: Any = None


def _wire(
    sim: _Sim,
    host: Host,
    hrng: random.Random,
    ids: dict[str, str],
    t_begin: float,
    drift: float,
    total: float,
) -> list[dict[str, Any]]:
    items: list[_Item] = [
        _Item(t, "key", True, c) for t, c in zip(sim.keys_t, sim.keys_c, strict=True)
    ]
    items += [_Item(t, "focus", True, app) for t, app in sim.focus]
    period = host.sample_s
    phase = hrng.uniform(0.0, period)
    for end, dist, n, span in _samples(sim.strokes, sim.clicks, period, phase, host.partial_spans):
        span_ms = max(1, round(span * 1000 + hrng.gauss(0.0, host.span_jitter_ms)))
        speed = min(99999.0, round(dist / (span_ms / 1000), 1))
        items.append(_Item(end, "mouse", True, speed, n, span_ms))
    for end, _, n, span in _samples([], sim.ticks, period, phase, host.partial_spans):
        span_ms = max(1, round(span * 1000 + hrng.gauss(0.0, host.span_jitter_ms)))
        items.append(_Item(end, "scroll", True, n, span_ms))
    if host.reannounce_s is not None and sim.focus:
        lo, hi = host.reannounce_s
        ft = [f[0] for f in sim.focus]
        t = sim.focus[0][0] + hrng.uniform(lo, hi)
        while t < total - 5.0:
            app = sim.focus[bisect.bisect_right(ft, t) - 1][1]
            items.append(_Item(t, "focus", False, app))
            t += hrng.uniform(lo, hi)
    items.sort(key=lambda it: it.t)

    def clock(t: float) -> float:
        return t_begin + t * (1.0 + drift)

    tick = host.tick_s

    def stamp(t: float) -> float:
        return _stamp(clock(t), tick)

    # emission order (noisy hosts: hook stalls, a slow focus listener) and time stamps
    rows: list[tuple[float, float, str, tuple[Any, ...]]] = []  # emit, ts, kind, fields
    last_key_emit = -math.inf
    last_focus_emit = -math.inf
    last_end: float | None = None  # end of the last user input, host clock (noise-free)
    for it in items:
        ts = stamp(it.t)
        if it.kind == "key":
            emit = it.t
            if host.hook_delay_s:
                emit += hrng.expovariate(1.0 / host.hook_delay_s)
                if hrng.random() < host.stall_p:
                    emit += hrng.uniform(0.03, 0.15)
                emit = max(emit, last_key_emit + 1e-6)
                last_key_emit = emit
            fields: tuple[Any, ...] = (it.a,)
        elif it.kind == "focus":
            emit = it.t
            lo, hi = host.focus_delay_s
            if hi and it.user:
                emit = max(it.t + hrng.uniform(lo, hi), last_focus_emit + 1e-6)
                last_focus_emit = emit
            fields = (APPS[it.a], ids[it.a])
        elif it.kind == "mouse":
            emit = it.t + (hrng.uniform(0.0, 0.002) if tick else 0.0)
            fields = (it.a, it.b, it.c)
        else:  # scroll
            emit = it.t + (hrng.uniform(0.0, 0.002) if tick else 0.0)
            fields = (it.a, it.b)
        if it.user:
            w = round(clock(it.t), 3)
            span = fields[-1] / 1000 if it.kind in ("mouse", "scroll") else 0.0
            began = round(w - span, 3)
            if last_end is not None and began - last_end >= HOST_IDLE_S:
                rows.append(
                    (emit - 1e-7, _stamp(began, tick), "idle", (round(began - last_end, 3),))
                )
            last_end = w if last_end is None else max(last_end, w)
        rows.append((emit, ts, it.kind, fields))
        if it.kind == "focus" and it.user and hrng.random() < host.dup_focus_p:
            rows.append((emit + hrng.uniform(0.001, 0.03), ts, "focus", fields))
    if tick:
        rows.sort(key=lambda r: r[0])
    names = {
        "key": ("correction",),
        "mouse": ("speed", "clicks", "span_ms"),
        "focus": ("category", "app_id"),
        "idle": ("duration_s",),
        "scroll": ("ticks", "span_ms"),
    }
    return [
        {"kind": kind, "seq": i, "ts": ts, **dict(zip(names[kind], fields, strict=True))}
        for i, (_, ts, kind, fields) in enumerate(rows, 1)
    ]


def _stamp(w: float, tick: float) -> float:
    """A host-clock reading ``w`` as the host writes it (its tick, or milliseconds)."""
    if tick:
        return round(math.floor(w / tick) * tick, 6)
    return round(w, 3)


# --------------------------------------------------------------------------- API


def host_for(script: str, persona: str, seed: int) -> str:
    """The host a family run uses for (script, persona, seed): a rotation, so that one seed
    over the personas and scripts already holds all three hosts."""
    names = tuple(SCRIPTS)
    i = names.index(script) if script in names else zlib.crc32(script.encode())
    pn = tuple(PERSONA_BY_NAME)
    j = pn.index(persona) if persona in pn else zlib.crc32(persona.encode())
    return _HOST_ROTATION[(i + j + seed) % len(_HOST_ROTATION)]


def _choices(names: Sequence[str]) -> str:
    return ", ".join(names)


def _resolve(
    script: str | Sequence[Seg], persona: str | Persona, host: str | None, name: str | None
) -> tuple[str, tuple[Seg, ...], Persona]:
    if isinstance(script, str):
        if script not in SCRIPTS:
            raise ValueError(f"unknown script {script!r} (choose from: {_choices(tuple(SCRIPTS))})")
        segs = SCRIPTS[script]
        label = name or script
    else:
        segs = tuple(Seg(*s) for s in script)
        label = name or "custom"
        if not segs:
            raise ValueError("empty script: give at least one segment")
    for s in segs:
        if s.state not in STATES:
            raise ValueError(f"unknown state {s.state!r} (choose from: {_choices(STATES)})")
        if s.kind not in ACTIVITIES:
            raise ValueError(
                f"unknown activity {s.kind!r} (choose from: {_choices(tuple(ACTIVITIES))})"
            )
        if ACTIVITIES[s.kind] != s.state:
            raise ValueError(
                f"activity {s.kind!r} is scripted as {ACTIVITIES[s.kind]}, not {s.state}"
            )
        if not s.minutes > 0:
            raise ValueError(f"segment length must be positive, got {s.minutes!r} minutes")
    if isinstance(persona, Persona):
        pers = persona
    elif persona in PERSONA_BY_NAME:
        pers = PERSONA_BY_NAME[persona]
    else:
        raise ValueError(
            f"unknown persona {persona!r} (choose from: {_choices(tuple(PERSONA_BY_NAME))})"
        )
    if host is not None and host not in HOSTS:
        raise ValueError(f"unknown host {host!r} (choose from: {_choices(tuple(HOSTS))})")
    return label, segs, pers


def generate(
    script: str | Sequence[Seg] = "day",
    persona: str | Persona = "h170",
    host: str | None = None,
    seed: int = 1,
    *,
    name: str | None = None,
) -> Trace:
    """One trace. ``host=None`` picks the family's host for (script, persona, seed)
    (:func:`host_for`). ``script`` may be a script name or a list of :class:`Seg`."""
    if isinstance(host, int) and not isinstance(host, bool) and isinstance(seed, str):
        host, seed = seed, host  # tolerate the (script, persona, seed, host) order
    label, segs, p = _resolve(script, persona, host, name)
    key = label if isinstance(script, str) else f"{label}|{segs!r}"
    hname = host or host_for(label, p.name, seed)
    h = HOSTS[hname]
    rng = random.Random(f"holdout|behaviour|{key}|{p.name}|{seed}")
    hrng = random.Random(f"holdout|host|{key}|{p.name}|{hname}|{seed}")
    # the same start for every host (what the host clock adds is the host's business)
    t_start = EPOCH + random.Random(f"holdout|start|{key}|{p.name}|{seed}").uniform(0, 1e7)
    offset = drift = 0.0
    if h.offset_s[1]:
        offset = hrng.uniform(*h.offset_s) * hrng.choice((-1.0, 1.0))
    if h.drift_ppm[1]:
        drift = hrng.uniform(*h.drift_ppm) * 1e-6 * hrng.choice((-1.0, 1.0))

    sim = _Sim(p, rng, h, _base_interval(p))
    bounds: list[float] = [0.0]
    for s in segs:
        bounds.append(bounds[-1] + s.minutes * 60.0)
    total = bounds[-1]
    for i, s in enumerate(segs):
        a, b = bounds[i], bounds[i + 1]
        last = i == len(segs) - 1
        sim.limit = b - 4.0 if last else b
        t0 = a + (rng.uniform(0.2, 0.6) if i == 0 else rng.uniform(0.3, 2.0))
        if i == 0:  # the capture agent starts: it announces the app in front
            app = {"reading": p.reader, "design": p.design_app, "meeting": p.call}.get(
                s.kind, p.work[0] if s.state in ("FLOW", "HYPERFOCUS") else p.mail
            )
            sim.switch(t0, app)
            t0 += rng.uniform(0.3, 1.0)
        sim.run(s, t0, sim.limit)
    if sim.last_input() < total - 20.0:  # never end in silence
        sim.limit = total - 3.0
        sim.stroke(total - rng.uniform(6.0, 10.0), _lognorm(rng, 300, 0.5, 40, 900), 0.5)

    t_begin = t_start + offset
    salt = hashlib.sha256(f"holdout|salt|{hname}|{p.name}|{seed}".encode()).digest()
    events = _wire(sim, h, hrng, _app_ids(h, salt), t_begin, drift, total)
    truth = [
        TruthSpan(
            round(t_begin + bounds[i] * (1 + drift), 3),
            round(t_begin + bounds[i + 1] * (1 + drift), 3),
            s.state,
            s.kind,
        )
        for i, s in enumerate(segs)
    ]
    return Trace(label, p.name, hname, seed, truth, events)


def family(
    seeds: Sequence[int],
    personas: Sequence[Persona] = PERSONAS,
    scripts: Sequence[str] = tuple(SCRIPTS),
) -> Iterator[Trace]:
    """Every (seed, persona, script), each on its host (:func:`host_for`)."""
    for seed in seeds:
        for p in personas:
            for script in scripts:
                yield generate(script, p, None, seed)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.traces.holdout",
        description="Write one held-out synthetic activity trace (INGEST.md §4 NDJSON).",
    )
    ap.add_argument("--script", default="day", help=f"one of: {_choices(tuple(SCRIPTS))}")
    ap.add_argument("--persona", default="h170", help=f"one of: {_choices(tuple(PERSONA_BY_NAME))}")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--host", default=None, help=f"one of: {_choices(tuple(HOSTS))} (default: rotation)"
    )
    ap.add_argument("--truth", default=None, help="write the truth spans as JSON to this file")
    ap.add_argument("-o", "--output", default="-", help="trace file (default: stdout)")
    args = ap.parse_args(argv)
    try:
        tr = generate(args.script, args.persona, args.host, args.seed)
    except ValueError as exc:
        print(f"holdout: {exc}", file=sys.stderr)
        return 2
    text = tr.ndjson()
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    if args.truth:
        with open(args.truth, "w", encoding="utf-8") as fh:
            json.dump([[s.start, s.end, s.state, s.activity] for s in tr.truth], fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
