"""The MQTT bridge against a real Mosquitto (tests/mqtt/broker.py): retained states with the
payloads docs/MQTT.md shows, Home Assistant discovery, commands that change the figurine's pins,
refused commands, a wrong password, an ACL that drops the device's topics, TLS, a mirrored
figurine, and ``offline`` on a clean stop."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from bus import ModuleStatus
from bus.messages import (
    AnalysisComplete,
    CompanionMode,
    EventBatch,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    RawEvent,
    RewardEvent,
    StateChange,
    UserInput,
)
from modules.mqtt_bridge import MqttBridge, MqttConfig
from tests.mqtt.broker import Broker, collect, free_port
from tests.mqtt.stack import Stack, mqtt_config, stack

Run = Callable[[Coroutine[Any, Any, Any]], Any]
DOC = Path(__file__).resolve().parents[2] / "docs" / "MQTT.md"
EYES = 23


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def documented() -> dict[str, tuple[bool, str]]:
    """docs/MQTT.md's ```mqtt examples: topic → (retained, payload)."""
    out = {}
    for block in re.findall(r"```mqtt\n(.*?)```", DOC.read_text(), re.S):
        head, payload = block.strip("\n").split("\n", 1)
        topic, retained = head.split()
        assert retained in ("retained", "not-retained"), head
        out[topic] = (retained == "retained", payload.strip())
    return out


