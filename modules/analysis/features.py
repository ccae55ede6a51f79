"""Features of one window of host timing events (docs/ANALYSIS.md §2).

Pure functions: events and window bounds in, a :class:`WindowFeatures` out.  No bus, no clock.
Events may come in any order, with duplicates or identical timestamps, partly outside the window,
or with missing/odd attributes; none of that raises.  Only non-finite window bounds are refused
(:class:`FeatureError`), because they mean the caller is broken.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields

from bus.messages import RawEvent

WORK_CATEGORIES = frozenset({"code", "terminal", "docs", "office", "design"})
COMM_CATEGORIES = frozenset({"communication"})
BROWSER_CATEGORIES = frozenset({"browser"})
LEISURE_CATEGORIES = frozenset({"media", "games"})
MAX_SPEED = 1e6
MAX_CLICKS = 1e6
MIN_WINDOW_S = 1.0
"""Shorter (or inverted) windows are treated as 1 s long so rates stay finite."""
REPEAT_MAX_S = 0.06
"""Key gaps this short, several in a row, are a held key's auto-repeat (typematic rates are
15-30 a second), not typing."""
REPEAT_RUN = 3
"""Consecutive gaps of at most ``REPEAT_MAX_S`` that make a held key (one fast roll-over between
two keys is still typing)."""
UNSETTLED_MIN_SWITCHES = 2.0
"""Weighted switches after leaving a settled app needed before their own rate counts."""


class FeatureError(ValueError):
    """The window bounds are unusable (not finite numbers)."""


@dataclass(frozen=True, slots=True)
class FeatureParams:
    """The feature definitions' own parameters (a subset of ``AnalysisConfig``)."""

    pause_s: float = 2.0
    burst_gap_s: float = 1.0
    burst_min_keys: int = 5
    rapid_dwell_s: float = 10.0
    return_s: float = 60.0
    settled_s: float = 120.0
    settled_span_s: float = 90.0


@dataclass(frozen=True, slots=True)
class WindowFeatures:
    """Every feature of one window; all finite floats (see docs/ANALYSIS.md §2)."""

    duration_s: float = 0.0
    key_count: float = 0.0
    keys_per_min: float = 0.0
    iki_mean_ms: float = 0.0
    iki_cv: float = 0.0
    iki_n: float = 0.0
    iki_median_ms: float = 0.0
    iki_core_ms: float = 0.0
    iki_core_cv: float = 0.0
    iki_rcv: float = 0.0
    burst_count: float = 0.0
    burst_mean_keys: float = 0.0
    typing_duty: float = 0.0
    pause_count: float = 0.0
    pauses_per_min: float = 0.0
    longest_pause_s: float = 0.0
    correction_rate: float = 0.0
    mouse_active_s: float = 0.0
    mouse_active_frac: float = 0.0
    mouse_speed_mean: float = 0.0
    clicks: float = 0.0
    clicks_per_min: float = 0.0
    scroll_ticks: float = 0.0
    scroll_ticks_per_min: float = 0.0
    scroll_active_frac: float = 0.0
    pointer_frac: float = 0.0
    switches: float = 0.0
    switches_per_min: float = 0.0
    new_switches: float = 0.0
    new_switches_per_min: float = 0.0
    weighted_switches_per_min: float = 0.0
    unsettled_switches_per_min: float = 0.0
    dwell_mean_s: float = 0.0
    visit_mean_s: float = 0.0
    visit_min_s: float = 0.0
    rapid_switch_ratio: float = 0.0
    dominant_app_share: float = 1.0
    front_visit_s: float = 0.0
    work_share: float = 0.0
    comm_share: float = 0.0
    browser_share: float = 0.0
    leisure_share: float = 0.0
    distinct_categories: float = 0.0
    idle_frac: float = 0.0
    quiet_tail_s: float = 0.0
    input_per_min: float = 0.0

    def as_pairs(self) -> tuple[tuple[str, float], ...]:
        names = [f.name for f in fields(self)]
        return tuple((n, round(float(v), 6)) for n, v in zip(names, astuple(self), strict=True))


