"""The MQTT bridge's pure core: topics, payloads, discovery, commands, rate limit, out buffer.

Theory of operation: the shell (``module.py``) turns bus messages into ``(topic, payload,
retain)`` with the builders here and puts them in an :class:`OutBuffer` — bounded, one pending
value per topic, the newest wins — which the network task drains while the broker is there.  What
arrives on the device's command topics goes through :func:`parse_command` (validation) and a
:class:`TokenBucket` (rate) before the shell turns it into bus messages.  Nothing here reads a
clock, touches the network or the bus: every rule is tested with plain values
(tests/mqtt/test_core.py).  docs/MQTT.md documents every topic and payload; its examples are
parsed by the tests so the two cannot drift.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from bus.messages import FocusState

AVAILABLE = "online"
NOT_AVAILABLE = "offline"
MIRROR_PREFIX = "mirror:"
"""``StateChange.host_id`` of a state shown on behalf of another device (docs/MQTT.md §5)."""

COMMANDS = ("snooze", "quiet", "pet", "brightness")
SNOOZE_MAX_MIN = 240
SNOOZE_BUTTON_MIN = 30


def dumps(obj: Any) -> str:
    """Compact JSON, keys in the order given (what the docs show)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic of one device (``<prefix>/<device_id>/…``)."""

    prefix: str
    device_id: str
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        return f"{self.base}/state"

    @property
    def coins(self) -> str:
        return f"{self.base}/coins"

    @property
    def mode(self) -> str:
        return f"{self.base}/mode"

    @property
    def intervention(self) -> str:
        return f"{self.base}/intervention"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    def link(self, name: str) -> str:
        return f"{self.base}/link/{name}"

    def command(self, name: str) -> str:
        return f"{self.base}/cmd/{name}"

    @property
    def commands(self) -> str:
        """The subscription for every command of this device."""
        return f"{self.base}/cmd/+"

    def command_name(self, topic: str) -> str | None:
        """``snooze`` for ``<base>/cmd/snooze``; None for a topic that is not this device's
        command topic."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        return topic[len(head) :]

    def discovery(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.device_id}/{object_id}/config"


# --- payloads ---------------------------------------------------------------------------------


def state_payload(
    state: FocusState, time_in_state_s: float, confidence: float, host: str, since: float
) -> str:
    return dumps(
        {
            "state": state.value,
            "time_in_state_s": int(max(0.0, time_in_state_s)),
            "confidence": round(confidence, 2),
            "host": host,
            "since": round(since, 1),
        }
    )


def coins_payload(today: int, total: int, streak: int) -> str:
    return dumps({"today": today, "total": total, "streak": streak})


def mode_payload(quiet: bool, snoozed_until: float, reason: str) -> str:
    return dumps({"quiet": quiet, "snoozed_until": round(snoozed_until, 1), "reason": reason})


def intervention_payload(intervention_id: str, kind: str, at: float) -> str:
    return dumps({"id": intervention_id, "kind": kind, "at": round(at, 1)})


def link_payload(up: bool) -> str:
    return "up" if up else "down"


