"""Rules from window features to a focus state, and the hysteresis / time-in-state tracker.

Theory of operation (docs/ANALYSIS.md §3-§5)
-------------------------------------------
:func:`classify` scores every state 0-1 from ramps over the features (a ramp is 0 below its
first threshold, 1 beyond its second, linear in between), picks the best (ties in the order of
``TIE_ORDER``) and derives a confidence (best - 0.5*second best; for FLOW/HYPERFOCUS the focus
evidence against the best non-focused state) and a margin (the same over all six states).  It is
a pure function of the features and the config.

:class:`StateTracker` is the state machine on top.  Each window *supports* the raw states of its
whole, its late part and its recent slice.  A window *proposes* a change when its late part's or
whole raw state differs from the current state with a margin of at least
``change_min_confidence``; the change is taken only if the ``hold_windows`` previous windows
(``hyperfocus_hold_windows`` for HYPERFOCUS) support it.  So one odd window never flips the
state.  Time in state is measured on event time (``window_end``) only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from bus.messages import FocusState
from modules.analysis_features import FeatureParams, WindowFeatures

Ramp = tuple[float, float]

TIE_ORDER: tuple[FocusState, ...] = (
    FocusState.IDLE,
    FocusState.DISTRACTED,
    FocusState.HYPERFOCUS,
    FocusState.FLOW,
    FocusState.TRANSITIONING,
    FocusState.NEUTRAL,
)

FOCUSED = frozenset({FocusState.FLOW, FocusState.HYPERFOCUS})


@dataclass(frozen=True)
class AnalysisConfig:
    """``[analysis]``: feature parameters, rule thresholds (ramp ends) and hysteresis.

    Every default is explained in docs/ANALYSIS.md §3 and §6.
    """

    pause_s: float = 2.0
    """A key gap longer than this is a pause, not part of the typing rhythm."""
    burst_gap_s: float = 1.0
    """Longest gap inside a typing burst."""
    burst_min_keys: int = 5
    """Keys needed for a run to count as a burst."""
    rapid_dwell_s: float = 10.0
    """A switch away from an app visited for less than this is a rapid switch."""
    min_iki_samples: int = 8
    """Typing intervals needed before the rhythm (IKI mean/CV) is trusted."""
    recent_s: float = 10.0
    """Length of the recent slice of each window used to corroborate a change."""
    late_s: float = 20.0
    """Length of the late part of each window that can propose a change (newest data)."""
    hold_windows: int = 1
    """How many earlier windows must support a new state before it is taken."""
    hyperfocus_hold_windows: int = 3
    """The same for HYPERFOCUS, which is flow that *lasts*: the dense signature must hold in
    four consecutive windows (about a minute of typing)."""
    change_min_confidence: float = 0.4
    """A window proposes a new state only with at least this confidence (ambiguous windows,
    e.g. exactly between two signatures, keep the current state)."""
    reset_gap_s: float = 120.0
    """A gap between windows longer than this restarts the tracker."""

    typing_keys: Ramp = (6.0, 12.0)
    flow_kpm: Ramp = (70.0, 120.0)
    flow_iki_ms: Ramp = (250.0, 350.0)
    steady_rcv: Ramp = (0.42, 0.62)
    one_app_share: Ramp = (0.5, 0.7)
    quiet_tail_s: Ramp = (15.0, 20.0)
    dense_kpm: Ramp = (300.0, 360.0)
    dense_duty: Ramp = (0.68, 0.82)
    dense_pause_s: Ramp = (3.0, 4.5)
    dense_rcv: Ramp = (0.35, 0.45)
    dense_app_share: Ramp = (0.9, 0.98)
    hop_spm: Ramp = (3.0, 6.0)
    hop_app_share: Ramp = (0.75, 0.55)
    erratic_rcv: Ramp = (0.7, 1.0)
    transition_spm: Ramp = (1.0, 2.0)
    transition_visit_s: Ramp = (40.0, 60.0)
    engaged_kpm: Ramp = (4.0, 12.0)
    engaged_mouse: Ramp = (0.08, 0.2)
    engaged_spm: Ramp = (0.5, 2.0)
    idle_frac: Ramp = (0.4, 0.6)

    def __post_init__(self) -> None:
        for f in fields(self):
            value: Any = getattr(self, f.name)
            if isinstance(value, tuple):
                ok = len(value) == 2 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in value
                )
                if not ok or any(v < 0 for v in value):
                    raise ValueError(
                        f"analysis.{f.name} must be a ramp [a, b] of two finite numbers >= 0, "
                        f"got {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"analysis.{f.name} must be a number, got {value!r}")
            elif f.name == "change_min_confidence":
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

    @property
    def decisiveness(self) -> float:
        return self.confidence if self.margin is None else self.margin

    def score(self, state: FocusState) -> float:
        for s, v in self.scores:
            if s is state:
                return v
        return 0.0


def classify(f: WindowFeatures, cfg: AnalysisConfig) -> Classification:
    """Score the six states for one window (docs/ANALYSIS.md §3)."""
    typing = up(f.key_count, cfg.typing_keys) if f.iki_n >= cfg.min_iki_samples else 0.0
    steady = down(f.iki_rcv, cfg.steady_rcv)
    focused_typing = min(
        typing,
        up(f.keys_per_min, cfg.flow_kpm),
        down(f.iki_median_ms, cfg.flow_iki_ms),
        steady,
    )
    one_app = up(f.dominant_app_share, cfg.one_app_share)
    not_quiet = down(f.quiet_tail_s, cfg.quiet_tail_s)
    # long dwells: two or more switches in the window must include a long stay (a trip to the
    # terminal and back ends a long visit to the editor; task-hopping ends only short visits)
    settled = up(f.visit_mean_s, cfg.transition_visit_s) if f.switches >= 2 else 1.0
    flow_core = min(focused_typing, one_app, not_quiet, settled)
    density = (
        up(f.keys_per_min, cfg.dense_kpm)
        + up(f.typing_duty, cfg.dense_duty)
        + down(f.longest_pause_s, cfg.dense_pause_s)
    ) / 3.0
    dense = min(
        density,
        down(f.iki_rcv, cfg.dense_rcv),
        up(f.dominant_app_share, cfg.dense_app_share),
    )
    hyperfocus = min(flow_core, dense)
    flow = min(flow_core, 1.0 - dense)

    switching = min(
        up(f.switches_per_min, cfg.hop_spm), up(f.dominant_app_share, cfg.hop_app_share)
    )
    erratic = min(typing, up(f.iki_rcv, cfg.erratic_rcv))
    non_work = min(f.comm_share + f.leisure_share + 0.5 * f.browser_share, 1.0)
    distracted = switching * (0.75 + 0.25 * max(f.rapid_switch_ratio, erratic, non_work))

    engaged = max(
        up(f.keys_per_min, cfg.engaged_kpm),
        up(f.mouse_active_frac, cfg.engaged_mouse),
        up(f.switches_per_min, cfg.engaged_spm),
    )
    transitioning = min(
        up(f.switches_per_min, cfg.transition_spm),
        down(f.visit_min_s, cfg.transition_visit_s),
        1.0 - switching,
        1.0 - flow_core,
        engaged,
    )
    low_activity = min(
        down(f.keys_per_min, cfg.engaged_kpm),
        down(f.mouse_active_frac, cfg.engaged_mouse),
        down(f.switches_per_min, cfg.engaged_spm),
    )
    idle = max(low_activity, up(f.idle_frac, cfg.idle_frac), up(f.quiet_tail_s, cfg.quiet_tail_s))
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
    return Classification(best_state, _unit(best - 0.5 * second), scores, margin)


def _unit(x: float) -> float:
    if not math.isfinite(x):
        return 0.0
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


# --- hysteresis and time in state ------------------------------------------------------------


def _supports(recent: FocusState) -> set[FocusState]:
    """States a (short, so coarse) recent slice corroborates: itself; a silent slice also
    ordinary activity (ten quiet seconds are as typical of reading as of leaving); a slice with a
    hop also task switching (one switch in ten seconds reads as a hop rate of 6/min)."""
    if recent is FocusState.IDLE:
        return {FocusState.IDLE, FocusState.NEUTRAL}
    if recent is FocusState.DISTRACTED:
        return {FocusState.DISTRACTED, FocusState.TRANSITIONING}
    return {recent}


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


@dataclass
class StateTracker:
    """Hysteresis and time in state over a sequence of classified windows (event time)."""

    hold_windows: int = 1
    reset_gap_s: float = 120.0
    hyperfocus_hold_windows: int = 3
    change_min_confidence: float = 0.0
    state: FocusState | None = None
    since: float = 0.0
    last_end: float | None = None
    _support: list[frozenset[FocusState]] = field(default_factory=list)

    def update(
        self,
        window_end: float,
        full: Classification,
        recent: Classification | None = None,
        late: Classification | None = None,
    ) -> TrackerStep:
        """Feed one window: its full classification, its recent slice's (the last
        ``recent_s``) and its late part's (the last ``late_s``)."""
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
        restart = self.state is None or gap
        current = raw if restart or self.state is None else self.state
        support = {raw}
        if late is not None:
            support.add(late.state)
        if recent is not None:
            # a slice that looks like the current state is no evidence for anything else
            support |= {recent.state} if recent.state is current else _supports(recent.state)
        if restart:
            if self.state is not None and self.last_end is not None and raw is not self.state:
                transition = Transition(
                    self.state, raw, full.confidence, window_end, self.last_end - self.since
                )
            self.state, self.since = raw, window_end
            self._support = []
        else:
            assert self.state is not None
            # the newest evidence first: the late part of the window, then the whole window
            for cand in (late, full):
                if cand is None or cand.state is self.state:
                    continue
                if cand.decisiveness < self.change_min_confidence:
                    continue
                x = cand.state
                need = (
                    self.hyperfocus_hold_windows
                    if x is FocusState.HYPERFOCUS
                    else self.hold_windows
                )
                if len(self._support) >= need and all(x in s for s in self._support[-need:]):
                    transition = Transition(
                        self.state, x, cand.confidence, window_end, window_end - self.since
                    )
                    self.state, self.since = x, window_end
                    break
        self._support.append(frozenset(support))
        del self._support[: -max(self.hold_windows, self.hyperfocus_hold_windows)]
        self.last_end = window_end
        state = self.state
        assert state is not None
        if raw is state:
            confidence = full.confidence
        elif late is not None and late.state is state:
            confidence = late.confidence
        else:
            confidence = full.score(state)
        return TrackerStep(state, confidence, raw, window_end - self.since, transition)