def _num(value: object, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    out = float(value)
    return out if math.isfinite(out) else default


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _finite_ts(ev: RawEvent) -> bool:
    return isinstance(ev.ts, (int, float)) and math.isfinite(ev.ts)


def _order(ev: RawEvent) -> tuple[float, int, str, str]:
    """A total order, so the result never depends on the order events arrived in (even two
    events with the same ts and seq)."""
    return (ev.ts, ev.seq, ev.kind, repr(ev.attrs))


_coarse = operator.attrgetter("ts", "seq", "kind")


def _in_order(events: Iterable[RawEvent]) -> list[RawEvent]:
    """``events`` sorted by :func:`_order`.  Sorted by its first three parts, and by all four
    only when two events tie on those (rare: a host that repeats a seq): the same order,
    without rendering every event's attributes on every span (the largest single cost a
    profile of a replay showed)."""
    out = sorted(events, key=_coarse)
    coarse = list(map(_coarse, out))
    if any(map(operator.eq, coarse, coarse[1:])):
        out.sort(key=_order)
    return out


def _stats(values: Sequence[float]) -> tuple[float, float]:
    """Mean and coefficient of variation (population); (0, 0) for fewer than two values."""
    if len(values) < 2:
        return 0.0, 0.0
    mean = math.fsum(values) / len(values)
    if mean <= 0.0:
        return 0.0, 0.0
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var) / mean


def _held(gaps: Sequence[float]) -> list[bool]:
    """Which gaps belong to a held key's auto-repeat: runs of at least ``REPEAT_RUN``
    consecutive gaps of at most ``REPEAT_MAX_S``.  They are no one's rhythm: a minute with a
    held arrow key had a "core IKI" of 25 ms, and that minute, learnt as a typist's flow
    rhythm, made their ordinary flow look slow."""
    out = [False] * len(gaps)
    i = 0
    while i < len(gaps):
        j = i
        while j < len(gaps) and gaps[j] <= REPEAT_MAX_S:
            j += 1
        if j - i >= REPEAT_RUN:
            out[i:j] = [True] * (j - i)
        i = max(j, i + 1)
    return out


def _core_stats(values: Sequence[float], median: float) -> tuple[float, float]:
    """Mean and CV of the intervals within [½, 2] × the median: the pace and spread of the
    rhythm itself, finer than the median and MAD on a host whose timer ticks coarsely (a
    15.6 ms tick moves a median in steps, a mean of many jittered ticks smoothly); (0, 0) for
    fewer than two such intervals."""
    return _stats([v for v in values if 0.5 * median <= v <= 2.0 * median])


def _robust(values: Sequence[float]) -> tuple[float, float]:
    """Median and robust CV (1.4826 · MAD / median); (0, 0) for fewer than two values."""
    if len(values) < 2:
        return 0.0, 0.0
    med = statistics.median(values)
    if med <= 0.0:
        return 0.0, 0.0
    mad = statistics.median(abs(v - med) for v in values)
    return med, 1.4826 * mad / med


def _focus_before(
    start: float, earlier: Iterable[RawEvent], left: dict[str, float] | None = None
) -> tuple[str | None, str | None, float | None]:
    """App id, category and since-when of the app in front at ``start`` (None if unknown);
    ``left`` (if given) receives when each earlier app last lost the focus."""
    focus = _in_order(e for e in earlier if e.kind == "focus" and _finite_ts(e) and e.ts < start)
    app: str | None = None
    category: str | None = None
    since: float | None = None
    for ev in focus:
        ev_app = _str(ev.get("app_id"))
        if ev_app is None:
            continue
        if ev_app != app:
            since = ev.ts
            if left is not None and app is not None:
                left[app] = ev.ts
        app = ev_app
        category = _str(ev.get("category"))
    return app, category, since


