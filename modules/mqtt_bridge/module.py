"""MqttBridge: the shell around the pure core (docs/MQTT.md).

Bus side: short sync handlers turn StateChange, AnalysisComplete, RewardEvent, CompanionMode,
InterventionRequest/Response, LinkStatus and HealthReply into retained (or event) MQTT messages in
the :class:`~modules.mqtt_bridge.core.OutBuffer`; they never wait for the network, so a broker
that is away never slows the bus (the buffer keeps the newest value per topic, drops counted).

Network side: one task per connection attempt with an ``asyncio.TaskGroup`` of two named tasks —
``sender`` drains the buffer, ``receiver`` reads commands (and the mirrored device's state).  On
every (re)connect the availability ``online``, the discovery configs and every retained state are
published again.  A failure (broker away, credentials refused, subscription refused by the ACL)
makes the module Degraded with the reason and reconnects after a jittered, capped, exponential
backoff (``modules.orchestrator.policy.backoff_delay``); it is never a crash.  A clean stop
publishes ``offline`` before disconnecting (a graceful disconnect fires no last will); a killed
process leaves the broker to publish the will, ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
import os
import random as _random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bus import Delivery, Envelope, ModuleId, ModuleStatus, Priority, aggregate
from bus.messages import (
    AnalysisComplete,
    CompanionCommand,
    CompanionMode,
    ConfigUpdate,
    FocusState,
    HealthReply,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    RewardEvent,
    StateChange,
    UserInput,
)
from modules.base import Module
from modules.mqtt_bridge.config import MqttConfig
from modules.mqtt_bridge.core import (
    AVAILABLE,
    MIRROR_PREFIX,
    NOT_AVAILABLE,
    Command,
    OutBuffer,
    Outgoing,
    Refusal,
    TokenBucket,
    Topics,
    coins_payload,
    discovery_configs,
    intervention_payload,
    link_payload,
    mode_payload,
    parse_command,
    parse_state,
    state_payload,
)
from modules.orchestrator.policy import backoff_delay

log = logging.getLogger("skelly.mqtt")

INSTALL_HINT = (
    "pip install 'skelly-jelly-edge[mqtt]' (in /opt/skelly/venv), or set [mqtt] enabled = false"
)
ECHO_TIMEOUT_S = 5.0
"""How long after connecting the bridge waits to read back its own ``online``; without it the
broker is dropping what this device publishes (an ACL) and the module is Degraded."""
REFUSED_CONNECT = {4: "bad user name or password", 5: "not authorised"}


def package_version() -> str:
    try:
        return importlib.metadata.version("skelly-jelly-edge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


CONNECT_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 2.0


def _abandon(client: Any) -> None:
    """Drop a connection that did not open or close in time: stop watching its socket and close
    it (aiomqtt keeps the paho client in ``_client``; there is no public way to do this)."""
    with contextlib.suppress(Exception):
        paho = client._client
        sock = paho.socket()
        if sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(sock.fileno())
            loop.remove_writer(sock.fileno())
            sock.close()
    with contextlib.suppress(Exception):
        if client._lock.locked():
            client._lock.release()


def _honour_cancel() -> None:
    """Raise CancelledError if this (short-lived, per-session) task was asked to stop.  Python
    3.11's ``asyncio.wait_for`` (inside aiomqtt's publish and subscribe) can swallow a cancel
    that arrives as the answer does; the task would then carry on and its TaskGroup wait for it
    for ever (found by tests/mqtt: a stop hung about 1 in 12 under uvloop).  Only for a task
    made for one session: a long-lived task's ``cancelling()`` count can be left over from a
    cancel handled earlier."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class BridgeRefused(Exception):
    """The broker refused something this device needs (a subscription: the ACL)."""


