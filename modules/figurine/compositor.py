"""The figurine's pure core: base look + overlays → one desired :class:`Look` per instant.

Feed it what the bus says, each call with ``now`` (monotonic seconds); read :meth:`look` and the
:class:`~bus.messages.InterventionResponse` values the calls return.  No I/O, no clock, no bus:
the module shell (``module.py``) owns those.  The rules are docs/FIGURINE.md §1-§4.
"""

from __future__ import annotations

from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    CompanionMode,
    FocusState,
    InterventionResponse,
    LinkStatus,
    StateChange,
)
from modules.figurine.config import FigurineConfig
from modules.figurine.look import (
    ENERGY_STEP,
    SLEEPY,
    STATE_LOOKS,
    Look,
    StateLook,
    base_melt,
    energy_factor,
)
from modules.figurine.overlays import OWN_DURATIONS, Change, Overlay, OverlayQueue

OVERLAY_MIN_INTENSITY = 0.7
PET_ENERGY = 5.0


class Compositor:
    def __init__(self, config: FigurineConfig | None = None, *, now: float = 0.0) -> None:
        self.config = config or FigurineConfig()
        self.state = FocusState.NEUTRAL
        self.time_in_state_s = 0.0
        self.energy = 50.0
        self.quiet = False
        self.brightness = 1.0
        """Set from outside (MQTT ``brightness``, docs/MQTT.md §3): scales glow and eyes."""
        self.overlays = OverlayQueue(self.config.stale_after_s)
        self._hosts: set[str] = set()
        self._host_away_since: float | None = now
        self._cues = 0

    # -- inputs ---------------------------------------------------------------------------
    def on_state_change(self, change: StateChange, now: float) -> list[InterventionResponse]:
        self.state = change.current
        self.time_in_state_s = 0.0
        return self.update(now)

    def on_analysis(self, result: AnalysisComplete, now: float) -> list[InterventionResponse]:
        self.state = result.state
        self.time_in_state_s = result.time_in_state_s
        target = STATE_LOOKS[result.state].energy_target
        self.energy += (target - self.energy) * ENERGY_STEP
        return self.update(now)

    def on_host_link(self, status: LinkStatus, now: float) -> list[InterventionResponse]:
        if status.link != "host":
            return []
        peer = status.peer or "?"
        if status.up:
            self._hosts.add(peer)
            self._host_away_since = None
        else:
            self._hosts.discard(peer)
            if not self._hosts and self._host_away_since is None:
                self._host_away_since = now
        return self.update(now)

    def on_mode(self, mode: CompanionMode, now: float) -> list[InterventionResponse]:
        self.quiet = mode.quiet
        return self.update(now)

    def on_brightness(self, percent: float, now: float) -> list[InterventionResponse]:
        self.brightness = max(0.0, min(100.0, percent)) / 100.0
        return self.update(now)

    def on_animation(self, cmd: AnimationCommand, now: float) -> list[InterventionResponse]:
        duration = cmd.duration_s if cmd.duration_s > 0 else self.config.default_overlay_s
        overlay = Overlay(
            cmd.name,
            duration,
            now,
            text=cmd.text,
            glow=cmd.glow,
            melt=None if cmd.melt is None else max(0, min(100, cmd.melt)),
            sound=cmd.sound or "",
            intervention_id=cmd.intervention_id,
        )
        return self._responses(self.overlays.push(overlay, now), now)

    def on_gesture(self, gesture: str, now: float) -> list[InterventionResponse]:
        """A button gesture from either back end: short / long / double / touch."""
        out = self._responses(self.overlays.update(now), now)
        showing = self.overlays.showing
        if gesture == "touch":
            gesture = "double"  # a touch pets, like a double press
        response = ""
        if showing is not None and showing.intervention_id and showing.started is not None:
            since = now - showing.started
            if gesture == "short":
                response = "dismissed" if since < self.config.quick_dismiss_s else "engaged"
            elif gesture == "double":
                response = "engaged"
            elif gesture == "long":
                response = "snoozed"
            if response:
                out.append(InterventionResponse(showing.intervention_id, response, since))
                out += self._responses(self.overlays.remove(showing, now), now)
        elif showing is not None and gesture == "short":
            out += self._responses(self.overlays.remove(showing, now), now)
        if gesture == "double":
            self.energy = min(100.0, self.energy + PET_ENERGY)
            out += self._own("pet", now)
        elif gesture == "long":
            out += self._own("snooze", now)
        return out

    def update(self, now: float) -> list[InterventionResponse]:
        """Expire overlays and start the next; call at :meth:`next_deadline`."""
        return self._responses(self.overlays.update(now), now)

    # -- outputs --------------------------------------------------------------------------
    def sleepy(self, now: float) -> bool:
        away = self._host_away_since
        return away is not None and now >= away + self.config.sleepy_after_s

    def base(self, now: float) -> StateLook:
        return SLEEPY if self.sleepy(now) else STATE_LOOKS[self.state]

    def look(self, now: float) -> Look:
        base = self.base(now)
        factor = energy_factor(self.energy)
        dim = (self.config.quiet_dim if self.quiet else 1.0) * self.brightness
        melt = SLEEPY.melt if base is SLEEPY else base_melt(self.state, self.time_in_state_s)
        o = self.overlays.showing
        if o is None:
            return Look(
                base.rgb,
                round(base.intensity * factor * dim, 2),
                base.pulse_s,
                melt,
                round(base.eyes * factor * dim, 2),
                base.face,
                base.mood,
            )
        return Look(
            o.glow or base.rgb,
            round(max(base.intensity * factor, OVERLAY_MIN_INTENSITY) * dim, 2),
            0.0,
            melt if o.melt is None else o.melt,
            round(1.0 * dim, 2),
            o.face,
            "happy" if o.name == "pet" else base.mood,
            text=o.text,
            animation=o.animation,
            sound="" if self.quiet else o.sound,
            cue_serial=o.cue,
        )

    def next_deadline(self, now: float) -> float | None:
        times = [t for t in (self.overlays.next_deadline(),) if t is not None]
        away = self._host_away_since
        if away is not None and not self.sleepy(now):
            times.append(away + self.config.sleepy_after_s)
        return min(times) if times else None

    # -- helpers --------------------------------------------------------------------------
    def _own(self, name: str, now: float) -> list[InterventionResponse]:
        overlay = Overlay(name, OWN_DURATIONS[name], now)
        return self._responses(self.overlays.push(overlay, now), now)

    def _responses(self, changes: list[Change], now: float) -> list[InterventionResponse]:
        out: list[InterventionResponse] = []
        for change in changes:
            o = change.overlay
            if change.what == "started":
                self._cues += 1
                o.cue = self._cues
            if not o.intervention_id:
                continue
            if change.what == "started":
                out.append(InterventionResponse(o.intervention_id, "delivered", now - o.arrived))
            elif change.what == "ended":
                out.append(InterventionResponse(o.intervention_id, "ignored", o.duration_s))
            elif change.what in ("stale", "dropped"):
                out.append(InterventionResponse(o.intervention_id, "ignored", 0.0))
        return out
