"""What the live view shows, as plain values fed from the bus and the simulated MCU.

No terminal, no clock: every method that depends on time takes ``now`` (event time, the
simulator's compressed clock), so the view renders the same model the same way in a test.
``version`` counts changes, so the view re-renders only when something it shows changed.
"""

from __future__ import annotations

import dataclasses
import re
from collections import deque

from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    CompanionMode,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    Message,
    RewardEvent,
    StateChange,
    UserInput,
)
from firmware_bridge.core.protocol import FigurineState

TIMELINE_S = 3600.0
"""The state timeline covers the last hour of event time (a minute of real time at 60x)."""
LOG_LINES = 3


@dataclasses.dataclass
class Intervention:
    kind: str
    state: FocusState
    time_in_state_s: float
    intervention_id: str
    at: float
    response: str = ""


@dataclasses.dataclass
class Press:
    gesture: str
    origin: str
    at: float


class ViewModel:
    """Everything the view draws; ``on_message`` takes the bus messages it cares about."""

    def __init__(self, *, timeline_s: float = TIMELINE_S, log_lines: int = LOG_LINES) -> None:
        self.timeline_s = timeline_s
        self.version = 0
        self.look: FigurineState | None = None
        self.state: FocusState | None = None
        self.host_id = ""
        self.confidence = 0.0
        self._tis: tuple[float, float] | None = None  # (time in state, at event time)
        self.transitions: deque[tuple[float, FocusState]] = deque()
        self.coins: int | None = None
        self.streak: int | None = None
        self.links: dict[str, tuple[bool, str]] = {}
        self.intervention: Intervention | None = None
        self.press: Press | None = None
        self.animation = ""
        self.quiet = False
        self.snoozed_until = 0.0
        self.pins = ""
        self.log: deque[str] = deque(maxlen=log_lines)

    def changed(self) -> None:
        self.version += 1

    # -- inputs -----------------------------------------------------------------------------
    def on_look(self, look: FigurineState) -> None:
        if look != self.look:
            self.look = look
            self.changed()

    def on_pins(self, line: str) -> None:
        if line != self.pins:
            self.pins = line
            self.changed()

    def add_line(self, line: str) -> None:
        self.log.append(line)
        self.changed()

    def on_message(self, msg: Message) -> None:
        match msg:
            case StateChange():
                self._to_state(msg.current, msg.at, msg.host_id)
                self.confidence = msg.confidence
                self._tis = (0.0, msg.at)
            case AnalysisComplete():
                self._to_state(msg.state, msg.window_end, msg.host_id)
                self.confidence = msg.confidence
                self._tis = (msg.time_in_state_s, msg.window_end)
            case LinkStatus():
                self.links[msg.link] = (msg.up, msg.detail)
            case RewardEvent():
                self.coins = msg.total_coins
                if msg.kind == "streak":  # Gamification says "<n> day streak"
                    found = re.match(r"\s*(\d+) day streak", msg.reason)
                    if found:
                        self.streak = int(found.group(1))
            case InterventionRequest():
                self.intervention = Intervention(
                    msg.kind, msg.state, msg.time_in_state_s, msg.intervention_id, self._now()
                )
            case InterventionResponse():
                current = self.intervention
                if current is not None and current.intervention_id == msg.intervention_id:
                    current.response = msg.response
            case UserInput():
                self.press = Press(msg.gesture, msg.origin, self._now())
            case AnimationCommand():
                self.animation = msg.name
            case CompanionMode():
                self.quiet, self.snoozed_until = msg.quiet, msg.snoozed_until
            case _:
                return
        self.changed()

    def _now(self) -> float:
        return self._tis[1] if self._tis is not None else 0.0

    def _to_state(self, state: FocusState, at: float, host_id: str) -> None:
        self.host_id = host_id or self.host_id
        if state is not self.state:
            self.state = state
            self.transitions.append((at, state))
        # keep the last transition before the timeline's start: it colours the first cells
        start = at - self.timeline_s
        while len(self.transitions) > 1 and self.transitions[1][0] <= start:
            self.transitions.popleft()

    # -- derived values ---------------------------------------------------------------------
    def time_in_state(self, now: float) -> float | None:
        """Seconds in the current state at ``now``: the analysis's own (blip-tolerant) time in
        state at its last window, plus the time since."""
        if self._tis is None or self.state is None:
            return None
        tis, at = self._tis
        return tis + max(0.0, now - at)

    def timeline(self, now: float, cells: int) -> list[FocusState | None]:
        """The state at the middle of each of ``cells`` equal slices of the last
        ``timeline_s`` seconds before ``now`` (None: no state known yet)."""
        step = self.timeline_s / cells
        out: list[FocusState | None] = []
        marks = list(self.transitions)
        i = -1
        for cell in range(cells):
            t = now - self.timeline_s + (cell + 0.5) * step
            while i + 1 < len(marks) and marks[i + 1][0] <= t:
                i += 1
            out.append(marks[i][1] if i >= 0 else None)
        return out
