"""The bus module and the per-host analyzer: features -> rules -> tracker, and the baselines
kept in Storage's state (the package docstring, ``modules.analysis``, has the whole story)."""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from bus import Delivery, Envelope, ModuleId, ModuleStatus, Priority
from bus.messages import AnalysisComplete, EventBatch, FocusState, RawEvent, StateChange
from modules.analysis.baseline import Baseline
from modules.analysis.features import FeatureError, WindowFeatures, compute_features
from modules.analysis.rules import (
    HEADROOM,
    RETURN_GAP_S,
    AnalysisConfig,
    Classification,
    Context,
    StateTracker,
    TrackerStep,
    classify,
)
from modules.base import Module

log = logging.getLogger("skelly.analysis")

FOCUS_CONTEXT = 32
"""Focus events remembered from before the current window (per host)."""
MAX_HOSTS = 16
"""Hosts tracked at once; the one silent longest is forgotten first."""
FLOW_LEARN_DELAY_S = 180.0
"""A FLOW window's density is learnt only this long later, if no hyperfocus came since."""
RHYTHM_LEARN_DELAY_S = 450.0
"""A FLOW window's rhythm is learnt only this long later (and not if HYPERFOCUS came within
``FLOW_LEARN_DELAY_S`` of it): the first minutes of a session misread as FLOW must not become
the rhythm the session is compared with."""


@dataclass(frozen=True, slots=True)
class WindowResult:
    """Everything concluded about one window."""

    window_start: float
    window_end: float
    features: WindowFeatures
    full: Classification
    context: Context
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


def _key(e: RawEvent) -> tuple[str, int, float, str]:
    return (e.session_id, e.seq, e.ts, e.kind)


def _ts_seq(e: RawEvent) -> tuple[float, int]:
    return (e.ts, e.seq)