def parse_state(payload: bytes) -> tuple[FocusState, float] | None:
    """A peer's state payload → (state, confidence), or None if it is not one."""
    try:
        obj = json.loads(payload)
        state = FocusState(obj["state"])
        confidence = float(obj.get("confidence", 0.0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not math.isfinite(confidence):
        confidence = 0.0
    return state, min(max(confidence, 0.0), 1.0)


# --- Home Assistant discovery -----------------------------------------------------------------


def discovery_configs(topics: Topics, version: str, name: str = "") -> list[tuple[str, str]]:
    """(topic, JSON config) of every entity, for Home Assistant's MQTT discovery.  Unique ids are
    ``skelly_<device_id>_<object>``: stable for a device id, whatever the broker or the host."""
    dev = topics.device_id
    device = {
        "identifiers": [f"skelly_{dev}"],
        "name": name or f"Skelly {dev}",
        "manufacturer": "Skelly-Jelly",
        "model": "Skelly-Jelly Edge figurine",
        "sw_version": version,
    }
    common = {
        "availability_topic": topics.availability,
        "payload_available": AVAILABLE,
        "payload_not_available": NOT_AVAILABLE,
        "device": device,
    }
    entities: list[tuple[str, str, dict[str, Any]]] = [
        (
            "sensor",
            "focus",
            {
                "name": "Focus state",
                "state_topic": topics.state,
                "value_template": "{{ value_json.state }}",
                "json_attributes_topic": topics.state,
                "icon": "mdi:brain",
            },
        ),
        (
            "sensor",
            "time_in_state",
            {
                "name": "Time in state",
                "state_topic": topics.state,
                "value_template": "{{ value_json.time_in_state_s }}",
                "unit_of_measurement": "s",
                "device_class": "duration",
            },
        ),
        (
            "sensor",
            "coins_today",
            {
                "name": "Coins today",
                "state_topic": topics.coins,
                "value_template": "{{ value_json.today }}",
                "icon": "mdi:hand-coin",
            },
        ),
        (
            "sensor",
            "streak",
            {
                "name": "Streak",
                "state_topic": topics.coins,
                "value_template": "{{ value_json.streak }}",
                "unit_of_measurement": "d",
                "icon": "mdi:fire",
            },
        ),
        (
            "sensor",
            "health",
            {"name": "Service health", "state_topic": topics.health, "icon": "mdi:heart-pulse"},
        ),
        (
            "binary_sensor",
            "host_link",
            {
                "name": "Host link",
                "state_topic": topics.link("host"),
                "payload_on": "up",
                "payload_off": "down",
                "device_class": "connectivity",
            },
        ),
        (
            "binary_sensor",
            "mcu_link",
            {
                "name": "Figurine link",
                "state_topic": topics.link("mcu"),
                "payload_on": "up",
                "payload_off": "down",
                "device_class": "connectivity",
            },
        ),
        (
            "button",
            "snooze",
            {
                "name": f"Snooze {SNOOZE_BUTTON_MIN} min",
                "command_topic": topics.command("snooze"),
                "payload_press": dumps({"minutes": SNOOZE_BUTTON_MIN}),
                "icon": "mdi:sleep",
            },
        ),
        (
            "button",
            "pet",
            {
                "name": "Pet",
                "command_topic": topics.command("pet"),
                "payload_press": "{}",
                "icon": "mdi:hand-heart",
            },
        ),
        (
            "switch",
            "quiet",
            {
                "name": "Quiet mode",
                "state_topic": topics.mode,
                "value_template": "{{ 'ON' if value_json.quiet else 'OFF' }}",
                "command_topic": topics.command("quiet"),
                "payload_on": dumps({"on": True}),
                "payload_off": dumps({"on": False}),
                "state_on": "ON",
                "state_off": "OFF",
                "icon": "mdi:volume-off",
            },
        ),
    ]
    out = []
    for component, object_id, config in entities:
        body: dict[str, Any] = {
            "unique_id": f"skelly_{dev}_{object_id}",
            "object_id": f"skelly_{dev}_{object_id}",
        }
        body.update(config)
        body.update(common)
        out.append((topics.discovery(component, object_id), dumps(body)))
    return out


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A valid command: ``snooze`` (minutes 0 … 240; 0 ends a snooze), ``quiet`` (on), ``pet``,
    ``brightness`` (percent 0 … 100)."""

    name: str
    minutes: float = 0.0
    on: bool = False
    percent: int = 0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a command was refused: ``kind`` is one of ``unknown``, ``bad_json``, ``bad_field``,
    ``out_of_range``, ``rate_limited`` (counted per kind); ``reason`` in words."""

    kind: str
    reason: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def parse_command(name: str, payload: bytes) -> Command | Refusal:
    """Validate one command (docs/MQTT.md §3): a JSON object with exactly the documented keys."""
    if name not in COMMANDS:
        return Refusal("unknown", f"no command {name!r} (known: {', '.join(COMMANDS)})")
    try:
        obj = json.loads(payload) if payload.strip() else None
    except (ValueError, UnicodeDecodeError):
        return Refusal("bad_json", f"{name}: payload is not JSON")
    if not isinstance(obj, dict):
        return Refusal("bad_json", f"{name}: payload must be a JSON object")
    expected = {"snooze": {"minutes"}, "quiet": {"on"}, "pet": set(), "brightness": {"percent"}}
    if set(obj) != expected[name]:
        want = ", ".join(sorted(expected[name])) or "no keys"
        return Refusal("bad_field", f"{name}: expected {want}, got {', '.join(sorted(obj))}")
    if name == "snooze":
        minutes = _number(obj["minutes"])
        if minutes is None:
            return Refusal("bad_field", "snooze: minutes must be a number")
        if not 0 <= minutes <= SNOOZE_MAX_MIN:
            return Refusal("out_of_range", f"snooze: minutes must be 0..{SNOOZE_MAX_MIN}")
        return Command("snooze", minutes=minutes)
    if name == "quiet":
        if not isinstance(obj["on"], bool):
            return Refusal("bad_field", "quiet: on must be true or false")
        return Command("quiet", on=obj["on"])
    if name == "brightness":
        percent = _number(obj["percent"])
        if percent is None:
            return Refusal("bad_field", "brightness: percent must be a number")
        if not 0 <= percent <= 100:
            return Refusal("out_of_range", "brightness: percent must be 0..100")
        return Command("brightness", percent=round(percent))
    return Command("pet")


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; :meth:`take` spends one if there is one."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.at = now

    def take(self, now: float) -> bool:
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


# --- the outgoing buffer ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: str
    retain: bool


@dataclass
class OutBuffer:
    """Latest-only, bounded: at most one pending message per topic and ``max_topics`` topics.

    :meth:`put` never blocks: a newer message for a topic replaces the pending one (counted in
    ``superseded``); a new topic beyond ``max_topics`` evicts the oldest pending one (counted in
    ``evicted``).  ``dropped`` = both.  The network task takes everything with :meth:`take_all`.
    """

    max_topics: int = 64
    pending: OrderedDict[str, Outgoing] = field(default_factory=OrderedDict)
    superseded: int = 0
    evicted: int = 0
    put_total: int = 0

    def put(self, msg: Outgoing) -> None:
        self.put_total += 1
        if msg.topic in self.pending:
            self.superseded += 1
            del self.pending[msg.topic]
        elif len(self.pending) >= self.max_topics:
            self.pending.popitem(last=False)
            self.evicted += 1
        self.pending[msg.topic] = msg

    def take_all(self) -> list[Outgoing]:
        out = list(self.pending.values())
        self.pending.clear()
        return out

    @property
    def dropped(self) -> int:
        return self.superseded + self.evicted

    def __len__(self) -> int:
        return len(self.pending)