def compute_features(
    events: Iterable[RawEvent],
    start: float,
    end: float,
    params: FeatureParams | None = None,
    context: Iterable[RawEvent] = (),
) -> WindowFeatures:
    """Features of the events with ``start <= ts <= end``.

    ``context`` holds earlier events (only focus events matter) so the app in front at ``start``
    is known; events of ``events`` before ``start`` are used as context too, which is how the
    recent slice of a window sees the app that was in front when the slice began.
    """
    p = params or FeatureParams()
    if not (isinstance(start, (int, float)) and isinstance(end, (int, float))):
        raise FeatureError(f"window bounds must be numbers, got {start!r} and {end!r}")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise FeatureError(f"window bounds must be finite, got {start!r} and {end!r}")
    if not math.isfinite(end - start):
        raise FeatureError(f"window from {start!r} to {end!r} is too long to analyse")
    all_events = [
        e for e in events if isinstance(e.ts, (int, float)) and math.isfinite(e.ts)
    ]  # _finite_ts, inlined: it runs for every event of every span
    inside = _in_order(e for e in all_events if start <= e.ts <= end)
    duration = max(end - start, MIN_WINDOW_S)
    per_min = 60.0 / duration

    keys = [e for e in inside if e.kind == "key"]
    mice = [e for e in inside if e.kind == "mouse"]
    focus = [e for e in inside if e.kind == "focus"]
    idles = [e for e in inside if e.kind == "idle"]
    scrolls = [e for e in inside if e.kind == "scroll"]

    # --- keyboard ----------------------------------------------------------------------------
    kts = [e.ts for e in keys]
    gaps = [b - a for a, b in itertools.pairwise(kts)]
    held = _held(gaps)
    rhythm = [g for g, h in zip(gaps, held, strict=True) if g <= p.pause_s and not h]
    iki_mean, iki_cv = _stats(rhythm)
    iki_median, iki_rcv = _robust(rhythm)
    iki_core, iki_core_cv = _core_stats(rhythm, iki_median)
    pauses = [g for g in gaps if g > p.pause_s]
    bursts: list[tuple[int, float]] = []
    run_start = 0
    for i in range(1, len(kts) + 1):
        if i == len(kts) or kts[i] - kts[i - 1] > p.burst_gap_s:
            n = i - run_start
            if n >= p.burst_min_keys:
                bursts.append((n, kts[i - 1] - kts[run_start]))
            run_start = i
    corrections = sum(1 for e in keys if e.get("correction") is True)

    # --- mouse -------------------------------------------------------------------------------
    active_s = 0.0
    weighted_speed = 0.0
    clicks = 0.0
    moved: list[float] = []
    for ev in mice:
        speed = min(max(_num(ev.get("speed")), 0.0), MAX_SPEED)
        n_clicks = min(max(_num(ev.get("clicks")), 0.0), MAX_CLICKS)
        span = min(max(_num(ev.get("span_ms"), 1000.0), 0.0) / 1000.0, duration)
        clicks += n_clicks
        if speed > 0.0 or n_clicks > 0.0:
            moved.append(ev.ts)
            overlap = max(0.0, min(ev.ts, end) - max(ev.ts - span, start))
            active_s += overlap
            weighted_speed += speed * overlap
    active_s = min(active_s, duration)
    speed_mean = weighted_speed / active_s if active_s > 0.0 else 0.0
    scroll_s = 0.0
    ticks = 0.0
    for ev in scrolls:
        ticks += min(max(_num(ev.get("ticks")), 0.0), MAX_CLICKS)
        span = min(max(_num(ev.get("span_ms"), 1000.0), 0.0) / 1000.0, duration)
        scroll_s += max(0.0, min(ev.ts, end) - max(ev.ts - span, start))
    scroll_s = min(scroll_s, duration)

    # --- focus / apps ------------------------------------------------------------------------
    earlier = [*context, *(e for e in all_events if e.ts < start)]
    left: dict[str, float] = {}
    app, category, since = _focus_before(start, earlier, left)
    seg_start = start
    app_time: dict[str | None, float] = {}
    cat_time: dict[str | None, float] = {}
    categories: set[str] = {category} if category else set()
    switches = 0
    new_switches = 0
    rapid = 0
    visits: list[float] = []
    settled_left: float | None = None  # when the span's first switch left a settled app
    after_settled = 0.0  # weighted switches after that one
    for ev in focus:
        ev_app = _str(ev.get("app_id"))
        if ev_app is None or ev_app == app:
            continue
        span = ev.ts - seg_start
        app_time[app] = app_time.get(app, 0.0) + span
        cat_time[category] = cat_time.get(category, 0.0) + span
        if app is not None:
            switches += 1
            # a switch to an app not in front during the last return_s: not a trip and back
            new = ev.ts - left.get(ev_app, -math.inf) > p.return_s
            if new:
                new_switches += 1
            left[app] = ev.ts
            visit = ev.ts - (since if since is not None else start)
            if switches == 1 and visit >= p.settled_s:
                settled_left = ev.ts
            elif settled_left is not None:
                after_settled += 1.0 if new else 0.5
            visits.append(visit)
            if visit < p.rapid_dwell_s:
                rapid += 1
        app, since, seg_start = ev_app, ev.ts, ev.ts
        category = _str(ev.get("category"))
        if category:
            categories.add(category)
    tail = max(end - seg_start, 0.0)
    app_time[app] = app_time.get(app, 0.0) + tail
    cat_time[category] = cat_time.get(category, 0.0) + tail
    span_total = max(end - start, 0.0)

    def share(group: frozenset[str]) -> float:
        if span_total <= 0.0:
            return 0.0
        return min(sum(t for c, t in cat_time.items() if c in group) / span_total, 1.0)

    dominant = max(app_time.values()) / span_total if span_total > 0.0 else 1.0
    weighted = new_switches + 0.5 * (switches - new_switches)
    # the rate since a settled app was left: a change of activity a minute or two ago shows at
    # its own rate, not diluted by the settled minutes before it
    unsettled = 0.0
    if settled_left is not None and after_settled >= UNSETTLED_MIN_SWITCHES:
        unsettled = after_settled * 60.0 / max(end - settled_left, p.settled_span_s)

    # --- idle / presence ---------------------------------------------------------------------
    idle_s = 0.0
    for ev in idles:
        span = min(max(_num(ev.get("duration_s")), 0.0), duration)
        idle_s += max(0.0, min(ev.ts, end) - max(ev.ts - span, start))
    # a mouse sample that neither moved nor clicked is a host reporting a resting pointer
    inputs = [e.ts for e in inside if e.kind in ("key", "focus", "scroll")] + moved
    quiet_tail = end - max(inputs) if inputs else duration

    return WindowFeatures(
        duration_s=duration,
        key_count=float(len(keys)),
        keys_per_min=len(keys) * per_min,
        iki_mean_ms=iki_mean * 1000.0,
        iki_cv=iki_cv,
        iki_n=float(len(rhythm)),
        iki_median_ms=iki_median * 1000.0,
        iki_core_ms=iki_core * 1000.0,
        iki_core_cv=iki_core_cv,
        iki_rcv=iki_rcv,
        burst_count=float(len(bursts)),
        burst_mean_keys=(sum(n for n, _ in bursts) / len(bursts)) if bursts else 0.0,
        typing_duty=min(sum(d for _, d in bursts) / duration, 1.0),
        pause_count=float(len(pauses)),
        pauses_per_min=len(pauses) * per_min,
        longest_pause_s=max(pauses, default=0.0),
        correction_rate=corrections / len(keys) if keys else 0.0,
        mouse_active_s=active_s,
        mouse_active_frac=active_s / duration,
        mouse_speed_mean=speed_mean,
        clicks=clicks,
        clicks_per_min=clicks * per_min,
        scroll_ticks=ticks,
        scroll_ticks_per_min=ticks * per_min,
        scroll_active_frac=scroll_s / duration,
        pointer_frac=min((active_s + scroll_s) / duration, 1.0),
        switches=float(switches),
        switches_per_min=switches * per_min,
        new_switches=float(new_switches),
        new_switches_per_min=new_switches * per_min,
        weighted_switches_per_min=weighted * per_min,
        unsettled_switches_per_min=max(weighted * per_min, unsettled),
        dwell_mean_s=duration / (switches + 1),
        visit_mean_s=math.fsum(visits) / len(visits) if visits else duration,
        visit_min_s=min(visits) if visits else duration,
        rapid_switch_ratio=rapid / switches if switches else 0.0,
        dominant_app_share=min(max(dominant, 0.0), 1.0),
        work_share=share(WORK_CATEGORIES),
        comm_share=share(COMM_CATEGORIES),
        browser_share=share(BROWSER_CATEGORIES),
        leisure_share=share(LEISURE_CATEGORIES),
        distinct_categories=float(len(categories)),
        idle_frac=min(idle_s / duration, 1.0),
        quiet_tail_s=min(max(quiet_tail, 0.0), duration),
        front_visit_s=max(end - since, 0.0) if since is not None else 0.0,
        input_per_min=len(inputs) * per_min,
    )