class WindowAnalyzer:
    """Features → rules → stability for the windows of one host (no bus, no clock).

    Keeps the host's events of the last ``context_s`` (windows overlap; duplicates are merged),
    the focus events before them, the time of the last deliberate input and the person's
    typing :class:`Baseline`.
    """

    def __init__(
        self, config: AnalysisConfig | None = None, baseline: Baseline | None = None
    ) -> None:
        self.config = config or AnalysisConfig()
        self.params = self.config.feature_params()
        self.tracker = StateTracker.from_config(self.config)
        self.baseline = baseline if baseline is not None else self.config.baseline()
        self._focus: deque[RawEvent] = deque(maxlen=FOCUS_CONTEXT)
        self._focus_keys: set[tuple[str, int, float]] = set()
        self._events: list[RawEvent] = []
        self._event_keys: set[tuple[str, int, float, str]] = set()
        self._last_input: float | None = None
        self._last_hand: float | None = None  # the last key, scroll or click
        self._returns: deque[float] = deque()  # of the last context_s (docs §2.1 returns)
        self._front: object = None  # app_id of the last focus event
        self._last_moved: float = -math.inf
        self._first_start: float | None = None
        self._watched_from: float | None = None
        self._window_end = 0.0
        self._pending_flow: deque[tuple[float, float]] = deque()
        self._pending_rhythm: deque[tuple[float, float, float]] = deque()

    def analyze(
        self, window_start: float, window_end: float, events: tuple[RawEvent, ...]
    ) -> WindowResult:
        """Analyse one window; raises :class:`FeatureError` for non-finite bounds."""
        cfg = self.config
        focus = list(self._focus)
        full_f = compute_features(events, window_start, window_end, self.params, focus)
        if self._first_start is None:
            self._first_start = window_start
        if self._watched_from is None or window_end - self._window_end > cfg.reset_gap_s:
            # a new run (first window, or back after a gap that restarts the tracker): the
            # spans reach back only to its first event, not over minutes nobody watched
            seen = [e.ts for e in events if isinstance(e.ts, (int, float)) and math.isfinite(e.ts)]
            self._watched_from = max(min(seen), window_start) if seen else window_start
        self._remember(events, window_end)
        scale = self.baseline.scale
        watched = self._watched_from
        # M is never shorter than the window, C never shorter than two M
        m_from = max(window_end - cfg.focus_s, min(watched, window_start))
        c_from = max(window_end - cfg.context_s, min(watched, window_end - 2 * cfg.focus_s))
        medium = self._span_features(m_from, window_end, focus)
        long = self._span_features(c_from, window_end, focus)
        last = self._last_input if self._last_input is not None else self._first_start
        silence = min(max(window_end - last, 0.0), 1e9)
        while self._returns and self._returns[0] < window_end - cfg.context_s:
            self._returns.popleft()
        ctx = Context(
            medium,
            long,
            silence,
            scale,
            self._flow_duty(),
            self._hyperfocus_s(window_end),
            self.baseline.flow_rhythm,
            self.tracker.in_session(window_end),
            window_end - watched,
            sum(1 for t in self._returns if c_from < t <= window_end),
        )
        full = classify(full_f, cfg, ctx)
        step = self.tracker.update(window_end, full)
        self._window_end = window_end
        self._learn(step, full, full_f, medium, long)
        self._remember_focus(events)
        return WindowResult(window_start, window_end, full_f, full, ctx, step)

    def _learn(
        self,
        step: TrackerStep,
        full: Classification,
        window: WindowFeatures,
        medium: WindowFeatures,
        long: WindowFeatures,
    ) -> None:
        """Teach the baseline this person's ordinary typing (docs/ANALYSIS.md §3.1): speed from
        any typing window, flow density from windows classified FLOW; nothing while
        the state or the window is HYPERFOCUS, so a long session never becomes the norm it is
        judged against."""
        if not step.accepted:
            return
        if FocusState.HYPERFOCUS in (step.state, full.state):
            if step.state is FocusState.HYPERFOCUS:
                # the session's run-up (denser than the flow learnt) is dropped; the lighter
                # observations the rules already judged with are the person's flow: kept.  The
                # rhythm of the run-up is not told apart by density: its last minutes go
                for d in self._lighter_pending():
                    self.baseline.observe_flow(d)
                self._pending_flow.clear()
                self._drop_recent_rhythm()
            return
        if step.state is not FocusState.FLOW:
            # a FLOW run that ended in ordinary work before its observations were confirmed was
            # most likely a fluent stretch of that work: not the person's flow (docs §3.1)
            self._pending_flow.clear()
            self._drop_recent_rhythm()
        self.baseline.observe(window.iki_median_ms, window.iki_n, window.keys_per_min)
        # flow density (docs §3.1): the typing duty of the longest span that is all history
        # (the last few minutes once there are that many, the last minute before), from FLOW
        # windows not already denser than the person's flow; provisional (the rules see it at
        # once) until ``FLOW_LEARN_DELAY_S`` later, and dropped if HYPERFOCUS (or, above, the
        # end of the FLOW run) comes first, so a session's run-up, read as FLOW while the long
        # span fills, is never learnt as flow
        history = self._window_end - (self._first_start or self._window_end)
        settled = min(history, step.time_in_state_s) >= long.duration_s
        span = long if settled else medium
        fd = self._flow_duty()
        excess = (span.typing_duty - fd) / max(1.0 - fd, HEADROOM)
        if (
            step.state is FocusState.FLOW
            and full.state is FocusState.FLOW
            # in a lighter stretch of a session only what is no denser than their flow
            and (excess <= 0.0 or not self.tracker.in_session(self._window_end))
            and excess <= self.config.dense_excess[1]
            and min(history, step.time_in_state_s) >= span.duration_s
        ):
            self._pending_flow.append((self._window_end, span.typing_duty))
            # the rhythm (§3 dense) only from flow no denser than where density starts to
            # count, and confirmed later still: a session misread as FLOW is that dense soon
            # enough, and its rhythm learnt as flow would hide it
            if excess <= self.config.dense_excess[0]:
                self._pending_rhythm.append((self._window_end, span.iki_core_ms, span.iki_core_cv))
        while self._pending_flow and (
            self._window_end - self._pending_flow[0][0] >= FLOW_LEARN_DELAY_S
        ):
            self.baseline.observe_flow(self._pending_flow.popleft()[1])
        while self._pending_rhythm and (
            self._window_end - self._pending_rhythm[0][0] >= RHYTHM_LEARN_DELAY_S
        ):
            _, core_ms, core_cv = self._pending_rhythm.popleft()
            # ... unless clearly brisker than the rhythm learnt by now (a session's start)
            self.baseline.observe_rhythm(core_ms, core_cv, self.config.brisk_rhythm[0])

    def _drop_recent_rhythm(self) -> None:
        """Forget the pending rhythm observations of the last ``FLOW_LEARN_DELAY_S``."""
        while self._pending_rhythm and (
            self._window_end - self._pending_rhythm[-1][0] < FLOW_LEARN_DELAY_S
        ):
            self._pending_rhythm.pop()

    def _flow_duty(self) -> float:
        """The flow duty the rules judge with: the learnt one, with the pending observations
        that are no denser than it (a lighter flow is learnt at once, so a new user's own flow
        soon replaces the prior; a denser one only once confirmed, so the first minutes of a
        session misread as FLOW cannot raise the bar it has to pass).  While none of this
        person's flow has been learnt, every pending observation counts: the prior is a guess,
        not their flow, and their own flow denser than it is no session (docs §3.1)."""
        if not any(self.baseline.duty_hist):
            return self.baseline.flow_duty_with(d for _, d in self._pending_flow)
        return self.baseline.flow_duty_with(self._lighter_pending())

    def _hyperfocus_s(self, window_end: float) -> float | None:
        """How long the reported HYPERFOCUS has lasted at ``window_end`` (its session clock,
        docs §5), None when the reported state is not HYPERFOCUS."""
        if self.tracker.state is not FocusState.HYPERFOCUS:
            return None
        return max(window_end - self.tracker.since, 0.0)

    def _lighter_pending(self) -> list[float]:
        """The pending flow observations no denser than the flow duty learnt so far."""
        learnt = self.baseline.flow_duty
        return [d for _, d in self._pending_flow if d <= learnt]

    def _span_features(self, start: float, end: float, focus: list[RawEvent]) -> WindowFeatures:
        """Features of the kept events from ``start`` to ``end``: the same as handing all of
        them to :func:`compute_features` (which reads the events before ``start`` only for
        the app in front), without scanning the minutes before the span for each span."""
        cut = bisect.bisect_left(self._events, start, key=lambda e: e.ts)
        before = [e for e in self._events[:cut] if e.kind == "focus"]
        return compute_features(self._events[cut:], start, end, self.params, [*focus, *before])

    def _remember(self, events: tuple[RawEvent, ...], window_end: float) -> None:
        keep_from = window_end - max(self.config.context_s, self.config.focus_s) - 1.0
        fresh: dict[tuple[str, int, float, str], RawEvent] = {}
        for e in events:  # each event not kept yet, once (a batch may repeat one)
            if isinstance(e.ts, (int, float)) and math.isfinite(e.ts) and e.ts >= keep_from:
                k = _key(e)
                if k not in self._event_keys and k not in fresh:
                    fresh[k] = e
        new = list(fresh.values())
        if new:
            new.sort(key=_ts_seq)
            for e in new:
                self._note_input(e)
            # a window's new events mostly follow the kept ones: sort only when they do not
            late = bool(self._events) and _ts_seq(new[0]) < _ts_seq(self._events[-1])
            self._events.extend(new)
            if late:
                self._events.sort(key=_ts_seq)
            self._event_keys.update(fresh)
        # the kept events are in ts order: drop the head older than the context
        cut = bisect.bisect_left(self._events, keep_from, key=lambda e: e.ts)
        if cut:
            self._event_keys.difference_update(_key(e) for e in self._events[:cut])
            del self._events[:cut]

    def _note_input(self, e: RawEvent) -> None:
        """Deliberate input: a key, a switch to another app, a scroll, a click, or a pointer
        that keeps moving (a sample within ``silence_run_s`` of the previous moving one; a lone
        nudge is not). Keys, scrolls and clicks after ``RETURN_GAP_S`` without one are returns."""
        ts = e.ts
        deliberate = e.kind in ("key", "scroll")
        hand = deliberate  # keys, wheel, clicks: what returns are made of (docs §2.1)
        if e.kind == "focus":
            # a switch; the app in front announced again (a noisy host) is nobody's input
            app = e.get("app_id")
            deliberate = app != self._front
            self._front = app
        if e.kind == "mouse":
            clicks = e.get("clicks")
            speed = e.get("speed")
            if isinstance(clicks, (int, float)) and not isinstance(clicks, bool) and clicks > 0:
                deliberate = hand = True
            if isinstance(speed, (int, float)) and not isinstance(speed, bool) and speed > 0:
                if 0.0 <= ts - self._last_moved <= self.config.silence_run_s:
                    deliberate = True
                self._last_moved = max(self._last_moved, ts)
        if deliberate and (self._last_input is None or ts > self._last_input):
            self._last_input = ts
        if hand and (self._last_hand is None or ts > self._last_hand):
            # a return is a key, a notch or a click after a pause: an app that comes to the
            # front by itself (a reminder) or a bumped desk brings nobody back
            if self._last_hand is not None and ts - self._last_hand >= RETURN_GAP_S:
                self._returns.append(ts)
            self._last_hand = ts

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