def shape(value: Any) -> Any:
    """Keys (in order) and value types of a JSON value, recursively."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, float | int) and not isinstance(value, bool):
        return "number"
    return type(value).__name__


def feed_everything(s: Stack, marker: str) -> None:
    """Every kind of message the bridge reports on, plus capture traffic carrying ``marker``."""
    pub = s.bus.publish
    pub(LinkStatus("host", True, "laptop", "connected"), source="DataCapture")
    pub(LinkStatus("mcu", False, "/dev/x", "unplugged"), source="CuteFigurine")
    raw = tuple(
        RawEvent("laptop", marker, i, "window", 1.0 + i, (("app", marker), ("title", marker)))
        for i in range(20)
    )
    for event in raw:
        pub(event, source="DataCapture")
    pub(EventBatch(0.0, 30.0, raw, "laptop"), source="Storage")
    pub(StateChange(FocusState.NEUTRAL, FocusState.FLOW, 0.82, 1.0, 60.0, "laptop"), source="A")
    pub(
        AnalysisComplete(0.0, 30.0, FocusState.FLOW, 0.82, FocusState.FLOW, 754.0, (), "laptop"),
        source="AnalysisEngine",
    )
    pub(RewardEvent("focus", 15, 240, "focus block"), source="Gamification")
    pub(RewardEvent("streak", 0, 240, "3 day streak"), source="Gamification")
    pub(CompanionMode(False, time.time() + 3600, "snoozed for 60 min from mqtt"), source="G")
    pub(InterventionRequest("i-12", "break", FocusState.HYPERFOCUS, 6000.0), source="G")
    pub(InterventionResponse("i-12", "delivered", 0.1), source="CuteFigurine")


def test_states_appear_retained_as_documented(run_uv: Run, broker: Broker) -> None:
    doc = documented()
    marker = "SECRET-capture-7f3a"

    async def main() -> None:
        async with collect(broker, "#") as (live, _c):
            cfg = mqtt_config(broker, "desk", password="desk-secret")
            async with stack(cfg, MockFactory(pin_class=MockPWMPin)) as s:
                await s.healthy()
                feed_everything(s, marker)
                await live.wait_for(
                    lambda seen: all(seen.last(t) is not None for t in doc),
                    why="every documented topic",
                )
                await s.until(lambda: len(s.bridge.buffer) == 0, why="the buffer to drain")
                # a subscriber arriving now gets every retained topic with the retain flag
                async with collect(broker, "#") as (late, _c2):
                    retained = [t for t, (r, _p) in doc.items() if r]
                    await late.wait_for(
                        lambda seen: all(seen.last(t) is not None for t in retained),
                        why="retained topics for a new subscriber",
                    )
                    late_retained = {t for t, _p, r in late.messages if r}
                    assert set(retained) <= late_retained
                    assert "skelly/desk/intervention" not in {t for t, _, _ in late.messages}
                final = {t: live.last(t) for t in doc}
        for topic, (_retained, example) in doc.items():
            got = final[topic]
            assert got is not None, topic
            if example.startswith("{"):
                ex, actual = json.loads(example), json.loads(got)
                assert shape(actual) == shape(ex), (topic, got, example)
                if topic.startswith("homeassistant/"):
                    sw = actual["device"].pop("sw_version")
                    ex["device"].pop("sw_version")
                    assert sw.startswith("skelly-jelly-edge "), sw
                    assert actual == ex, topic  # the whole discovery config, as documented
            else:  # availability, links, health ("healthy": the bridge leaves itself out)
                assert got == example, (topic, got)
        state = live.last_json("skelly/desk/state")
        assert state["state"] == "FLOW" and state["time_in_state_s"] == 754
        assert state["host"] == "laptop" and state["confidence"] == 0.82
        assert live.last_json("skelly/desk/coins") == {"today": 15, "total": 240, "streak": 3}
        assert live.last_json("skelly/desk/intervention")["kind"] == "break"
        # nothing from the capture stream on any topic
        for topic, payload, _r in live.messages:
            assert marker not in payload and marker not in topic, (topic, payload)

    run_uv(main())


def test_discovery_configs_parse_and_carry_unique_ids(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        async with collect(broker, "homeassistant/#") as (seen, _c):
            cfg = mqtt_config(broker, "desk")
            async with stack(cfg, MockFactory(pin_class=MockPWMPin)) as s:
                await s.healthy()
                await seen.wait_for(lambda v: len({t for t, _, _ in v.messages}) >= 10)
        configs = {t: json.loads(p) for t, p, _r in seen.messages if p}
        kinds = {(t.split("/")[1], t.split("/")[3]) for t in configs}
        assert kinds == {
            ("sensor", "focus"),
            ("sensor", "time_in_state"),
            ("sensor", "coins_today"),
            ("sensor", "streak"),
            ("sensor", "health"),
            ("binary_sensor", "host_link"),
            ("binary_sensor", "mcu_link"),
            ("button", "snooze"),
            ("button", "pet"),
            ("switch", "quiet"),
        }
        ids = [c["unique_id"] for c in configs.values()]
        assert len(set(ids)) == len(ids) == 10
        assert all(i.startswith("skelly_desk_") for i in ids)
        for c in configs.values():
            assert c["availability_topic"] == "skelly/desk/availability"
            assert c["device"]["identifiers"] == ["skelly_desk"]
            assert c["device"]["sw_version"]
            for key in ("state_topic", "command_topic"):
                if key in c:
                    assert c[key].startswith("skelly/desk/")

    run_uv(main())


def test_commands_change_the_figurine_and_bad_ones_are_refused(
    run: Run, broker: Broker, factory: MockFactory
) -> None:
    """On both loops (uvloop and asyncio's own)."""

    async def main() -> None:
        cfg = mqtt_config(broker, "svc", command_burst=50)
        async with collect(broker, "skelly/svc/#") as (seen, client), stack(cfg, factory) as s:
            await s.healthy()
            eyes = factory.pin(EYES)
            before = eyes.state
            assert before > 0.3
            cmd = "skelly/svc/cmd/"
            await client.publish(cmd + "brightness", '{"percent":40}', qos=1)
            await s.until(lambda: abs(eyes.state - before * 0.4) < 0.02, why="eyes at 40 %")
            await client.publish(cmd + "pet", "{}", qos=1)
            await s.until(
                lambda: s.figurine.look is not None and s.figurine.look.mood == "happy",
                why="the figurine petted",
            )
            assert any(isinstance(m, UserInput) and m.origin == "mqtt" for m in s.seen)
            await client.publish(cmd + "snooze", '{"minutes":60}', qos=1)
            await s.until(
                lambda: [m for m in s.seen if isinstance(m, CompanionMode) and m.snoozed_until],
                why="snoozed",
            )
            mode = [m for m in s.seen if isinstance(m, CompanionMode)][-1]
            assert abs(mode.snoozed_until - (time.time() + 3600)) < 60
            await client.publish(cmd + "quiet", '{"on":true}', qos=1)
            await s.until(lambda: s.figurine.core.quiet, why="quiet mode on the figurine")
            await seen.wait_for(
                lambda v: (v.last_json("skelly/svc/mode") or {}).get("quiet") is True,
                why="quiet on the mode topic",
            )
            for topic, payload in [
                ("brightness", "forty"),
                ("brightness", '{"percent":140}'),
                ("snooze", '{"minutes":-5}'),
                ("snooze", '{"minutes":"5"}'),
                ("quiet", '{"on":1}'),
                ("pet", '{"animation":"dance"}'),
                ("dance", "{}"),
            ]:
                await client.publish(cmd + topic, payload, qos=1)
            # another device's command topic is not this bridge's business
            await client.publish("skelly/other/cmd/brightness", '{"percent":0}', qos=1)
            await s.until(lambda: sum(s.bridge.refused.values()) >= 7, why="7 refusals")
            assert s.bridge.refused == {
                "bad_json": 1,
                "out_of_range": 2,
                "bad_field": 3,
                "unknown": 1,
            }
            assert s.bridge.commands == 4
            assert eyes.state > 0  # brightness 0 to skelly/other never applied here
            assert s.bridge.status is ModuleStatus.HEALTHY
            assert "4 commands, 7 refused" in s.bridge.detail

    run(main())


def test_commands_are_rate_limited(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        cfg = mqtt_config(broker, "svc", command_burst=2, command_rate_per_min=0.01)
        async with (
            collect(broker, "skelly/svc/cmd/#") as (_seen, client),
            stack(cfg, MockFactory(pin_class=MockPWMPin)) as s,
        ):
            await s.healthy()
            for _ in range(5):
                await client.publish("skelly/svc/cmd/pet", "{}", qos=1)
            await s.until(lambda: s.bridge.refused.get("rate_limited") == 3, why="3 limited")
            assert s.bridge.commands == 2
            pets = [m for m in s.seen if isinstance(m, UserInput) and m.origin == "mqtt"]
            assert len(pets) == 2

    run_uv(main())


def test_wrong_password_is_degraded_not_crashed(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        cfg = mqtt_config(broker, "desk", password="wrong")
        async with stack(cfg, MockFactory(pin_class=MockPWMPin)) as s:
            await s.until(
                lambda: "refused the connection" in s.bridge.detail, why="a refused connection"
            )
            assert s.bridge.status is ModuleStatus.DEGRADED
            assert "not authorised" in s.bridge.detail
            assert "username and password" in s.bridge.detail
            assert s.bridge.start_fault == ""
            assert s.bridge.spawned, "the client task keeps retrying"
            assert s.bus.registry.module("MqttBridge").effective is ModuleStatus.DEGRADED

    run_uv(main())


def test_topics_denied_by_the_acl_are_degraded(run_uv: Run, broker: Broker) -> None:
    """User ``nosy`` may only use skelly/nosy/#: as device ``desk2`` the broker drops everything
    it publishes (Mosquitto says nothing), and the bridge finds out by its echo check."""

    async def main() -> None:
        async with collect(broker, "skelly/desk2/#") as (seen, _c):
            cfg = mqtt_config(broker, "desk2", username="nosy", password="nosy-secret")
            async with stack(cfg, MockFactory(pin_class=MockPWMPin), echo_timeout_s=1.0) as s:
                await s.until(lambda: "comes back" in s.bridge.detail, why="the ACL refusal")
                assert s.bridge.status is ModuleStatus.DEGRADED
                assert "refused" in s.bridge.detail and "ACL" in s.bridge.detail
                assert s.bridge.spawned
        assert seen.messages == []  # the broker really dropped them

    run_uv(main())


def test_tls_with_the_generated_ca(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        cfg = mqtt_config(broker, "desk", port=broker.tls_port, tls=True, ca_file=str(broker.ca))
        async with (
            collect(broker, "skelly/desk/availability") as (seen, _c),
            stack(cfg, MockFactory(pin_class=MockPWMPin)) as s,
        ):
            await s.healthy()
            assert "(TLS)" in s.bridge.detail
            await seen.wait_for(lambda v: v.last("skelly/desk/availability") == "online")

    run_uv(main())


def test_misconfiguration_is_a_start_fault(run_uv: Run, broker: Broker, tmp_path: Path) -> None:
    async def main() -> None:
        from bus import Bus, ModuleRegistry

        for kw, words in [
            ({"tls": True}, "needs ca_file"),
            ({"tls": True, "ca_file": str(tmp_path / "nope.crt")}, "cannot read [mqtt] ca_file"),
            ({"password": "", "password_file": str(tmp_path / "nope")}, "password_file"),
        ]:
            bus = Bus(ModuleRegistry())
            bridge = MqttBridge(mqtt_config(broker, "desk", **kw))
            await bridge.start(bus)
            assert bridge.status is ModuleStatus.UNHEALTHY
            assert words in bridge.start_fault and "\n" not in bridge.start_fault
            assert not bridge.spawned
            await bridge.stop()
            await bus.aclose()

    run_uv(main())


def test_two_services_one_mirroring_the_other(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        desk_cfg = mqtt_config(broker, "desk")
        living_cfg = mqtt_config(broker, "living", mirror="desk")
        async with (
            collect(broker, "skelly/living/state") as (living_state, _c),
            stack(desk_cfg, MockFactory(pin_class=MockPWMPin)) as desk,
            stack(living_cfg, MockFactory(pin_class=MockPWMPin)) as living,
        ):
            await desk.healthy()
            await living.healthy()
            for to in (FocusState.FLOW, FocusState.DISTRACTED):
                change = StateChange(FocusState.NEUTRAL, to, 0.9, 0.0, 0.0, "laptop")
                desk.bus.publish(change, source="AnalysisEngine")
                await living.until(lambda to=to: living.figurine.core.state is to, why=f"{to}")
            changes = [m for m in living.seen if isinstance(m, StateChange)]
            assert [c.current for c in changes] == [FocusState.FLOW, FocusState.DISTRACTED]
            assert all(c.host_id == "mirror:desk" for c in changes)
            assert living.figurine.look is not None and living.figurine.look.face == "concerned"
            # shown, not rewarded, and not published as the living room's own state
            assert not [m for m in living.seen if isinstance(m, RewardEvent)]
            assert living.gamification.core is not None
            assert living.gamification.core.progress.coins == 0
            assert living_state.messages == []

    run_uv(main())


def test_clean_stop_publishes_offline(run_uv: Run, broker: Broker) -> None:
    async def main() -> None:
        async with collect(broker, "skelly/desk/availability") as (seen, _c):
            async with stack(mqtt_config(broker, "desk"), MockFactory(pin_class=MockPWMPin)) as s:
                await s.healthy()
                await seen.wait_for(lambda v: v.last("skelly/desk/availability") == "online")
            await seen.wait_for(
                lambda v: v.last("skelly/desk/availability") == "offline", why="offline"
            )

    run_uv(main())


def test_broker_away_never_slows_the_bus_and_drops_are_counted(run_uv: Run) -> None:
    """Nothing listens on the port: 5,000 state changes go through the bus at bus speed, the
    buffer stays bounded (one pending value per topic) and the drops show in the detail."""

    async def main() -> None:
        from bus import Bus, ModuleRegistry

        bus = Bus(ModuleRegistry())
        bridge = MqttBridge(
            MqttConfig(enabled=True, host="127.0.0.1", port=free_port(), device_id="away")
        )
        await bridge.start(bus)
        try:
            await asyncio.sleep(0.2)
            assert bridge.status is ModuleStatus.DEGRADED and "unreachable" in bridge.detail
            states = [FocusState.FLOW, FocusState.DISTRACTED]
            for i in range(5000):
                change = StateChange(FocusState.NEUTRAL, states[i % 2], 0.9, 0.0, 0.0, "h")
                bus.publish(change, source="AnalysisEngine")
                if i % 500 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(0.1)  # the last drain of the bridge's queue

            def bus_dropped() -> int:
                subs = bus.snapshot().subscribers
                return sum(x.dropped for x in subs if x.name == "MqttBridge._on_state_change")

            # every change was either dropped by the bus queue (counted there, bounded) or put in
            # the buffer, where each newer one replaced the one pending: only the last is left
            # (two delivered in a row can be equal once the bus dropped the one between them:
            # an equal value is not sent twice, nor counted)
            assert 4900 <= bridge.buffer.superseded + bus_dropped() <= 4999
            assert len(bridge.buffer) <= bridge.buffer.max_topics
            pending = bridge.buffer.pending["skelly/away/state"]
            assert json.loads(pending.payload)["state"] == "DISTRACTED"
            assert bridge.facts()["dropped"] == bridge.buffer.superseded
            bridge._on_health(None)  # type: ignore[arg-type]  # what every health round does
            shown = int(bridge.detail.split(" dropped while away")[0].split()[-1])
            assert shown == bridge.buffer.dropped > 0
        finally:
            await bridge.stop()
            await bus.aclose()

    run_uv(main())
