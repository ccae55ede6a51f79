"""Typed, immutable message payloads carried by the bus.

The seed's fourteen types (RawEvent … Error) plus what the system itself needs (HealthReply,
UserInput, LinkStatus).  Every payload is a frozen, slotted dataclass: a subscriber can keep a
reference without fearing that another subscriber changes it.  Mappings are carried as tuples of
pairs for the same reason (``attrs``, ``features``, ``values``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

Scalar = float | int | bool | str
Pairs = tuple[tuple[str, Scalar], ...]


class ModuleId(StrEnum):
    """The eight modules that register with the bus (names as the seed spelled them)."""

    EVENT_BUS = "EventBus"
    ORCHESTRATOR = "Orchestrator"
    STORAGE = "Storage"
    DATA_CAPTURE = "DataCapture"
    ANALYSIS = "AnalysisEngine"
    GAMIFICATION = "Gamification"
    AI = "AI"
    FIGURINE = "CuteFigurine"


class FocusState(StrEnum):
    """The one canonical state vocabulary used everywhere."""

    FLOW = "FLOW"
    HYPERFOCUS = "HYPERFOCUS"
    NEUTRAL = "NEUTRAL"
    TRANSITIONING = "TRANSITIONING"
    DISTRACTED = "DISTRACTED"
    IDLE = "IDLE"


class ModuleStatus(Enum):
    STARTING = "Starting"
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNHEALTHY = "Unhealthy"
    SHUTTING_DOWN = "ShuttingDown"
    STOPPED = "Stopped"


def pairs_get(pairs: Pairs, name: str, default: Scalar | None = None) -> Scalar | None:
    for key, value in pairs:
        if key == name:
            return value
    return default


@dataclass(frozen=True, slots=True)
class Message:
    """Base class of every payload; carries no fields of its own."""


# --- the seed's fourteen --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawEvent(Message):
    """One host capture event (timing and categories only, see docs/INGEST.md)."""

    host_id: str
    session_id: str
    seq: int
    kind: str
    ts: float
    attrs: Pairs = ()

    def get(self, name: str, default: Scalar | None = None) -> Scalar | None:
        return pairs_get(self.attrs, name, default)


@dataclass(frozen=True, slots=True)
class EventBatch(Message):
    """A window of stored events handed to analysis."""

    window_start: float
    window_end: float
    events: tuple[RawEvent, ...]
    host_id: str = ""


@dataclass(frozen=True, slots=True)
class StorageStatus(Message):
    ok: bool
    events_total: int
    pending: int
    last_commit_ts: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AnalysisComplete(Message):
    """The analysis of one host's window (``host_id`` = ``EventBatch.host_id``)."""

    window_start: float
    window_end: float
    state: FocusState
    confidence: float
    raw_state: FocusState
    time_in_state_s: float
    features: tuple[tuple[str, float], ...] = ()
    host_id: str = ""


@dataclass(frozen=True, slots=True)
class StateChange(Message):
    """One host's focus state changed (each host has its own tracker)."""

    previous: FocusState
    current: FocusState
    confidence: float
    at: float
    previous_duration_s: float
    host_id: str = ""


@dataclass(frozen=True, slots=True)
class InterventionRequest(Message):
    intervention_id: str
    kind: str
    state: FocusState
    time_in_state_s: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RewardEvent(Message):
    kind: str
    coins: int
    total_coins: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class InterventionResponse(Message):
    intervention_id: str
    response: str
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class AnimationCommand(Message):
    name: str
    duration_s: float = 0.0
    text: str = ""
    glow: tuple[int, int, int] | None = None
    melt: int | None = None
    sound: str | None = None
    intervention_id: str = ""


@dataclass(frozen=True, slots=True)
class HealthCheck(Message):
    request_id: int


@dataclass(frozen=True, slots=True)
class ConfigUpdate(Message):
    section: str
    values: Pairs = ()


@dataclass(frozen=True, slots=True)
class Shutdown(Message):
    reason: str
    deadline_s: float = 10.0


@dataclass(frozen=True, slots=True)
class ModuleReady(Message):
    module: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Error(Message):
    module: str
    where: str
    error: str
    message_type: str = ""
    fatal: bool = False


# --- what the system needs beyond the seed ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class HealthReply(Message):
    request_id: int
    module: str
    status: ModuleStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UserInput(Message):
    """A gesture on the figurine: ``short``, ``long``, ``double`` or ``touch``."""

    gesture: str
    origin: str
    at: float


@dataclass(frozen=True, slots=True)
class LinkStatus(Message):
    """Up/down of the host ingest link (``link="host"``) or the MCU link (``link="mcu"``)."""

    link: str
    up: bool
    peer: str = ""
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CompanionMode(Message):
    """Gamification's user-facing mode, published (retained by consumers) whenever it changes:
    ``quiet`` = inside quiet hours (no interventions, no sound, dim glow); ``snoozed_until`` =
    Pi wall-clock epoch seconds until which interventions are snoozed (0.0 = not snoozed).
    CuteFigurine dims and mutes on ``quiet``."""

    quiet: bool
    snoozed_until: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CompanionCommand(Message):
    """A request to Gamification from outside the figurine (the MQTT bridge, docs/MQTT.md §3):
    ``what="snooze"`` for ``minutes`` (0 ends a snooze), ``what="quiet"`` with ``on`` (holds
    until quiet hours next begin or end)."""

    what: str
    minutes: float = 0.0
    on: bool = False
    origin: str = ""


SEED_TYPES: tuple[type[Message], ...] = (
    RawEvent,
    EventBatch,
    StorageStatus,
    AnalysisComplete,
    StateChange,
    InterventionRequest,
    RewardEvent,
    InterventionResponse,
    AnimationCommand,
    HealthCheck,
    ConfigUpdate,
    Shutdown,
    ModuleReady,
    Error,
)
SYSTEM_TYPES: tuple[type[Message], ...] = (
    HealthReply,
    UserInput,
    LinkStatus,
    CompanionMode,
    CompanionCommand,
)
ALL_TYPES: tuple[type[Message], ...] = SEED_TYPES + SYSTEM_TYPES
