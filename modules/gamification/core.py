"""Gamification's decisions as a pure core (docs/COMPANION.md is the rule book).

Theory of operation: :class:`Companion` is fed events with the Pi's wall-clock ``now`` (epoch
seconds) — :meth:`on_analysis`, :meth:`on_state_change`, :meth:`on_input`, :meth:`on_response`
and :meth:`tick` — and each call returns the bus messages to publish (``InterventionRequest``,
``RewardEvent``, ``CompanionMode``).  It reads no clock, does no I/O and holds no task: the
shell (``modules.gamification.module``) calls :meth:`tick` at :meth:`next_deadline` and saves
:meth:`snapshot` whenever :attr:`dirty` is set.  Durations of states come from the
AnalysisEngine's blip-tolerant ``time_in_state_s`` (event time); cooldowns, snooze and the
rolling hour use ``now``; "today", quiet hours and the streak use the local wall time of ``now``
in the injected time zone.

Clock jumps (NTP at boot, a manual change): a stored instant later than ``now`` (the clock went
back) is pulled back to ``now``, so a cooldown restarts rather than lasting for ever, and a
snooze never lasts longer than ``snooze_min`` from ``now``; a jump forward simply lets them
expire.  Daily progress is kept per local date: a jump back to a date already seen does not grant
its milestones or its streak day again, and a streak is never extended by a date not after the
last counted one.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from bus.messages import (
    AnalysisComplete,
    CompanionCommand,
    CompanionMode,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    Message,
    RewardEvent,
    StateChange,
    UserInput,
)
from modules.gamification.config import GamificationConfig
from modules.gamification.localtime import QuietHours, local_date

log = logging.getLogger(__name__)

FOCUS = (FocusState.FLOW, FocusState.HYPERFOCUS)
WORKING = (FocusState.FLOW, FocusState.HYPERFOCUS, FocusState.NEUTRAL)
KINDS = ("break", "nudge", "recovery")
"""Interventions (counted, cooled down, answered); "celebrate" is not one (COMPANION.md §4)."""
FINAL_RESPONSES = ("dismissed", "engaged", "ignored", "snoozed")
SNAPSHOT_VERSION = 1
KEEP_DAYS = 8
HOUR_S = 3600.0
MAX_HOSTS = 16
"""Hosts remembered at once (the one silent longest is forgotten)."""
MAX_SNOOZE_MIN = 240.0
"""The longest snooze a CompanionCommand may ask for."""
MAX_WINDOW_STEP_S = 60.0
"""Focus time credited for one analysis window at most (windows arrive every 10 s)."""


@dataclass
class HostTrack:
    """What the core remembers about one host's analysis (not persisted)."""

    state: FocusState | None = None
    confidence: float = 0.0
    time_in_state_s: float = 0.0
    seen: float = 0.0
    """``now`` of the last analysis."""
    window_end: float | None = None
    run_s: float = 0.0
    """Length of the current focus run (FLOW and HYPERFOCUS together)."""
    carry_s: float = 0.0
    blocks: int = 0
    """Focus blocks already paid in this run."""
    distraction_s: float | None = None
    """Length of the distraction that just ended (None: none pending recovery)."""
    distraction_end: float = 0.0


@dataclass
class Pending:
    intervention_id: str
    kind: str
    requested_at: float


