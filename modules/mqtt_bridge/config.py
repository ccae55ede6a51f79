"""``[mqtt]`` settings (docs/MQTT.md §1).  Off by default; checked when the file is loaded."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

SEGMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a topic prefix or a device id may be: one topic level, no wildcards, no spaces."""


def default_device_id(hostname: str | None = None) -> str:
    """The device id when ``[mqtt] device_id`` is empty: the host name up to its first dot,
    lower-cased, every character other than a-z 0-9 _ - replaced by ``-`` (``Skelly Desk.local``
    → ``skelly-desk``); ``skelly`` if nothing is left."""
    name = (hostname if hostname is not None else socket.gethostname()).split(".")[0].lower()
    name = re.sub(r"[^a-z0-9_-]", "-", name).strip("-")[:64]
    return name or "skelly"


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    """Run the MQTT bridge (needs the ``mqtt`` extra: ``pip install 'skelly-jelly-edge[mqtt]'``)."""
    host: str = "localhost"
    port: int = 1883
    """1883 plain, 8883 is the usual TLS port."""
    username: str = ""
    password: str = ""
    password_file: str = ""
    """Read the password from this file (first line) instead of ``password``."""
    tls: bool = False
    ca_file: str = ""
    """CA certificate(s) that signed the broker's certificate (required with ``tls``)."""
    cert_file: str = ""
    """Client certificate, for brokers that want one (with ``key_file``)."""
    key_file: str = ""
    topic_prefix: str = "skelly"
    device_id: str = ""
    """Empty: derived from the host name (:func:`default_device_id`)."""
    discovery: bool = True
    """Publish Home Assistant MQTT discovery configs."""
    discovery_prefix: str = "homeassistant"
    mirror: str = ""
    """Another device id whose focus state this figurine shows (docs/MQTT.md §5)."""
    keepalive_s: int = 30
    command_rate_per_min: float = 12.0
    """Commands accepted per minute on average (token bucket refill) …"""
    command_burst: int = 5
    """… and at most this many in a row."""
    reconnect_initial_s: float = 1.0
    reconnect_max_s: float = 60.0
    """Reconnect backoff: doubles from the initial wait up to this cap, jittered."""

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"mqtt.port must be 1..65535, got {self.port}")
        if not self.host:
            raise ValueError("mqtt.host must not be empty")
        for name in ("topic_prefix", "discovery_prefix"):
            if not SEGMENT.match(getattr(self, name)):
                raise ValueError(
                    f"mqtt.{name} must be one topic level of letters, digits, _ or -, "
                    f"got {getattr(self, name)!r}"
                )
        for name in ("device_id", "mirror"):
            value = getattr(self, name)
            if value and not SEGMENT.match(value):
                raise ValueError(
                    f"mqtt.{name} must be letters, digits, _ or - (one topic level), got {value!r}"
                )
        if self.mirror and self.mirror == self.device_id:
            raise ValueError("mqtt.mirror names this device itself; name another device id")
        if self.password and self.password_file:
            raise ValueError("mqtt.password and mqtt.password_file are both set; keep one")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mqtt.cert_file and mqtt.key_file go together; set both or neither")
        if not 5 <= self.keepalive_s <= 65535:
            raise ValueError(f"mqtt.keepalive_s must be 5..65535, got {self.keepalive_s}")
        if not self.command_rate_per_min > 0:
            raise ValueError(
                f"mqtt.command_rate_per_min must be more than 0, got {self.command_rate_per_min}"
            )
        if self.command_burst < 1:
            raise ValueError(f"mqtt.command_burst must be at least 1, got {self.command_burst}")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError(
                "mqtt.reconnect_initial_s must be more than 0 and at most reconnect_max_s"
            )

    def effective_device_id(self, hostname: str | None = None) -> str:
        return self.device_id or default_device_id(hostname)