class MqttBridge(Module):
    name = "MqttBridge"
    depends_on = (ModuleId.GAMIFICATION, ModuleId.FIGURINE)

    def __init__(
        self,
        config: MqttConfig | None = None,
        *,
        firmware: Callable[[], str | None] | None = None,
        progress: Callable[[], tuple[int, int] | None] | None = None,
        hostname: str | None = None,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        echo_timeout_s: float = ECHO_TIMEOUT_S,
    ) -> None:
        super().__init__()
        self.config = config or MqttConfig()
        self.firmware = firmware
        """Returns "firmware x.y.z, protocol N" from the MCU's HELLO once known (app wiring)."""
        self.progress = progress
        """Returns (total coins, streak) as Gamification knows them at start (app wiring)."""
        self.wall = wall
        self.clock = clock
        self.sleep = sleep
        self.random = random
        self.echo_timeout_s = echo_timeout_s
        self.device_id = self.config.effective_device_id(hostname)
        self.topics = Topics(self.config.topic_prefix, self.device_id, self.config.discovery_prefix)
        self.mirror_topics = (
            Topics(self.config.topic_prefix, self.config.mirror) if self.config.mirror else None
        )
        self.buffer = OutBuffer()
        self.retained: dict[str, str] = {}
        """The newest value of every retained topic: published again on every reconnect."""
        self.bucket = TokenBucket(
            self.config.command_rate_per_min / 60.0, self.config.command_burst, clock()
        )
        self.refused: dict[str, int] = {}
        self.commands = 0
        self.published = 0
        self.connects = 0
        self.connected = False
        self.verified = False
        self.mirrored = 0
        self._wake = asyncio.Event()
        self._tls: ssl.SSLContext | None = None
        self._password: str | None = None
        self._aiomqtt: Any = None
        self._connect_error: type[Exception] = Exception
        self._hosts_up: set[str] = set()
        self._focus: tuple[FocusState, float, float, str, float] | None = None
        self._kinds: dict[str, str] = {}
        self._coins_day = ""
        self._coins_today = 0
        self._coins_total = 0
        self._streak = 0
        self._health_words = ""
        self._mirror_state: tuple[FocusState, float] | None = None
        self._last_error = ""

    # -- lifecycle ----------------------------------------------------------------------------
    async def on_start(self) -> None:
        cfg = self.config
        try:
            import aiomqtt
            from aiomqtt.exceptions import MqttConnectError

            from modules.mqtt_bridge.client import SafeClient
        except ImportError:
            self.set_status(
                ModuleStatus.UNHEALTHY,
                f"[mqtt] enabled but aiomqtt is not installed: {INSTALL_HINT}",
            )
            return
        self._aiomqtt = aiomqtt
        self._connect_error = MqttConnectError
        self._client_class: Any = SafeClient
        if cfg.mirror and cfg.mirror == self.device_id:
            self.set_status(
                ModuleStatus.UNHEALTHY,
                f"[mqtt] mirror names this device itself ({self.device_id}); name another device",
            )
            return
        fault = self._load_secrets()
        if fault:
            self.set_status(ModuleStatus.UNHEALTHY, fault)
            return
        self._wake = asyncio.Event()
        self._seed()
        self.subscribe(self._on_state_change, types=StateChange, maxsize=64)
        self.subscribe(
            self._on_analysis, types=AnalysisComplete, mode=Delivery.LATEST_ONLY, maxsize=16
        )
        self.subscribe(self._on_reward, types=RewardEvent, maxsize=64)
        self.subscribe(self._on_mode, types=CompanionMode, maxsize=16)
        self.subscribe(self._on_request, types=InterventionRequest, maxsize=64)
        self.subscribe(self._on_response, types=InterventionResponse, maxsize=64)
        self.subscribe(self._on_link, types=LinkStatus, maxsize=64)
        self.subscribe(self._on_health, types=HealthReply, mode=Delivery.LATEST_ONLY, maxsize=4)
        self.set_status(ModuleStatus.DEGRADED, f"connecting to {self._where()}")
        self.spawn(self._run(), "client")

    def _load_secrets(self) -> str:
        cfg = self.config
        self._password = cfg.password or None
        if cfg.password_file:
            try:
                with open(cfg.password_file, encoding="utf-8") as f:
                    self._password = f.readline().rstrip("\r\n")
            except OSError as exc:
                return f"cannot read [mqtt] password_file {cfg.password_file}: {exc.strerror}"
        self._tls = None
        if cfg.tls:
            if not cfg.ca_file:
                return "[mqtt] tls = true needs ca_file (the CA that signed the broker's cert)"
            if not os.access(cfg.ca_file, os.R_OK):
                return f"cannot read [mqtt] ca_file {cfg.ca_file}: check the path and permissions"
            try:
                ctx = ssl.create_default_context(cafile=cfg.ca_file)
                if cfg.cert_file:
                    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            except (OSError, ssl.SSLError) as exc:
                return f"[mqtt] TLS files unusable ({cfg.ca_file}, {cfg.cert_file}): {exc}"
            self._tls = ctx
        elif cfg.ca_file or cfg.cert_file:
            return "[mqtt] ca_file or cert_file is set but tls = false: set tls = true or clear it"
        return ""

    def _where(self) -> str:
        tls = " (TLS)" if self.config.tls else ""
        return f"mqtt broker {self.config.host}:{self.config.port}{tls}"

    async def on_stop(self) -> None:
        self.connected = False

    def health(self) -> tuple[ModuleStatus, str]:
        return self.status, self.detail

    def facts(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "connected": self.connected,
            "connects": self.connects,
            "published": self.published,
            "pending": len(self.buffer),
            "dropped": self.buffer.dropped,
            "superseded": self.buffer.superseded,
            "evicted": self.buffer.evicted,
            "commands": self.commands,
            "refused": dict(self.refused),
            "mirrored": self.mirrored,
        }

    def _counts(self) -> str:
        refused = sum(self.refused.values())
        return (
            f"{self.published} published, {self.buffer.dropped} dropped while away, "
            f"{self.commands} commands, {refused} refused"
        )

    # -- what goes out ------------------------------------------------------------------------
    def _put(self, topic: str, payload: str, retain: bool = True) -> None:
        if retain:
            if self.retained.get(topic) == payload:
                return
            self.retained[topic] = payload
        self.buffer.put(Outgoing(topic, payload, retain))
        self._wake.set()

    def _version(self) -> str:
        fw = self.firmware() if self.firmware is not None else None
        return fw or f"skelly-jelly-edge {package_version()}"

    def _seed(self) -> None:
        """Retained values known at start: discovery, host link down, coins so far."""
        self.retained.clear()
        self._publish_discovery()
        self._put(self.topics.link("host"), link_payload(False))
        if self.progress is not None:
            known = self.progress()
            if known is not None:
                self._coins_total, self._streak = known
        self._coins_day = self._today()
        self._put(
            self.topics.coins, coins_payload(self._coins_today, self._coins_total, self._streak)
        )
        self._publish_health()

    def _publish_discovery(self) -> None:
        if self.config.discovery:
            for topic, payload in discovery_configs(self.topics, self._version()):
                self._put(topic, payload)

    def _today(self) -> str:
        return time.strftime("%Y-%m-%d", time.localtime(self.wall()))

    def _publish_state(self) -> None:
        if self._focus is not None:
            state, tis, conf, host, since = self._focus
            self._put(self.topics.state, state_payload(state, tis, conf, host, since))

    def _on_state_change(self, env: Envelope) -> None:
        change = env.payload
        assert isinstance(change, StateChange)
        if change.host_id.startswith(MIRROR_PREFIX):
            return  # shown here on behalf of another device: not this device's own focus
        self._focus = (change.current, 0.0, change.confidence, change.host_id, self.wall())
        self._publish_state()

    def _on_analysis(self, env: Envelope) -> None:
        result = env.payload
        assert isinstance(result, AnalysisComplete)
        focus = self._focus
        if focus is not None and focus[3] != result.host_id and focus[0] is not result.state:
            return  # another host's window; the state shown follows the last change
        since = self.wall() - result.time_in_state_s
        if focus is not None and focus[0] is result.state:
            since = focus[4]
        tis, conf = result.time_in_state_s, result.confidence
        self._focus = (result.state, tis, conf, result.host_id, since)
        self._publish_state()

    def _on_reward(self, env: Envelope) -> None:
        reward = env.payload
        assert isinstance(reward, RewardEvent)
        day = self._today()
        if day != self._coins_day:
            self._coins_day, self._coins_today = day, 0
        self._coins_today += reward.coins
        self._coins_total = reward.total_coins
        if reward.kind == "streak":  # Gamification says "<n> day streak" (as the Orchestrator)
            head = reward.reason.strip().split(" ", 1)[0]
            if head.isdigit():
                self._streak = int(head)
        self._put(
            self.topics.coins, coins_payload(self._coins_today, self._coins_total, self._streak)
        )

    def _on_mode(self, env: Envelope) -> None:
        mode = env.payload
        assert isinstance(mode, CompanionMode)
        self._put(self.topics.mode, mode_payload(mode.quiet, mode.snoozed_until, mode.reason))

    def _on_request(self, env: Envelope) -> None:
        req = env.payload
        assert isinstance(req, InterventionRequest)
        self._kinds[req.intervention_id] = req.kind
        while len(self._kinds) > 32:
            del self._kinds[next(iter(self._kinds))]

    def _on_response(self, env: Envelope) -> None:
        r = env.payload
        assert isinstance(r, InterventionResponse)
        if r.response == "delivered":
            kind = self._kinds.get(r.intervention_id, "")
            payload = intervention_payload(r.intervention_id, kind, self.wall())
            self._put(self.topics.intervention, payload, retain=False)

    def _on_link(self, env: Envelope) -> None:
        status = env.payload
        assert isinstance(status, LinkStatus)
        if status.link == "host":
            if status.up:
                self._hosts_up.add(status.peer)
            else:
                self._hosts_up.discard(status.peer)
            self._put(self.topics.link("host"), link_payload(bool(self._hosts_up)))
        elif status.link == "mcu":
            self._put(self.topics.link("mcu"), link_payload(status.up))
            if status.up:
                self._publish_discovery()  # the firmware version is known now

    def _on_health(self, env: Envelope) -> None:
        self._publish_health()
        self._refresh_detail()  # the counts in `skelly status` stay current

    def _publish_health(self) -> None:
        """The service's health in words without the bridge itself (its own trouble cannot be
        told over MQTT anyway): ``healthy``, or ``degraded (Storage degraded)``."""
        others = [m for m in self.bus.registry.modules() if m.name != self.name]
        words = aggregate(m.effective for m in others).value.lower()
        troubled = [
            f"{m.name} {m.effective.value.lower()}"
            for m in others
            if m.effective is not ModuleStatus.HEALTHY
        ]
        if troubled:
            words += " (" + ", ".join(troubled) + ")"
        if words != self._health_words:
            self._health_words = words
            self._put(self.topics.health, words)

    # -- the network --------------------------------------------------------------------------
    def _client(self) -> Any:
        aiomqtt = self._aiomqtt
        cfg = self.config
        return self._client_class(
            cfg.host,
            cfg.port,
            username=cfg.username or None,
            password=self._password,
            identifier=f"skelly-{self.device_id}",
            keepalive=cfg.keepalive_s,
            will=aiomqtt.Will(self.topics.availability, NOT_AVAILABLE, qos=1, retain=True),
            tls_context=self._tls,
            protocol=aiomqtt.ProtocolVersion.V5,
            timeout=10.0,
        )

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                client = await self._connect()
                failures = 0
                try:
                    await self._session(client)
                except asyncio.CancelledError:
                    if self._stopping():
                        await self._say_offline(client)
                    raise
                finally:
                    await self._close(client)
            except asyncio.CancelledError:
                if self._stopping():
                    raise
                # not asked to stop: a cancel left over in this task (3.11's TaskGroup then
                # turns a failed session into CancelledError); clear it and reconnect
                task = asyncio.current_task()
                while task is not None and task.cancelling():
                    task.uncancel()
                self._lost(RuntimeError("session cancelled"))
            except Exception as exc:
                self._lost(exc)
            failures += 1
            cfg = self.config
            delay = backoff_delay(
                failures,
                initial=cfg.reconnect_initial_s,
                cap=cfg.reconnect_max_s,
                jitter=0.5,
                r=self.random(),
            )
            await self.sleep(delay)

    async def _connect(self) -> Any:
        """``async with client`` in two bounded halves: aiomqtt waits for the CONNACK (and, on
        leaving, for the socket to close) without a limit of its own."""
        client = self._client()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.__aenter__()
        except TimeoutError:
            _abandon(client)
            raise TimeoutError(f"no answer within {CONNECT_TIMEOUT_S:g} s") from None
        except BaseException:
            _abandon(client)
            raise
        return client

    async def _close(self, client: Any) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await client.__aexit__(None, None, None)
        except Exception:  # already gone, or no answer: drop the socket
            _abandon(client)

    def _lost(self, exc: BaseException) -> None:
        self.connected = self.verified = False
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:  # from the TaskGroup
            exc = exc.exceptions[0]
        why = self._explain(exc)
        if why != self._last_error:
            log.warning("mqtt: %s", why)
            self._last_error = why
        self.set_status(ModuleStatus.DEGRADED, f"{why}; retrying; {self._counts()}")

    def _explain(self, exc: BaseException) -> str:
        if isinstance(exc, BridgeRefused):
            return f"{self._where()} refused: {exc}"
        rc = getattr(exc, "rc", None)
        value = getattr(rc, "value", rc)
        if isinstance(exc, self._connect_error) or value in (4, 5, 134, 135):
            words = REFUSED_CONNECT.get(value, "") if isinstance(value, int) else ""
            if value in (134, 135):
                words = "bad user name or password" if value == 134 else "not authorised"
            return (
                f"{self._where()} refused the connection ({words or exc}): check [mqtt] "
                "username and password"
            )
        return f"{self._where()} unreachable: {exc}"

    async def _session(self, client: Any) -> None:
        self.connects += 1
        self.connected = True
        self.verified = False
        # everything retained again (the broker may have restarted without persistence)
        for topic, payload in self.retained.items():
            if topic not in self.buffer.pending:  # a pending one is the same, newest value
                self.buffer.put(Outgoing(topic, payload, True))
        self._publish_health()
        await client.publish(self.topics.availability, AVAILABLE, qos=1, retain=True)
        self._honour_stop()
        wanted = [(self.topics.commands, "commands"), (self.topics.availability, "availability")]
        if self.mirror_topics is not None:
            wanted.append((self.mirror_topics.state, f"mirrored device {self.config.mirror}"))
        for topic, what in wanted:
            codes = await client.subscribe(topic, qos=1)
            self._honour_stop()
            for code in codes:
                value = getattr(code, "value", code)
                if isinstance(value, int) and value >= 0x80:
                    raise BridgeRefused(f"subscription to {topic} ({what}) refused by its ACL")
        self.set_status(ModuleStatus.DEGRADED, f"connected to {self._where()}; checking")
        log.info("mqtt: connected to %s as %s", self._where(), self.device_id)
        self._wake.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._sender(client), name=f"{self.name}.sender")
            tg.create_task(self._receiver(client), name=f"{self.name}.receiver")
            tg.create_task(self._check_echo(), name=f"{self.name}.echo")

    def _stopping(self) -> bool:
        """``Module.stop`` sets ShuttingDown before it cancels the client task."""
        return self.status in (ModuleStatus.SHUTTING_DOWN, ModuleStatus.STOPPED)

    def _honour_stop(self) -> None:
        """The same guard for the long-lived client task, where a swallowed cancel is still
        seen through the status."""
        if self._stopping():
            raise asyncio.CancelledError

    async def _say_offline(self, client: Any) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                client.publish(self.topics.availability, NOT_AVAILABLE, qos=1, retain=True), 2.0
            )

    async def _sender(self, client: Any) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            for msg in self.buffer.take_all():
                # a failure ends the session; what is retained is sent again on the next one
                await client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
                self.published += 1
                _honour_cancel()
                self._honour_stop()

    async def _check_echo(self) -> None:
        await asyncio.sleep(self.echo_timeout_s)
        if not self.verified:
            raise BridgeRefused(
                f"nothing published under {self.topics.base}/ comes back (its ACL must allow "
                "this user to write and read there)"
            )

    async def _receiver(self, client: Any) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            payload = message.payload
            if isinstance(payload, str):
                payload = payload.encode()
            elif not isinstance(payload, bytes | bytearray):
                payload = b"" if payload is None else str(payload).encode()
            payload = bytes(payload)
            if topic == self.topics.availability:
                if payload == AVAILABLE.encode() and not self.verified:
                    self.verified = True
                    self._last_error = ""
                    self.set_status(
                        ModuleStatus.HEALTHY, f"connected to {self._where()}; {self._counts()}"
                    )
                continue
            if self.mirror_topics is not None and topic == self.mirror_topics.state:
                self._mirror(payload)
                continue
            name = self.topics.command_name(topic)
            if name is not None:
                self.command(name, payload)

    # -- what comes in ------------------------------------------------------------------------
    def command(self, name: str, payload: bytes) -> Command | Refusal:
        """One command from this device's command topic: validated, rate-limited, then the bus
        messages the figurine and Gamification already handle."""
        result = parse_command(name, payload)
        if isinstance(result, Command) and not self.bucket.take(self.clock()):
            result = Refusal("rate_limited", f"{name}: more than the allowed command rate")
        if isinstance(result, Refusal):
            self.refused[result.kind] = self.refused.get(result.kind, 0) + 1
            if self.refused[result.kind] == 1:  # once per kind
                log.warning("mqtt: command refused (%s): %s", result.kind, result.reason)
            self._refresh_detail()
            return result
        self.commands += 1
        now = self.wall()
        if result.name == "snooze":
            self.publish(CompanionCommand("snooze", minutes=result.minutes, origin="mqtt"))
        elif result.name == "quiet":
            self.publish(CompanionCommand("quiet", on=result.on, origin="mqtt"))
        elif result.name == "pet":
            self.publish(UserInput("double", "mqtt", now), priority=Priority.HIGH)
        elif result.name == "brightness":
            self.publish(ConfigUpdate("figurine", (("brightness", result.percent),)))
        self._refresh_detail()
        return result

    def _refresh_detail(self) -> None:
        if self.status is ModuleStatus.HEALTHY:
            self.set_status(ModuleStatus.HEALTHY, f"connected to {self._where()}; {self._counts()}")
        elif self.status is ModuleStatus.DEGRADED and self._last_error and not self.connected:
            self.set_status(
                ModuleStatus.DEGRADED, f"{self._last_error}; retrying; {self._counts()}"
            )

    def _mirror(self, payload: bytes) -> None:
        parsed = parse_state(payload)
        if parsed is None:
            self.refused["bad_mirror"] = self.refused.get("bad_mirror", 0) + 1
            return
        state, confidence = parsed
        now = self.wall()
        previous = self._mirror_state
        if previous is not None and previous[0] is state:
            return
        self.mirrored += 1
        self._mirror_state = (state, now)
        self.publish(
            StateChange(
                previous[0] if previous else FocusState.NEUTRAL,
                state,
                confidence,
                now,
                now - previous[1] if previous else 0.0,
                host_id=f"{MIRROR_PREFIX}{self.config.mirror}",
            ),
            priority=Priority.HIGH,
        )