@dataclass
class Progress:
    """Everything persisted (the snapshot)."""

    coins: int = 0
    streak: int = 0
    streak_date: str = ""
    next_id: int = 1
    snoozed_until: float = 0.0
    snooze_s: float = 0.0
    """Length of the snooze in force (0: ``snooze_min``), the limit after a clock jump."""
    cooldown_s: dict[str, float] = field(default_factory=dict)
    last_delivery: dict[str, float] = field(default_factory=dict)
    deliveries: list[float] = field(default_factory=list)
    """Delivery instants of the last hour (all kinds)."""
    days: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Local ISO date → {"focus_s": float, "milestones": [minutes granted]}."""
    last_celebrate: float = 0.0


class Companion:
    """The pure decision core.  ``tz`` is a ``tzinfo`` or None (the system's local zone)."""

    def __init__(
        self,
        config: GamificationConfig | None = None,
        tz: dt.tzinfo | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.config = cfg = config or GamificationConfig()
        self.tz = tz
        self.quiet_hours = QuietHours(cfg.quiet_start, cfg.quiet_end, tz)
        self.progress = Progress()
        if snapshot is not None:
            self.restore(snapshot)
        for kind in KINDS:
            start, low, high = cfg.cooldown_bounds(kind)
            current = self.progress.cooldown_s.get(kind, start)
            self.progress.cooldown_s[kind] = min(max(current, low), high)
        self.hosts: dict[str, HostTrack] = {}
        self.pending: Pending | None = None
        self.open: dict[str, str] = {}
        """Delivered interventions still waiting for their final response (id → kind)."""
        self.celebration: tuple[float, str] | None = None
        """A celebration held back: (when earned, reason)."""
        self.mode: tuple[bool, float] | None = None
        """The last CompanionMode published (quiet, snoozed_until)."""
        self.dirty = False
        """Progress changed in a way worth saving now (coins, cooldowns, snooze, streak…)."""
        self.minor_dirty = False
        """Only today's focus seconds grew (saved at most once a minute, §7)."""
        self.blocked = ""
        """Why the last candidate intervention was not requested (for tests and ``status``)."""
        self.quiet_override: tuple[bool, float | None] | None = None
        """Quiet mode set by a CompanionCommand: (on, until quiet hours next begin or end);
        not persisted (a restart goes back to the schedule)."""

    # -- persistence --------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        p = self.progress
        return {
            "version": SNAPSHOT_VERSION,
            "coins": p.coins,
            "streak": p.streak,
            "streak_date": p.streak_date,
            "next_id": p.next_id,
            "snoozed_until": p.snoozed_until,
            "snooze_s": p.snooze_s,
            "cooldown_s": dict(p.cooldown_s),
            "last_delivery": dict(p.last_delivery),
            "deliveries": list(p.deliveries),
            "days": {
                k: {"focus_s": v["focus_s"], "milestones": list(v["milestones"])}
                for k, v in p.days.items()
            },
            "last_celebrate": p.last_celebrate,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Take persisted progress; a value of the wrong shape is dropped (and logged), never
        fatal: progress is worth keeping, a crash loop is not."""
        p = Progress()
        try:
            if not isinstance(snap, dict) or snap.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unknown snapshot {str(snap)[:80]!r}")
            p.coins = max(int(snap.get("coins", 0)), 0)
            p.streak = max(int(snap.get("streak", 0)), 0)
            p.streak_date = str(snap.get("streak_date", ""))
            p.next_id = max(int(snap.get("next_id", 1)), 1)
            p.snoozed_until = float(snap.get("snoozed_until", 0.0))
            p.snooze_s = float(snap.get("snooze_s", 0.0))
            p.cooldown_s = {
                str(k): float(v) for k, v in dict(snap.get("cooldown_s", {})).items() if k in KINDS
            }
            p.last_delivery = {
                str(k): float(v) for k, v in dict(snap.get("last_delivery", {})).items()
            }
            p.deliveries = sorted(float(t) for t in snap.get("deliveries", []))
            p.days = {
                str(k): {
                    "focus_s": float(v.get("focus_s", 0.0)),
                    "milestones": [float(m) for m in v.get("milestones", [])],
                }
                for k, v in dict(snap.get("days", {})).items()
            }
            p.last_celebrate = float(snap.get("last_celebrate", 0.0))
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("gamification: stored progress not usable (%s); starting afresh", exc)
            p = Progress()
        self.progress = p

    # -- inputs -------------------------------------------------------------------------------
    def start(self, now: float) -> list[Message]:
        """First call: the initial CompanionMode."""
        self._clamp_clock(now)
        return self._mode(now, "start", force=True)

    def current_mode(self, now: float) -> list[Message]:
        """The CompanionMode in force, again: for a module that started after this one (the
        figurine subscribes after Gamification's first publish, so it would miss quiet hours)."""
        return self._mode(now, "", force=True)

    def on_analysis(self, now: float, a: AnalysisComplete) -> list[Message]:
        cfg = self.config
        out = self._housekeeping(now)
        h = self._host(a.host_id)
        prev = h.state
        step = 0.0
        if h.window_end is not None and now - h.seen < cfg.host_stale_min * 60.0:
            step = min(max(a.window_end - h.window_end, 0.0), MAX_WINDOW_STEP_S)
        h.window_end = a.window_end if h.window_end is None else max(a.window_end, h.window_end)
        h.seen = now
        state, tis = a.state, max(a.time_in_state_s, 0.0)
        # a distraction ends (IDLE means the person left: nothing to recover from)
        if prev is FocusState.DISTRACTED and state is not FocusState.DISTRACTED:
            if state is FocusState.IDLE:
                h.distraction_s = None
            else:
                h.distraction_s = max(h.time_in_state_s, h.distraction_s or 0.0)
                h.distraction_end = now
        elif state in (FocusState.DISTRACTED, FocusState.IDLE):
            h.distraction_s = None
        # focus run: FLOW and HYPERFOCUS are one run; moving between them carries the length on
        if state in FOCUS:
            if prev in FOCUS and prev is not state:
                h.carry_s = h.run_s
            elif prev not in FOCUS:
                h.carry_s, h.blocks = 0.0, 0
            h.run_s = h.carry_s + tis
        else:
            h.run_s = h.carry_s = 0.0
            h.blocks = 0
        h.state, h.confidence, h.time_in_state_s = state, a.confidence, tis
        if state in FOCUS:
            out += self._focus_rewards(now, h, step)
        out += self._recovery(now, h)
        if state is FocusState.HYPERFOCUS and tis >= cfg.break_after_min * 60.0:
            out += self._intervene(now, "break", state, tis, f"hyperfocus for {tis / 60:.0f} min")
        elif state is FocusState.DISTRACTED and tis >= cfg.nudge_after_min * 60.0:
            out += self._intervene(now, "nudge", state, tis, f"distracted for {tis / 60:.0f} min")
        out += self._celebrate(now)
        return out

    def on_state_change(self, now: float, change: StateChange) -> list[Message]:
        """Only the exact length of a distraction that ended is taken from here (the state
        itself follows AnalysisComplete, which carries the time in state)."""
        out = self._housekeeping(now)
        h = self._host(change.host_id)
        if change.previous is FocusState.DISTRACTED and h.state is FocusState.DISTRACTED:
            if change.current is FocusState.IDLE:
                h.distraction_s = None
            else:
                h.distraction_s = max(change.previous_duration_s, h.time_in_state_s)
                h.distraction_end = now
        return out

    def on_input(self, now: float, gesture: UserInput) -> list[Message]:
        out = self._housekeeping(now)
        if gesture.gesture == "long":
            self.progress.snoozed_until = now + self.config.snooze_min * 60.0
            self.progress.snooze_s = 0.0
            self.dirty = True
            out += self._mode(now, "snoozed by a long press")
        return out

    def on_command(self, now: float, cmd: CompanionCommand) -> list[Message]:
        """Snooze for ``minutes`` (0 ends a snooze) or set quiet mode until quiet hours next
        begin or end (docs/MQTT.md §3)."""
        out = self._housekeeping(now)
        origin = f" from {cmd.origin}" if cmd.origin else ""
        if cmd.what == "snooze":
            minutes = min(max(cmd.minutes, 0.0), MAX_SNOOZE_MIN)
            self.progress.snoozed_until = now + minutes * 60.0 if minutes > 0 else 0.0
            self.progress.snooze_s = minutes * 60.0
            self.dirty = True
            why = f"snoozed for {minutes:g} min{origin}" if minutes > 0 else f"snooze ended{origin}"
            out += self._mode(now, why)
        elif cmd.what == "quiet":
            self.quiet_override = (cmd.on, self.quiet_hours.next_change(now))
            out += self._mode(now, f"quiet mode {'on' if cmd.on else 'off'}{origin}")
        return out

    def on_response(self, now: float, r: InterventionResponse) -> list[Message]:
        out = self._housekeeping(now)
        pending = self.pending
        if r.response == "delivered":
            if pending is not None and pending.intervention_id == r.intervention_id:
                self._delivered(now, pending)
            return out
        kind = self.open.pop(r.intervention_id, None)
        if kind is None and pending is not None and pending.intervention_id == r.intervention_id:
            # a final answer without a 'delivered' before it: it was shown
            self._delivered(now, pending)
            kind = self.open.pop(r.intervention_id, None)
        if kind is None or r.response not in FINAL_RESPONSES:
            return out
        factor = {
            "dismissed": self.config.dismissed_factor,
            "engaged": self.config.engaged_factor,
            "ignored": self.config.ignored_factor,
        }.get(r.response)
        if factor is not None:
            _start, low, high = self.config.cooldown_bounds(kind)
            old = self.progress.cooldown_s[kind]
            self.progress.cooldown_s[kind] = min(max(old * factor, low), high)
            self.dirty = True
        return out

    def tick(self, now: float) -> list[Message]:
        out = self._housekeeping(now)
        out += self._celebrate(now)
        return out

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`tick` has something to do next (None: nothing until the next input)."""
        times: list[float] = []
        if self.pending is not None:
            times.append(self.pending.requested_at + self.config.delivery_timeout_s)
        if self.progress.snoozed_until > now:
            times.append(self.progress.snoozed_until)
        change = self.quiet_hours.next_change(now)
        if change is not None:
            times.append(change)
        return min(times) if times else None

    # -- queries ------------------------------------------------------------------------------
    def quiet(self, now: float) -> bool:
        o = self.quiet_override
        if o is not None and (o[1] is None or now < o[1]):
            return o[0]
        return self.quiet_hours.contains(now)

    def snoozed(self, now: float) -> bool:
        return self.progress.snoozed_until > now

    def day(self, now: float) -> dict[str, Any]:
        key = local_date(now, self.tz).isoformat()
        days = self.progress.days
        if key not in days:
            days[key] = {"focus_s": 0.0, "milestones": []}
            for old in sorted(days)[:-KEEP_DAYS]:
                del days[old]
            self.dirty = True
        return days[key]

    # -- rules --------------------------------------------------------------------------------
    def _host(self, host_id: str) -> HostTrack:
        h = self.hosts.get(host_id)
        if h is None:
            if len(self.hosts) >= MAX_HOSTS:  # as AnalysisEngine: forget the one silent longest
                del self.hosts[min(self.hosts, key=lambda k: self.hosts[k].seen)]
            h = self.hosts[host_id] = HostTrack()
        return h

    def _clamp_clock(self, now: float) -> None:
        p = self.progress
        if any(t > now for t in p.deliveries) or any(t > now for t in p.last_delivery.values()):
            p.deliveries = [min(t, now) for t in p.deliveries]
            p.last_delivery = {k: min(t, now) for k, t in p.last_delivery.items()}
            self.dirty = True
        if p.last_celebrate > now:
            p.last_celebrate = now
        limit = now + (p.snooze_s or self.config.snooze_min * 60.0)
        if p.snoozed_until > limit:
            p.snoozed_until = limit
            self.dirty = True

    def _housekeeping(self, now: float) -> list[Message]:
        self._clamp_clock(now)
        p = self.progress
        kept = [t for t in p.deliveries if t > now - HOUR_S]
        if len(kept) != len(p.deliveries):
            p.deliveries = kept
            self.dirty = True
        pending = self.pending
        if pending is not None and now >= pending.requested_at + self.config.delivery_timeout_s:
            self._delivered(pending.requested_at, pending)
        if 0.0 < p.snoozed_until <= now:
            p.snoozed_until = 0.0
            self.dirty = True
        o = self.quiet_override
        if o is not None and o[1] is not None and now >= o[1]:
            self.quiet_override = None
        return self._mode(now, "")

    def _mode(self, now: float, reason: str, force: bool = False) -> list[Message]:
        quiet = self.quiet(now)
        mode = (quiet, self.progress.snoozed_until)
        if mode == self.mode and not force:
            return []
        self.mode = mode
        if not reason:
            reason = "quiet hours" if quiet else "snoozed" if mode[1] else "awake"
        return [CompanionMode(quiet, self.progress.snoozed_until, reason)]

    def _delivered(self, at: float, pending: Pending) -> None:
        p = self.progress
        p.deliveries.append(at)
        p.last_delivery[pending.kind] = at
        p.last_delivery["any"] = max(at, p.last_delivery.get("any", 0.0))
        self.open[pending.intervention_id] = pending.kind
        while len(self.open) > 16:
            del self.open[next(iter(self.open))]
        self.pending = None
        self.dirty = True

    def _protected(self, now: float) -> str:
        """Why the person must not be interrupted now ('' = they may be)."""
        cfg = self.config
        stale = now - cfg.host_stale_min * 60.0
        for host, h in self.hosts.items():
            if h.seen < stale:
                continue
            if h.state is FocusState.FLOW and h.confidence >= cfg.flow_protect_confidence:
                return f"{host or 'host'} in FLOW (confidence {h.confidence:.2f})"
            if h.state is FocusState.HYPERFOCUS and h.time_in_state_s < cfg.break_after_min * 60:
                return f"{host or 'host'} in HYPERFOCUS under {cfg.break_after_min:.0f} min"
        return ""

    def _gate(self, now: float, kind: str) -> str:
        """Why an intervention of ``kind`` may not be requested now ('' = it may)."""
        cfg, p = self.config, self.progress
        if self.quiet(now):
            return "quiet hours"
        if self.snoozed(now):
            return "snoozed"
        if self.pending is not None:
            return f"waiting for {self.pending.intervention_id} to be delivered"
        if kind != "break":
            protected = self._protected(now)
            if protected:
                return protected
        if len([t for t in p.deliveries if t > now - HOUR_S]) >= cfg.max_per_hour:
            return f"{cfg.max_per_hour} interventions in the last hour"
        last_any = p.last_delivery.get("any")
        if kind != "break" and last_any is not None:
            if now - last_any < cfg.global_cooldown_min * 60.0:
                return "global cooldown"
        last = p.last_delivery.get(kind)
        if last is not None and now - last < p.cooldown_s[kind]:
            return f"{kind} cooldown"
        return ""

    def _intervene(
        self, now: float, kind: str, state: FocusState, tis: float, reason: str
    ) -> list[Message]:
        blocked = self._gate(now, kind)
        if blocked:
            self.blocked = f"{kind}: {blocked}"
            return []
        p = self.progress
        ident = f"{kind}-{p.next_id}"
        p.next_id += 1
        self.pending = Pending(ident, kind, now)
        self.blocked = ""
        self.dirty = True
        return [InterventionRequest(ident, kind, state, round(tis, 1), reason)]

    def _reward(self, kind: str, coins: int, reason: str) -> RewardEvent:
        self.progress.coins += coins
        self.dirty = True
        return RewardEvent(kind, coins, self.progress.coins, reason)

    def _focus_rewards(self, now: float, h: HostTrack, step: float) -> list[Message]:
        cfg = self.config
        out: list[Message] = []
        blocks = int(h.run_s // (cfg.focus_block_min * 60.0))
        if blocks > h.blocks:
            n = blocks - h.blocks
            h.blocks = blocks
            out.append(
                self._reward(
                    "focus", n * cfg.focus_coins, f"{h.run_s / 60:.0f} min of focus in one run"
                )
            )
        day = self.day(now)
        if step > 0:
            day["focus_s"] += step
            self.minor_dirty = True
        minutes = day["focus_s"] / 60.0
        for m in cfg.milestones_min:
            if minutes >= m and m not in day["milestones"]:
                day["milestones"].append(m)
                out.append(
                    self._reward("milestone", cfg.milestone_coins, f"{m:.0f} min of focus today")
                )
                self.celebration = (now, f"milestone {m:.0f} min")
        if minutes >= cfg.streak_min_focus_min:
            out += self._streak(now)
        return out

    def _streak(self, now: float) -> list[Message]:
        p = self.progress
        today = local_date(now, self.tz)
        last = dt.date.fromisoformat(p.streak_date) if p.streak_date else None
        if last is not None and today <= last:
            return []  # counted already today, or the clock went back to an earlier date
        p.streak = p.streak + 1 if last == today - dt.timedelta(days=1) else 1
        p.streak_date = today.isoformat()
        self.celebration = (now, f"streak {p.streak} day{'s' if p.streak != 1 else ''}")
        coins = self.config.streak_coins * min(p.streak, 7)
        return [self._reward("streak", coins, f"{p.streak} day streak")]

    def _recovery(self, now: float, h: HostTrack) -> list[Message]:
        cfg = self.config
        if h.distraction_s is None or h.state not in WORKING:
            return []
        length, ended = h.distraction_s, h.distraction_end
        if now - ended > cfg.recovery_within_min * 60.0:
            h.distraction_s = None
            return []
        if length < cfg.recovery_min_distracted_min * 60.0:
            h.distraction_s = None
            return []
        h.distraction_s = None
        assert h.state is not None
        out: list[Message] = [
            self._reward("recovery", cfg.recovery_coins, f"back after {length / 60:.0f} min away")
        ]
        out += self._intervene(
            now, "recovery", h.state, length, f"back after {length / 60:.0f} min distracted"
        )
        return out

    def _celebrate(self, now: float) -> list[Message]:
        """A held celebration is requested when nothing forbids it (not an intervention: no
        cooldown, no cap, no response; at most one per ``celebrate_gap_min``)."""
        cfg, p = self.config, self.progress
        if self.celebration is None:
            return []
        earned, reason = self.celebration
        if now - earned > cfg.celebrate_keep_min * 60.0:
            self.celebration = None
            return []
        if (
            self.quiet(now)
            or self.snoozed(now)
            or self.pending is not None
            or self._protected(now)
            or now - p.last_celebrate < cfg.celebrate_gap_min * 60.0
        ):
            return []
        self.celebration = None
        p.last_celebrate = now
        ident = f"celebrate-{p.next_id}"
        p.next_id += 1
        self.dirty = True
        h = max(self.hosts.values(), key=lambda x: x.seen, default=None)
        state = h.state if h is not None and h.state is not None else FocusState.NEUTRAL
        return [InterventionRequest(ident, "celebrate", state, 0.0, reason)]
