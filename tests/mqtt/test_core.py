"""The bridge's pure core and its config: no broker, no bus, no clock."""

from __future__ import annotations

import json

import pytest

from modules.mqtt_bridge.config import MqttConfig, default_device_id
from modules.mqtt_bridge.core import (
    Command,
    OutBuffer,
    Outgoing,
    Refusal,
    TokenBucket,
    Topics,
    discovery_configs,
    parse_command,
    parse_state,
)
from skelly.config import ConfigError, load


def test_device_id_from_the_host_name() -> None:
    assert default_device_id("Skelly Desk.local") == "skelly-desk"
    assert default_device_id("pi4") == "pi4"
    assert default_device_id("...") == "skelly"
    assert MqttConfig(device_id="desk").effective_device_id("other") == "desk"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"port": 0}, "mqtt.port"),
        ({"topic_prefix": "a/b"}, "topic_prefix"),
        ({"device_id": "d+"}, "device_id"),
        ({"device_id": "a", "mirror": "a"}, "mirror"),
        ({"password": "x", "password_file": "/p"}, "both set"),
        ({"cert_file": "/c"}, "go together"),
        ({"command_burst": 0}, "command_burst"),
    ],
)
def test_config_refuses_what_cannot_work(values: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        MqttConfig(**values)  # type: ignore[arg-type]


def test_config_file_errors_name_the_key(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.port must be 1\.\.65535"):
        load(env={"SKELLY_MQTT__PORT": "0"})


@pytest.mark.parametrize(
    ("name", "payload", "expected"),
    [
        ("snooze", b'{"minutes":30}', Command("snooze", minutes=30.0)),
        ("snooze", b'{"minutes":0}', Command("snooze", minutes=0.0)),
        ("snooze", b'{"minutes":241}', "out_of_range"),
        ("snooze", b'{"minutes":true}', "bad_field"),
        ("snooze", b'{"minutes":NaN}', "bad_field"),
        ("quiet", b'{"on":false}', Command("quiet", on=False)),
        ("quiet", b'{"on":"yes"}', "bad_field"),
        ("pet", b"{}", Command("pet")),
        ("pet", b"", "bad_json"),
        ("pet", b"[]", "bad_json"),
        ("brightness", b'{"percent":99.6}', Command("brightness", percent=100)),
        ("brightness", b'{"percent":-1}', "out_of_range"),
        ("brightness", b'{"percent":5,"x":1}', "bad_field"),
        ("brightness", b"\xff\xfe", "bad_json"),
        ("reboot", b"{}", "unknown"),
    ],
)
def test_parse_command(name: str, payload: bytes, expected: Command | str) -> None:
    got = parse_command(name, payload)
    if isinstance(expected, str):
        assert isinstance(got, Refusal) and got.kind == expected
    else:
        assert got == expected


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=0.5, burst=2, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert not bucket.take(1.0)  # half a token
    assert bucket.take(2.0)
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)


def test_out_buffer_keeps_the_newest_per_topic_and_counts_drops() -> None:
    buf = OutBuffer(max_topics=3)
    for i in range(5):
        buf.put(Outgoing("a", str(i), True))
    buf.put(Outgoing("b", "b", True))
    buf.put(Outgoing("c", "c", True))
    buf.put(Outgoing("d", "d", True))  # evicts the oldest pending topic (a)
    assert buf.superseded == 4 and buf.evicted == 1 and buf.dropped == 5
    assert [(m.topic, m.payload) for m in buf.take_all()] == [("b", "b"), ("c", "c"), ("d", "d")]
    assert len(buf) == 0 and buf.take_all() == []


def test_topics_and_state_parsing() -> None:
    t = Topics("skelly", "desk")
    assert t.command_name("skelly/desk/cmd/pet") == "pet"
    assert t.command_name("skelly/other/cmd/pet") is None
    assert t.command_name("skelly/desk/state") is None
    assert parse_state(b'{"state":"FLOW","confidence":2}') is not None
    assert parse_state(b'{"state":"FLOW","confidence":2}')[1] == 1.0  # type: ignore[index]
    assert parse_state(b'{"state":"ASLEEP"}') is None
    assert parse_state(b"nope") is None


def test_discovery_unique_ids_are_stable_per_device() -> None:
    a = discovery_configs(Topics("skelly", "desk"), "v1")
    b = discovery_configs(Topics("other", "desk", "ha"), "v2")
    ids_a = [json.loads(p)["unique_id"] for _t, p in a]
    ids_b = [json.loads(p)["unique_id"] for _t, p in b]
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a)
    assert all(t.startswith("ha/") and t.endswith("/config") for t, _p in b)


def test_companion_commands_snooze_and_quiet_until_the_schedule_changes() -> None:
    """Gamification's side of the commands (pure core, UTC, quiet hours 22:00-08:00)."""
    import datetime as dt

    from bus.messages import CompanionCommand, CompanionMode
    from modules.gamification import GamificationConfig
    from modules.gamification.core import Companion

    utc = dt.UTC
    core = Companion(GamificationConfig(snooze_min=30.0), utc)
    noon = dt.datetime(2026, 6, 1, 12, 0, tzinfo=utc).timestamp()
    core.start(noon)
    out = core.on_command(noon, CompanionCommand("snooze", minutes=120, origin="mqtt"))
    assert out == [CompanionMode(False, noon + 7200, "snoozed for 120 min from mqtt")]
    core.tick(noon + 60)  # the clock-jump clamp keeps a 2-hour snooze (not snooze_min)
    assert core.progress.snoozed_until == noon + 7200
    core.on_command(noon + 60, CompanionCommand("snooze", minutes=0))
    assert not core.snoozed(noon + 61)
    core.on_command(noon, CompanionCommand("quiet", on=True))
    assert core.quiet(noon) and core.quiet(noon + 9 * 3600)  # until 22:00: then the schedule
    assert core.quiet(noon + 11 * 3600)  # 23:00, quiet hours anyway
    core.tick(noon + 10 * 3600 + 1)
    assert core.quiet_override is None
    core.on_command(noon + 11 * 3600, CompanionCommand("quiet", on=False))  # 23:00
    assert not core.quiet(noon + 11 * 3600) and not core.quiet(noon + 19 * 3600)  # till 08:00