class StateStore(Protocol):
    """Where the baselines are kept (``modules.storage.Storage`` has these)."""

    async def get_state(self, key: str) -> Any: ...

    async def put_state(self, key: str, value: Any) -> None: ...


BASELINE_KEY = "analysis.baseline"
"""Storage state key of the per-host baselines: ``{host_id: Baseline.to_json()}``."""
BASELINE_SAVE_EVERY = 60
"""Windows between saves of the baselines (10 minutes at one window every 10 s)."""


class AnalysisEngine(Module):
    """Subscribes to EventBatch; publishes AnalysisComplete per window and StateChange."""

    name = ModuleId.ANALYSIS

    def __init__(
        self, config: AnalysisConfig | None = None, *, store: StateStore | None = None
    ) -> None:
        super().__init__()
        self.config = config or AnalysisConfig()
        self.store = store
        self.analyzers: dict[str, WindowAnalyzer] = {}
        self.baselines: dict[str, Baseline] = {}
        self.windows_analyzed = 0
        self.windows_refused = 0
        self.transitions = 0
        self.last: WindowResult | None = None
        self._unsaved = 0
        self._saving: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        await self.load_baselines()
        self.subscribe(self._on_batch, types=EventBatch, mode=Delivery.RELIABLE, maxsize=256)

    async def on_stop(self) -> None:
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
        await self.save_baselines()

    async def load_baselines(self) -> None:
        """Restore the per-host baselines from the store (a bad or missing entry starts that
        host from the population prior)."""
        if self.store is None:
            return
        try:
            data = await self.store.get_state(BASELINE_KEY)
        except Exception as exc:  # the store is not ours to judge; run on the prior
            log.warning("analysis: could not read the baselines: %s", exc)
            return
        if not isinstance(data, dict):
            return
        for host, value in list(data.items())[-MAX_HOSTS:]:
            baseline = self.config.baseline()
            if isinstance(host, str) and baseline.restore(value):
                self.baselines[host] = baseline

    async def save_baselines(self) -> None:
        """Store every host's baseline (one state entry)."""
        if self.store is None or not self.baselines:
            return
        self._unsaved = 0
        value = {host: b.to_json() for host, b in self.baselines.items()}
        try:
            await self.store.put_state(BASELINE_KEY, value)
        except Exception as exc:
            log.warning("analysis: could not save the baselines: %s", exc)

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
            baseline = self.baselines.pop(batch.host_id, None) or self.config.baseline()
            analyzer = WindowAnalyzer(self.config, baseline)
            if len(self.analyzers) >= MAX_HOSTS:
                del self.analyzers[next(iter(self.analyzers))]
        self.baselines.pop(batch.host_id, None)
        self.baselines[batch.host_id] = analyzer.baseline
        while len(self.baselines) > MAX_HOSTS:
            del self.baselines[next(iter(self.baselines))]
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
        self._unsaved += 1
        if (
            self.store is not None
            and self._unsaved >= BASELINE_SAVE_EVERY
            and self._bus is not None
        ):
            if self._saving is None or self._saving.done():
                self._saving = asyncio.get_running_loop().create_task(
                    self.save_baselines(), name="analysis.save-baselines"
                )
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
