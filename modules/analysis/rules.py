"""Rules from window features to a focus state, and the hysteresis / time-in-state tracker.

Theory of operation (docs/ANALYSIS.md §3-§5)
-------------------------------------------
:func:`classify` scores every state 0-1 from ramps over the features (a ramp is 0 below its
first threshold, 1 beyond its second, linear in between), picks the best (ties in the order of
``TIE_ORDER``) and derives a confidence (best - 0.5*second best; for FLOW/HYPERFOCUS the focus
evidence against the best non-focused state) and a margin (the same over all six states).  It is
a pure function of the features and the config.

:func:`classify` judges a window with its :class:`Context`: the last minute and the last few
minutes of the same host, the silence since the last deliberate input and the person's typing
baseline (``modules.analysis.baseline``), so speed is judged relative to the person.

:class:`StateTracker` is the state machine on top: windows that show another state add their
margin to its *evidence*, which decays when they stop; a change needs enough evidence from at
least two windows.  So one odd window never flips the state and a steady activity stays put.
Time in state is measured on event time (``window_end``) only and survives excursions of up
to ``blip_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from bus.messages import FocusState
from modules.analysis.baseline import REFERENCE_IKI_MS, Baseline
from modules.analysis.features import FeatureParams, WindowFeatures

Ramp = tuple[float, float]

TIE_ORDER: tuple[FocusState, ...] = (
    FocusState.IDLE,
    FocusState.DISTRACTED,
    FocusState.HYPERFOCUS,
    FocusState.FLOW,
    FocusState.TRANSITIONING,
    FocusState.NEUTRAL,
)

SIGNED_RAMPS = frozenset(
    {
        "dense_excess",
        "dense_onset_excess",
        "dense_hold_excess",
        "dense_settled_excess",
        "dense_rhythm",
        "brisk_rhythm",
        "brisk_hold_rhythm",
        "brisk_steadier",
        "brisk_excess",
        "fresh_excess",
    }
)
"""Ramps over a signed quantity (the excess over the person's flow duty is negative when a
span is lighter than their flow): their ends may be negative."""
HEADROOM = 0.3
"""Least headroom (1 - flow duty) density is measured in: near a flow duty of 1, a few
percent of noise would otherwise count as most of the pause time gone."""
FOCUSED = frozenset({FocusState.FLOW, FocusState.HYPERFOCUS})
HELD_WATCHED: Ramp = (0.5, 0.75)
"""A thinking pause is held (flow_held) once the host has been watched for this share of
``context_s`` (a ramp): "the last minutes were focused typing" needs the minutes."""
FRESH_FADE_S = 10.0
"""A fresh visit is judged on the window alone until the medium span covers it: its say
fades over this long (one window step) once the visit is ``focus_s`` old, when flow_now
judges the visit on the whole minute."""
RETURN_GAP_S = 20.0
"""A key, scroll sample or click at least this long after the previous one is a *return*
(Context.returns, docs §2.1): someone listening in a call comes back three or four times in
four minutes."""


@dataclass(frozen=True)
class AnalysisConfig:
    """``[analysis]``: feature parameters, rule thresholds (ramp ends), baseline and stability.

    Every default is explained in docs/ANALYSIS.md §3-§6.
    """

    pause_s: float = 2.0
    """A key gap longer than this is a pause, not part of the typing rhythm."""
    burst_gap_s: float = 1.0
    """Longest gap inside a typing burst."""
    burst_min_keys: int = 5
    """Keys needed for a run to count as a burst."""
    rapid_dwell_s: float = 10.0
    """A switch away from an app visited for less than this is a rapid switch."""
    return_s: float = 60.0
    """A switch back to an app left less than this ago is a return, not a *new* switch."""
    settled_s: float = 120.0
    """An app in front at least this long is settled in: the switch rate after leaving it is
    measured on its own (``unsettled_switches_per_min``)."""
    settled_span_s: float = 90.0
    """The least time that rate is measured over."""
    min_iki_samples: int = 8
    """Typing intervals needed before the rhythm (IKI mean/CV) is trusted."""
    focus_s: float = 60.0
    """The medium span (last minute) that typing, density and hopping are judged on."""
    context_s: float = 240.0
    """The long span (last minutes) that switch rate, dwell and sustained typing are judged on."""
    change_min_confidence: float = 0.3
    """A window adds evidence for a new state only with at least this margin."""
    change_evidence: float = 1.4
    """Evidence (sum of margins of windows for the new state) needed for a change."""
    quick_evidence: float = 0.9
    """The same into IDLE (a long silence) and DISTRACTED (hopping every few seconds)."""
    hyperfocus_evidence: float = 1.6
    """The same into HYPERFOCUS (its density is already judged over the last minute)."""
    leave_hyperfocus_evidence: float = 3.0
    """The same from HYPERFOCUS into FLOW: a slower stretch inside a long session is not the
    end of it."""
    leave_distracted_evidence: float = 2.8
    """The same from DISTRACTED into TRANSITIONING or NEUTRAL: hopping that slows for a minute
    has not become ordinary work (into FLOW or IDLE it is the usual need)."""
    evidence_decay: float = 0.3
    """Evidence for other states is multiplied by this on every window (0-1)."""
    blip_s: float = 90.0
    """A state left and re-entered within this keeps its time in state (docs §5): a minute
    away shows as up to a minute and a half of another state (leaving is seen sooner than
    coming back)."""
    session_break_s: float = 60.0
    """A stay longer than this in anything but FLOW or HYPERFOCUS ends a hyperfocus session
    (docs §5)."""
    hyperfocus_blip_s: float = 600.0
    """HYPERFOCUS re-entered within this after a lighter stretch of FLOW keeps its time in
    state: one session at two depths (docs §5)."""
    hyperfocus_settled_s: float = 600.0
    """After this long in HYPERFOCUS, staying needs only ``dense_settled_excess``: a session's
    slower stretches, at the person's flow density or a little above it, do not end it."""

    reset_gap_s: float = 120.0
    """A gap between windows longer than this restarts the tracker."""
    silence_run_s: float = 3.0
    """A moving-mouse sample counts as input only with another one this close before it (a
    lone nudge of the pointer is not someone working)."""

    baseline_iki_ms: float = 160.0
    """Population typical typing IKI of a new user, ms (docs §3.1)."""
    baseline_kpm: float = 220.0
    """Population typical keys/min in typing windows of a new user."""
    baseline_prior_windows: float = 6.0
    """Weight of the population prior, in typing windows."""
    baseline_half_life_windows: float = 2000.0
    """Typing windows after which the old baseline weighs half (about a working day)."""
    baseline_min_intervals: int = 20
    """Typing intervals a window needs to update the baseline."""
    baseline_flow_duty: float = 0.7
    """Population typical typing duty over minutes of flow (docs §3.1)."""
    baseline_duty_prior_windows: float = 6.0
    """Weight of that prior, in flow windows."""
    baseline_rhythm_windows: float = 18.0
    """Flow windows the person's flow rhythm needs before it is used (docs §3.1)."""

    typing_keys: Ramp = (6.0, 12.0)
    flow_kpm: Ramp = (130.0, 190.0)
    flow_rel_iki: Ramp = (1.4, 1.8)
    flow_rhythm_rel: Ramp = (1.1, 1.2)
    steady_rcv: Ramp = (0.42, 0.62)
    flow_pointer: Ramp = (0.3, 0.5)
    flow_non_work: Ramp = (0.3, 0.5)
    one_app_share: Ramp = (0.5, 0.7)
    settled_app_share: Ramp = (0.65, 0.8)
    settled_long_share: Ramp = (0.8, 0.9)
    fresh_visit_s: Ramp = (30.0, 40.0)
    fresh_excess: Ramp = (-0.7, -0.4)
    hold_kpm: Ramp = (50.0, 90.0)
    hold_burst_keys: Ramp = (8.0, 12.0)
    hold_pointer: Ramp = (0.15, 0.3)
    hold_spm: Ramp = (1.0, 2.0)
    dense_excess: Ramp = (0.22, 0.4)
    dense_onset_excess: Ramp = (0.15, 0.3)
    dense_hold_excess: Ramp = (0.1, 0.22)
    dense_settled_excess: Ramp = (-0.15, 0.0)
    dense_rhythm: Ramp = (0.02, 0.06)
    brisk_rhythm: Ramp = (0.08, 0.14)
    brisk_hold_rhythm: Ramp = (0.12, 0.18)
    brisk_steadier: Ramp = (0.0, 0.02)
    brisk_excess: Ramp = (-0.05, 0.05)
    dense_hold_app_share: Ramp = (0.6, 0.8)
    dense_app_share: Ramp = (0.85, 0.95)
    hyperfocus_stay_s: Ramp = (900.0, 1200.0)
    hop_spm: Ramp = (3.0, 6.0)
    hop_app_share: Ramp = (0.75, 0.55)
    erratic_rcv: Ramp = (0.7, 1.0)
    distracted_hold_spm: Ramp = (1.0, 2.0)
    transition_spm: Ramp = (0.6, 0.9)
    transition_recent_spm: Ramp = (0.5, 1.0)
    transition_max_spm: Ramp = (3.0, 4.0)
    engaged_kpm: Ramp = (4.0, 12.0)
    engaged_pointer: Ramp = (0.05, 0.15)
    engaged_spm: Ramp = (0.5, 2.0)
    idle_silence_s: Ramp = (20.0, 28.0)
    focus_idle_silence_s: Ramp = (36.0, 44.0)
    attend_comm_share: Ramp = (0.6, 0.8)
    attend_returns: Ramp = (1.0, 3.0)
    attend_idle_silence_s: Ramp = (45.0, 60.0)

    def __post_init__(self) -> None:
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if isinstance(value, tuple):
                ok = len(value) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value
                )
                if not ok or (f.name not in SIGNED_RAMPS and any(v < 0 for v in value)):
                    what = "finite numbers" if f.name in SIGNED_RAMPS else "finite numbers >= 0"
                    raise ValueError(
                        f"analysis.{f.name} must be a ramp [a, b] of two {what}, got {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"analysis.{f.name} must be a number, got {value!r}")
            elif f.name in ("change_min_confidence", "evidence_decay", "baseline_flow_duty"):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(
                        f"analysis.{f.name} must be a number from 0 to 1, got {value!r}"
                    )
            elif not math.isfinite(value) or value <= 0:
                raise ValueError(f"analysis.{f.name} must be a positive number, got {value!r}")
        if self.burst_min_keys < 2:
            raise ValueError(
                f"analysis.burst_min_keys must be at least 2, got {self.burst_min_keys}"
            )

    def feature_params(self) -> FeatureParams:
        return FeatureParams(
            pause_s=self.pause_s,
            burst_gap_s=self.burst_gap_s,
            burst_min_keys=self.burst_min_keys,
            rapid_dwell_s=self.rapid_dwell_s,
            return_s=self.return_s,
            settled_s=self.settled_s,
            settled_span_s=self.settled_span_s,
        )

    def baseline(self) -> Baseline:
        """A new user's baseline (the population prior)."""
        return Baseline(
            population_iki_ms=self.baseline_iki_ms,
            population_kpm=self.baseline_kpm,
            prior_windows=self.baseline_prior_windows,
            half_life_windows=self.baseline_half_life_windows,
            min_intervals=self.baseline_min_intervals,
            flow_duty_prior=self.baseline_flow_duty,
            duty_prior_windows=self.baseline_duty_prior_windows,
            rhythm_min_windows=self.baseline_rhythm_windows,
        )


def up(x: float, ramp: Ramp) -> float:
    """0 at or below ``ramp[0]``, 1 at or above ``ramp[1]`` (decreasing if ramp[0] > ramp[1])."""
    a, b = ramp
    if a == b:
        return 1.0 if x >= a else 0.0
    t = (x - a) / (b - a)
    return 0.0 if t <= 0.0 else 1.0 if t >= 1.0 else t


def down(x: float, ramp: Ramp) -> float:
    """1 at or below ``ramp[0]``, 0 at or above ``ramp[1]``."""
    return 1.0 - up(x, ramp)


@dataclass(frozen=True, slots=True)
class Classification:
    """Raw result for one window: every state's score, the winner and its confidence."""

    state: FocusState
    confidence: float
    scores: tuple[tuple[FocusState, float], ...]
    margin: float | None = None
    """Best − ½·second best over all six states (FLOW and HYPERFOCUS compete here); decides
    whether the window may propose a change.  None: same as ``confidence``."""
    terms: tuple[tuple[str, float], ...] = ()
    """The named rule terms the scores were made of (docs/ANALYSIS.md §8, ``--explain``)."""

    @property
    def decisiveness(self) -> float:
        return self.confidence if self.margin is None else self.margin

    def score(self, state: FocusState) -> float:
        for s, v in self.scores:
            if s is state:
                return v
        return 0.0


@dataclass(frozen=True, slots=True)
class Context:
    """What a window is judged with besides its own 30 s (docs/ANALYSIS.md §2.1)."""

    medium: WindowFeatures
    """Features of the last ``focus_s`` (a minute)."""
    long: WindowFeatures
    """Features of the last ``context_s`` (a few minutes)."""
    silence_s: float
    """Seconds since the last deliberate input (key, click, scroll, switch, pointer run)."""
    scale: float = 1.0
    """Baseline IKI / reference IKI of this person (1 = the reference typist)."""
    flow_duty: float = 0.7
    """This person's typical typing duty over minutes of flow (the baseline's)."""
    hyperfocus_s: float | None = None
    """Time in state of the reported HYPERFOCUS (None: not in HYPERFOCUS): staying needs less
    density than entering, and after ``hyperfocus_settled_s`` less still."""
    flow_rhythm: tuple[float, float] | None = None
    """This person's flow rhythm (core IKI ms, core CV), None while not yet learnt."""
    in_session: bool = False
    """FLOW inside a hyperfocus session (a lighter stretch it may resume from, docs §5)."""
    watched_s: float = math.inf
    """How long before ``window_end`` this host has been watched (its first event, or the
    tracker's last restart): the spans are clipped to it, and a thinking pause is held only
    once the long span covers enough of it (docs §2.1)."""
    returns: int = 0
    """Keys, scroll samples and clicks in the long span that came ``RETURN_GAP_S`` or more
    after the previous one."""


def _focused_typing(x: WindowFeatures, cfg: AnalysisConfig, scale: float) -> float:
    """Steady typing at a good pace *for this person*: keys/min are judged as the reference
    typist's (× scale) and the median IKI against the person's own (÷ scale)."""
    typing = up(x.key_count, cfg.typing_keys) if x.iki_n >= cfg.min_iki_samples else 0.0
    rel_iki = x.iki_median_ms / (REFERENCE_IKI_MS * scale)
    return min(
        typing,
        up(x.keys_per_min * max(scale, 1.0), cfg.flow_kpm),
        down(rel_iki, cfg.flow_rel_iki),
        down(x.iki_rcv, cfg.steady_rcv),
    )


def _sustained_typing(x: WindowFeatures, cfg: AnalysisConfig, scale: float) -> float:
    """Focused typing over the last minutes, thinking pauses included: a lower pace, but long
    steady bursts at the person's speed."""
    typing = up(x.key_count, cfg.typing_keys) if x.iki_n >= cfg.min_iki_samples else 0.0
    rel_iki = x.iki_median_ms / (REFERENCE_IKI_MS * scale)
    return min(
        typing,
        up(x.keys_per_min * max(scale, 1.0), cfg.hold_kpm),
        up(x.burst_mean_keys, cfg.hold_burst_keys),
        down(rel_iki, cfg.flow_rel_iki),
        down(x.iki_rcv, cfg.steady_rcv),
    )


def _excess(x: WindowFeatures, flow_duty: float) -> float:
    """The share of this person's flow pause time that is gone: (duty - flow duty) / (1 - flow
    duty), the headroom at least ``HEADROOM``."""
    return (x.typing_duty - flow_duty) / max(1.0 - flow_duty, HEADROOM)


def _dense(
    x: WindowFeatures,
    cfg: AnalysisConfig,
    flow_duty: float,
    ramp: Ramp | None = None,
    app: Ramp | None = None,
) -> float:
    """Denser than this person's flow, hardly leaving the app."""
    return min(
        up(_excess(x, flow_duty), ramp or cfg.dense_excess),
        up(x.dominant_app_share, app or cfg.dense_app_share),
    )


def _brisker(x: WindowFeatures, cfg: AnalysisConfig, rhythm: tuple[float, float] | None) -> float:
    """Quicker and steadier than this person's flow: (1 - core IKI / theirs) + (1 - core CV /
    theirs) on ``dense_rhythm``; 1 (no say) while their flow rhythm is not known."""
    gain = _gain(x, cfg, rhythm)
    return 1.0 if gain is None else up(gain[0] + gain[1], cfg.dense_rhythm)


def _gain(
    x: WindowFeatures, cfg: AnalysisConfig, rhythm: tuple[float, float] | None
) -> tuple[float, float] | None:
    """How much quicker and how much steadier than this person's flow ``x`` is typed: (1 - core
    IKI / theirs, 1 - core CV / theirs); None while their flow rhythm is not known or ``x`` has
    too few typing intervals to tell."""
    if rhythm is None or x.iki_n < cfg.min_iki_samples or x.iki_core_ms <= 0:
        return None
    iki, cv = rhythm
    return 1.0 - x.iki_core_ms / iki, 1.0 - x.iki_core_cv / cv


def _own_pace(x: WindowFeatures, cfg: AnalysisConfig, rhythm: tuple[float, float] | None) -> float:
    """Not much slower than this person's own flow: core IKI / their flow core IKI on
    ``flow_rhythm_rel`` (decreasing); 1 (no say) while their flow rhythm is not known or the span
    has too few typing intervals to tell (a thinking pause)."""
    if rhythm is None or x.iki_n < cfg.min_iki_samples or x.iki_core_ms <= 0:
        return 1.0
    return down(x.iki_core_ms / rhythm[0], cfg.flow_rhythm_rel)


def _non_work(x: WindowFeatures) -> float:
    """Share of time in apps that are not work (communication, media, games; browser half)."""
    return min(x.comm_share + x.leisure_share + 0.5 * x.browser_share, 1.0)


def _keyboard_work(x: WindowFeatures, cfg: AnalysisConfig) -> dict[str, float]:
    """Keyboard work in one work app over ``x``: mostly one app, little pointer, little time in
    apps that are not work (the parts ``one_app``, ``pointer``, ``non_work`` of a rule)."""
    return {
        "one_app": up(x.dominant_app_share, cfg.one_app_share),
        "pointer": down(x.pointer_frac, cfg.flow_pointer),
        "non_work": down(_non_work(x), cfg.flow_non_work),
    }


def _switching(x: WindowFeatures, cfg: AnalysisConfig) -> float:
    return min(up(x.switches_per_min, cfg.hop_spm), up(x.dominant_app_share, cfg.hop_app_share))


def _distracted(x: WindowFeatures, cfg: AnalysisConfig) -> float:
    typing = up(x.key_count, cfg.typing_keys) if x.iki_n >= cfg.min_iki_samples else 0.0
    erratic = min(typing, up(x.iki_rcv, cfg.erratic_rcv))
    return _switching(x, cfg) * (0.75 + 0.25 * max(x.rapid_switch_ratio, erratic, _non_work(x)))


def _engaged(x: WindowFeatures, cfg: AnalysisConfig) -> float:
    return max(
        up(x.keys_per_min + x.scroll_ticks_per_min, cfg.engaged_kpm),
        up(x.pointer_frac, cfg.engaged_pointer),
        up(x.switches_per_min, cfg.engaged_spm),
    )


class _Terms:
    """The named terms a window's scores are made of, in the order they are computed (for
    ``skelly replay --explain``, docs/ANALYSIS.md §8): ``all`` is a min of conditions,
    ``any`` a max of alternatives, each part recorded as ``name.part``."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[tuple[str, float]] = []

    def all(self, name: str, **parts: float) -> float:
        return self._add(name, min(parts.values()), parts)

    def any(self, name: str, **parts: float) -> float:
        return self._add(name, max(parts.values()), parts)

    def one(self, name: str, value: float) -> float:
        self.items.append((name, value))
        return value

    def _add(self, name: str, value: float, parts: dict[str, float]) -> float:
        self.items.append((name, value))
        self.items.extend((f"{name}.{k}", v) for k, v in parts.items())
        return value


def classify(f: WindowFeatures, cfg: AnalysisConfig, ctx: Context | None = None) -> Classification:
    """Score the six states for one window (docs/ANALYSIS.md §3).  Without ``ctx`` the window
    is its own context (a reference typist, silence = the window's quiet tail).  The named
    terms behind the scores are kept in :attr:`Classification.terms`."""
    if ctx is None:
        ctx = Context(f, f, f.quiet_tail_s, 1.0, cfg.baseline_flow_duty)
    m, c, k = ctx.medium, ctx.long, ctx.scale
    t = _Terms()
    # FLOW / HYPERFOCUS: steady typing at the person's pace in one app, keyboard work, settled
    # settled in one app: over the last minute, or over the last minutes with trips and back
    settled = t.any(
        "settled",
        minute=up(m.dominant_app_share, cfg.settled_app_share),
        minutes=up(c.dominant_app_share, cfg.settled_long_share),
    )
    flow_now = t.all(
        "flow_now",
        typing=_focused_typing(m, cfg, k),
        **_keyboard_work(m, cfg),
        settled=settled,
    )
    # a thinking pause inside focused work: the last minutes were focused typing and nothing
    # in the last minute says otherwise (no pointer work, no switching, not mostly in mail or
    # chat); silence ends it (IDLE)
    flow_held = t.all(
        "flow_held",
        typing=_sustained_typing(c, cfg, k),
        **_keyboard_work(c, cfg),
        settled=up(c.dominant_app_share, cfg.settled_app_share),
        minute_pointer=down(m.pointer_frac, cfg.hold_pointer),
        minute_switches=down(m.new_switches_per_min, cfg.hold_spm),
        minute_non_work=down(_non_work(m), cfg.flow_non_work),
        watched=up(
            ctx.watched_s, (HELD_WATCHED[0] * cfg.context_s, HELD_WATCHED[1] * cfg.context_s)
        ),
    )
    # ... or a fresh visit: the app came to the front 30-70 s ago and the whole window in it
    # was focused typing at about the person's flow density, while the last minute still
    # holds the app before it (flow_now's settled and one_app cannot see the visit yet)
    flow_fresh = t.all(
        "flow_fresh",
        visit=up(f.front_visit_s, cfg.fresh_visit_s),
        young=down(f.front_visit_s, (cfg.focus_s, cfg.focus_s + FRESH_FADE_S)),
        typing=_focused_typing(f, cfg, k),
        density=up(_excess(f, ctx.flow_duty), cfg.fresh_excess),
        **_keyboard_work(f, cfg),
    )
    # ... and, once the person's flow rhythm is known, typing in the last minute not much
    # slower than it: a fluent reply at ordinary pace after flow is ordinary work
    flow_core = t.all(
        "flow_core",
        focused=max(flow_now, flow_held, flow_fresh),
        own_pace=_own_pace(m, cfg, ctx.flow_rhythm),
    )
    # denser than this person's flow over the last minutes, or over the last minute while the
    # last minutes are already on their way there (a session's onset)
    if ctx.hyperfocus_s is not None:  # staying takes less than entering (a trip included)
        hold = (
            cfg.dense_settled_excess
            if ctx.hyperfocus_s >= cfg.hyperfocus_settled_s
            else cfg.dense_hold_excess
        )
        dense_c = t.one(
            "dense_minutes", _dense(c, cfg, ctx.flow_duty, hold, cfg.dense_hold_app_share)
        )
        brisker = 1.0
    else:
        # resuming a session after a lighter stretch is staying, not a new onset
        brisker = t.one("brisker", 1.0 if ctx.in_session else _brisker(c, cfg, ctx.flow_rhythm))
        dense_c = t.one("dense_minutes", min(_dense(c, cfg, ctx.flow_duty), brisker))
    excess_c = _excess(c, ctx.flow_duty)
    no_lighter = up(excess_c, cfg.brisk_excess)  # than the person's flow, over C
    gain = _gain(c, cfg, ctx.flow_rhythm)
    if gain is not None:
        # ... or clearly quicker and steadier than their flow over the last minutes and no
        # lighter: a new user's flow duty is still near the prior for a while, and a session
        # no denser than that prior would hide (and be learnt as their flow) until then.
        # Staying by rhythm alone takes a clearly brisker rhythm still (the density hold is
        # there as well): the end of a dense flow stretch misread as a session is not held
        staying = ctx.hyperfocus_s is not None
        dense_c = max(
            dense_c,
            t.all(
                "brisk_minutes",
                rhythm=up(
                    gain[0] + gain[1], cfg.brisk_hold_rhythm if staying else cfg.brisk_rhythm
                ),
                steadier=up(gain[1], cfg.brisk_steadier),
                density=no_lighter,
                one_app=up(
                    c.dominant_app_share,
                    cfg.dense_hold_app_share if staying or ctx.in_session else cfg.dense_app_share,
                ),
            ),
        )
    onset = t.all(
        "onset",
        minute=_dense(m, cfg, ctx.flow_duty),
        minutes=up(excess_c, cfg.dense_onset_excess),
        brisker=brisker,
    )
    # ... or lasting: one app in front for 15-20 minutes without a trip away, typed no
    # lighter than their flow (SPEC §4: "lasts"; every family's flow has a trip every few
    # minutes, its sessions hardly any), when density and rhythm cannot tell them apart
    lasting = t.all(
        "lasting",
        stay=up(c.front_visit_s, cfg.hyperfocus_stay_s),
        density=no_lighter,
    )
    dense = t.one("dense", max(dense_c, onset, lasting))
    hyperfocus = min(flow_core, dense)
    flow = min(flow_core, 1.0 - dense)
    # DISTRACTED: hopping every few seconds, seen in the window or over the last minute
    # ... or over the last minutes while the last minute still has a switch or two: hopping
    # that slows for a minute (half a minute on one video) has not stopped
    distracted_held = t.all(
        "distracted_held",
        minutes=_distracted(c, cfg),
        minute_switches=up(m.switches_per_min, cfg.distracted_hold_spm),
        not_focused=1.0 - flow_core,
    )
    distracted = t.any(
        "distracted",
        window=_distracted(f, cfg),
        minute=_distracted(m, cfg),
        held=distracted_held,
    )
    switching = t.any("switching", window=_switching(f, cfg), minute=_switching(m, cfg))
    # attending a meeting: the last minutes in a call, the person back after pause upon pause
    attending = t.all(
        "attending",
        call=up(c.comm_share, cfg.attend_comm_share),
        returns=up(ctx.returns, cfg.attend_returns),
    )
    engaged = t.any(
        "engaged", window=_engaged(f, cfg), minute=_engaged(m, cfg), attending=attending
    )
    # TRANSITIONING: a switch every minute or so over the last minutes, no app settled in,
    # not hopping, not focused typing
    transitioning = t.all(
        "transitioning",
        rate=up(c.unsettled_switches_per_min, cfg.transition_spm),
        recent=up(m.switches_per_min, cfg.transition_recent_spm),
        not_hopping=down(m.switches_per_min, cfg.transition_max_spm),
        not_switching=1.0 - switching,
        not_focused=1.0 - flow_core,
        not_attending=1.0 - attending,
        engaged=engaged,
    )
    # IDLE: a silence; inside focused work a thinking pause may last longer, in a meeting
    # longer still (but a minute of silence is IDLE whatever came before)
    focused_before = t.one(
        "focused_before", max(_focused_typing(c, cfg, k), _sustained_typing(c, cfg, k))
    )
    idle = t.any(
        "idle",
        silence=(1.0 - attending)
        * max(
            (1.0 - focused_before) * up(ctx.silence_s, cfg.idle_silence_s),
            up(ctx.silence_s, cfg.focus_idle_silence_s),
        ),
        long_silence=up(ctx.silence_s, cfg.attend_idle_silence_s),
    )
    neutral = min(engaged, 1.0 - max(idle, distracted, flow_core, transitioning))

    raw = {
        FocusState.IDLE: idle,
        FocusState.DISTRACTED: distracted,
        FocusState.HYPERFOCUS: hyperfocus,
        FocusState.FLOW: flow,
        FocusState.TRANSITIONING: transitioning,
        FocusState.NEUTRAL: neutral,
    }
    scores = tuple((s, _unit(raw[s])) for s in TIE_ORDER)
    ranked = sorted(scores, key=lambda sv: -sv[1])  # stable: ties keep TIE_ORDER
    best_state, best = ranked[0]
    margin = _unit(best - 0.5 * ranked[1][1])
    if best_state in FOCUSED:
        # FLOW and HYPERFOCUS are two depths of one focus: doubt between them is no doubt that
        # the user is focused, so the sibling is not a competitor; the evidence is flow_core
        best = flow_core
        second = max(v for s, v in scores if s not in FOCUSED)
    else:
        second = ranked[1][1]
    return Classification(best_state, _unit(best - 0.5 * second), scores, margin, tuple(t.items))


def _unit(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


# --- stability and time in state --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    previous: FocusState
    current: FocusState
    confidence: float
    at: float
    previous_duration_s: float


@dataclass(frozen=True, slots=True)
class TrackerStep:
    """What the tracker concluded for one window."""

    state: FocusState
    confidence: float
    raw_state: FocusState
    time_in_state_s: float
    transition: Transition | None = None
    accepted: bool = True
    """False when the window was ignored (not after the previous one)."""
    pending: tuple[tuple[FocusState, float, int, float], ...] = ()
    """(state, evidence, votes, evidence needed) of every change under way after this window."""


QUICK = frozenset({FocusState.IDLE, FocusState.DISTRACTED})
CALMER = frozenset({FocusState.TRANSITIONING, FocusState.NEUTRAL})
"""Leaving DISTRACTED for these needs ``leave_distracted_evidence``: hopping that slows for a
minute has not become ordinary work."""


@dataclass
class StateTracker:
    """Evidence-based stability and blip-tolerant time in state (docs/ANALYSIS.md §4-§5).

    Every window whose raw state differs from the current one adds its margin (if at least
    ``change_min_confidence``) to that state's evidence; every window multiplies the evidence of
    the states it does not show by ``evidence_decay``.  The state changes when a state's
    evidence reaches its need: ``quick_evidence`` into IDLE and DISTRACTED,
    ``hyperfocus_evidence`` into HYPERFOCUS, ``leave_hyperfocus_evidence`` from HYPERFOCUS
    into FLOW, ``change_evidence`` otherwise, and at least two windows have voted for it.  Time
    in state runs on ``window_end``; a state re-entered within ``blip_s`` of leaving it keeps
    the time it had (the excursion included), HYPERFOCUS re-entered within
    ``hyperfocus_blip_s`` after lighter FLOW keeps the session's time, and FLOW re-entered from
    HYPERFOCUS within ``hyperfocus_blip_s`` keeps FLOW's (docs §5).
    """

    change_evidence: float = 1.4
    quick_evidence: float = 0.9
    hyperfocus_evidence: float = 1.6
    leave_hyperfocus_evidence: float = 3.0
    leave_distracted_evidence: float = 2.8
    evidence_decay: float = 0.3
    change_min_confidence: float = 0.3
    blip_s: float = 90.0
    session_break_s: float = 60.0
    hyperfocus_blip_s: float = 600.0
    hyperfocus_settled_s: float = 600.0
    reset_gap_s: float = 120.0
    state: FocusState | None = None
    since: float = 0.0
    last_end: float | None = None
    evidence: dict[FocusState, float] = field(default_factory=dict)
    votes: dict[FocusState, int] = field(default_factory=dict)
    left: dict[FocusState, tuple[float, float]] = field(default_factory=dict)
    """state -> (since, left at) of the last stay in it, for the blip rule."""
    entered: float = 0.0
    """When the current stay began (``since`` may be earlier, by the blip rules)."""
    session: tuple[float, float] | None = None
    """(since, left at) of the last HYPERFOCUS stay while only FLOW (or stays elsewhere of at
    most ``session_break_s``) followed it: the session the hyperfocus blip rule may resume."""

    @classmethod
    def from_config(cls, cfg: AnalysisConfig) -> StateTracker:
        return cls(
            change_evidence=cfg.change_evidence,
            quick_evidence=cfg.quick_evidence,
            hyperfocus_evidence=cfg.hyperfocus_evidence,
            leave_hyperfocus_evidence=cfg.leave_hyperfocus_evidence,
            leave_distracted_evidence=cfg.leave_distracted_evidence,
            evidence_decay=cfg.evidence_decay,
            change_min_confidence=cfg.change_min_confidence,
            blip_s=cfg.blip_s,
            session_break_s=cfg.session_break_s,
            hyperfocus_blip_s=cfg.hyperfocus_blip_s,
            hyperfocus_settled_s=cfg.hyperfocus_settled_s,
            reset_gap_s=cfg.reset_gap_s,
        )

    def in_session(self, at: float) -> bool:
        """FLOW inside a hyperfocus session: a lighter stretch HYPERFOCUS may still resume
        (left at most ``hyperfocus_blip_s`` before ``at``, or a settled session — one that
        lasted ``hyperfocus_settled_s`` — with no real break since, docs §5)."""
        return (
            self.state is FocusState.FLOW
            and self.session is not None
            and (
                at - self.session[1] <= self.hyperfocus_blip_s
                or self.session[1] - self.session[0] >= self.hyperfocus_settled_s
            )
        )

    def need(self, current: FocusState, new: FocusState) -> float:
        if current is FocusState.HYPERFOCUS and new is FocusState.FLOW:
            base = self.leave_hyperfocus_evidence
        elif current is FocusState.DISTRACTED and new in CALMER:
            base = self.leave_distracted_evidence
        elif new is FocusState.HYPERFOCUS:
            base = self.hyperfocus_evidence
        elif new in QUICK:
            base = self.quick_evidence
        else:
            base = self.change_evidence
        return base

    def _enter(self, state: FocusState, at: float) -> None:
        leaving = self.state
        if leaving is not None:
            self.left[leaving] = (self.since, at)
            if leaving is FocusState.HYPERFOCUS:
                self.session = (self.since, at)
            elif leaving is not FocusState.FLOW and at - self.entered > self.session_break_s:
                self.session = None  # a real break away from focus: the session ended
        back = self.left.get(state)
        # FLOW back from a deeper stretch (HYPERFOCUS) is the same focus: its clock runs on
        deeper_and_back = leaving is FocusState.HYPERFOCUS and state is FocusState.FLOW
        away = self.hyperfocus_blip_s if deeper_and_back else self.blip_s
        self.since = back[0] if back is not None and at - back[1] <= away else at
        if (
            state is FocusState.HYPERFOCUS
            and self.session is not None
            and at - self.session[1] <= self.hyperfocus_blip_s
        ):
            self.since = self.session[0]
        self.entered = at
        self.state = state
        self.evidence.clear()
        self.votes.clear()

    def update(self, window_end: float, full: Classification) -> TrackerStep:
        """Feed one window's classification."""
        raw = full.state
        if self.state is not None and self.last_end is not None and window_end <= self.last_end:
            return TrackerStep(
                self.state,
                full.score(self.state),
                raw,
                max(self.last_end - self.since, 0.0),
                accepted=False,
            )
        transition: Transition | None = None
        gap = self.last_end is not None and window_end - self.last_end > self.reset_gap_s
        if self.state is None or gap:
            if self.state is not None and self.last_end is not None and raw is not self.state:
                transition = Transition(
                    self.state, raw, full.confidence, window_end, self.last_end - self.since
                )
            self.state, self.since, self.entered = raw, window_end, window_end
            self.evidence.clear()
            self.votes.clear()
            self.left.clear()
            self.session = None
        else:
            current = self.state
            for s in list(self.evidence):
                if s is not raw:
                    self.evidence[s] *= self.evidence_decay
                    if self.evidence[s] < 0.05:
                        del self.evidence[s]
                        self.votes.pop(s, None)
            if raw is not current and full.decisiveness >= self.change_min_confidence:
                got = self.evidence.get(raw, 0.0) + full.decisiveness
                self.evidence[raw] = got
                votes = self.votes[raw] = self.votes.get(raw, 0) + 1
                if votes >= 2 and got >= self.need(current, raw) - 1e-9:
                    previous_since = self.since
                    self._enter(raw, window_end)
                    transition = Transition(
                        current,
                        raw,
                        full.confidence,
                        window_end,
                        window_end - previous_since,
                    )
        self.last_end = window_end
        state = self.state
        assert state is not None
        confidence = full.confidence if raw is state else full.score(state)
        pending = tuple(
            (s, e, self.votes.get(s, 0), self.need(state, s)) for s, e in self.evidence.items()
        )
        return TrackerStep(
            state, confidence, raw, window_end - self.since, transition, True, pending
        )
