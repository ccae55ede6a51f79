"""AnalysisEngine: features per window and the focus-state classifier (docs/ANALYSIS.md).

Theory of operation
-------------------
Storage publishes an :class:`EventBatch` (30 s of events, one every 10 s).  For each batch the
pure :class:`WindowAnalyzer` computes the features of the whole window, of its late part (last
``late_s``) and of its recent slice (last ``recent_s``) (``modules.analysis_features``),
classifies all three (``modules.analysis_rules.classify``) and feeds them to the
hysteresis/time-in-state tracker.  The engine publishes one
:class:`AnalysisComplete` per window and a :class:`StateChange` (priority High) when the tracker
changes state.  All durations are event time (``window_end``); nothing here reads a clock.

Windows are analysed per host (``EventBatch.host_id``): each host has its own tracker and focus
context (at most ``MAX_HOSTS``), and its AnalysisComplete/StateChange carry its ``host_id``.  A
window with non-finite bounds is refused and the module reports Degraded until a good window
arrives.  The analyzer remembers the last few focus events before each window so it knows which
app was in front when the window started.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

from bus import Delivery, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import AnalysisComplete, EventBatch, RawEvent, StateChange
from modules.analysis_features import FeatureError, WindowFeatures, compute_features
from modules.analysis_rules import (
    AnalysisConfig,
    Classification,
    StateTracker,
    TrackerStep,
    classify,
)
from modules.base import Module

__all__ = ["AnalysisConfig", "AnalysisEngine", "WindowAnalyzer", "WindowResult"]

log = logging.getLogger("skelly.analysis")

FOCUS_CONTEXT = 32
"""Focus events remembered from before the current window (per host)."""
MAX_HOSTS = 16
"""Hosts tracked at once; the one silent longest is forgotten first."""


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Everything concluded about one window."""

    window_start: float
    window_end: float
    features: WindowFeatures
    full: Classification
    recent: Classification
    late: Classification
    step: TrackerStep

    def complete(self, host_id: str = "") -> AnalysisComplete:
        return AnalysisComplete(
            window_start=self.window_start,
            window_end=self.window_end,
            state=self.step.state,
            confidence=round(self.step.confidence, 4),
            raw_state=self.full.state,
            time_in_state_s=round(self.step.time_in_state_s, 3),
            features=self.features.as_pairs(),
            host_id=host_id,
        )

    def state_change(self, host_id: str = "") -> StateChange | None:
        t = self.step.transition
        if t is None:
            return None
        return StateChange(
            previous=t.previous,
            current=t.current,
            confidence=round(t.confidence, 4),
            at=t.at,
            previous_duration_s=round(t.previous_duration_s, 3),
            host_id=host_id,
        )


class WindowAnalyzer:
    """Features → rules → hysteresis for the windows of one host (no bus, no clock)."""

    def __init__(self, config: AnalysisConfig | None = None) -> None:
        self.config = config or AnalysisConfig()
        self.params = self.config.feature_params()
        self.tracker = StateTracker(
            hold_windows=self.config.hold_windows,
            reset_gap_s=self.config.reset_gap_s,
            hyperfocus_hold_windows=self.config.hyperfocus_hold_windows,
            change_min_confidence=self.config.change_min_confidence,
        )
        self._focus: deque[RawEvent] = deque(maxlen=FOCUS_CONTEXT)
        self._focus_keys: set[tuple[str, int, float]] = set()

    def analyze(
        self, window_start: float, window_end: float, events: tuple[RawEvent, ...]
    ) -> WindowResult:
        """Analyse one window; raises :class:`FeatureError` for non-finite bounds."""
        cfg = self.config
        context = [e for e in self._focus if e.ts < window_start]
        full_f = compute_features(events, window_start, window_end, self.params, context)
        recent_start = max(window_end - cfg.recent_s, window_start)
        recent_f = compute_features(events, recent_start, window_end, self.params, context)
        late_start = max(window_end - cfg.late_s, window_start)
        late_f = compute_features(events, late_start, window_end, self.params, context)
        full = classify(full_f, cfg)
        recent = classify(recent_f, cfg)
        late = classify(late_f, cfg)
        step = self.tracker.update(window_end, full, recent, late)
        self._remember_focus(events)
        return WindowResult(window_start, window_end, full_f, full, recent, late, step)

    def _remember_focus(self, events: tuple[RawEvent, ...]) -> None:
        new = [
            e
            for e in events
            if e.kind == "focus"
            and isinstance(e.ts, (int, float))
            and math.isfinite(e.ts)
            and (e.session_id, e.seq, e.ts) not in self._focus_keys
        ]
        if not new:
            return
        unique = {(e.session_id, e.seq, e.ts): e for e in [*self._focus, *new]}
        merged = sorted(unique.values(), key=lambda e: (e.ts, e.session_id, e.seq))
        self._focus = deque(merged[-FOCUS_CONTEXT:], maxlen=FOCUS_CONTEXT)
        self._focus_keys = {(e.session_id, e.seq, e.ts) for e in self._focus}


class AnalysisEngine(Module):
    """Subscribes to EventBatch; publishes AnalysisComplete per window and StateChange."""

    name = ModuleId.ANALYSIS

    def __init__(self, config: AnalysisConfig | None = None) -> None:
        super().__init__()
        self.config = config or AnalysisConfig()
        self.analyzers: dict[str, WindowAnalyzer] = {}
        self.windows_analyzed = 0
        self.windows_refused = 0
        self.transitions = 0
        self.last: WindowResult | None = None

    async def on_start(self) -> None:
        self.subscribe(self._on_batch, types=EventBatch, mode=Delivery.RELIABLE, maxsize=256)

    def _on_batch(self, env: Envelope) -> None:
        batch = env.payload
        assert isinstance(batch, EventBatch)
        result = self.process(batch)
        if result is None:
            return
        self.publish(result.complete(batch.host_id), correlation_id=env.id)
        change = result.state_change(batch.host_id)
        if change is not None:
            self.publish(change, priority=Priority.HIGH, correlation_id=env.id)

    def process(self, batch: EventBatch) -> WindowResult | None:
        """Analyse one window of its host (no bus): the result, or None when the window was
        refused or ignored.  ``skelly replay`` drives the engine through this."""
        analyzer = self.analyzers.pop(batch.host_id, None)
        if analyzer is None:
            analyzer = WindowAnalyzer(self.config)
            if len(self.analyzers) >= MAX_HOSTS:
                del self.analyzers[next(iter(self.analyzers))]
        self.analyzers[batch.host_id] = analyzer  # most recently seen last
        try:
            result = analyzer.analyze(batch.window_start, batch.window_end, batch.events)
        except FeatureError as exc:
            self.windows_refused += 1
            self.set_status(
                ModuleStatus.DEGRADED,
                f"refused a window from host {batch.host_id!r}: {exc}; check Storage's clock",
            )
            log.warning("analysis: refused window: %s", exc)
            return None
        if not result.step.accepted:
            return None
        self.windows_analyzed += 1
        self.last = result
        if result.step.transition is not None:
            self.transitions += 1
        if self.status is ModuleStatus.DEGRADED:
            self.set_status(ModuleStatus.HEALTHY, "running")
        return result

    def health(self) -> tuple[ModuleStatus, str]:
        if self.status is not ModuleStatus.HEALTHY:
            return self.status, self.detail
        if self.last is None:
            return self.status, "waiting for the first window"
        step = self.last.step
        return (
            self.status,
            f"{step.state} for {step.time_in_state_s:.0f} s "
            f"({self.windows_analyzed} windows, {self.transitions} changes)",
        )
