"""A real Mosquitto for the MQTT tests: generated password file, ACL, CA and server certificate.

``Broker.create(dir)`` writes everything under ``dir`` and starts ``/usr/sbin/mosquitto`` on two
free loopback ports (plain and TLS); ``kill()`` / ``start()`` stop and restart the same process
configuration on the same ports (no persistence: a restarted broker has no retained message).
The password file is made by ``mosquitto_passwd`` (in the mosquitto package), the certificates by
the ``openssl`` command line.  A subscriber for the tests: :func:`collect` (aiomqtt as ``admin``).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from modules.mqtt_bridge.client import SafeClient
from tests.slowness import allow

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

USERS = {
    "admin": "admin-secret",
    "desk": "desk-secret",
    "living": "living-secret",
    "svc": "svc-secret",
    "nosy": "nosy-secret",
}
ACL = """\
# every device user reads and writes its own topics and its discovery configs
pattern readwrite skelly/%u/#
pattern readwrite homeassistant/+/%u/#

user admin
topic readwrite #

# the living-room figurine mirrors the desk: it may read the desk's state
user living
topic read skelly/desk/state
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def make_certs(d: Path) -> Path:
    """A CA and a server certificate for localhost / 127.0.0.1 (openssl CLI), EC keys."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _run("openssl", "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out",
         str(d / "ca.crt"), "-days", "2", "-subj", "/CN=skelly-test-ca")  # fmt: skip
    _run("openssl", "req", *ec, "-keyout", str(d / "server.key"), "-out",
         str(d / "server.csr"), "-subj", "/CN=localhost")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
         "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"),
         "-days", "2", "-extfile", str(d / "san.ext"))  # fmt: skip
    return d / "ca.crt"


@dataclass
class Broker:
    dir: Path
    port: int
    tls_port: int
    ca: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.dir / "mosquitto.log"

    @classmethod
    def create(cls, d: Path) -> Broker:
        d.mkdir(parents=True, exist_ok=True)
        passwd = d / "passwd"
        first = True
        for user, pw in USERS.items():
            _run(MOSQUITTO_PASSWD, *(["-c"] if first else []), "-b", str(passwd), user, pw)
            first = False
        (d / "acl").write_text(ACL)
        ca = make_certs(d)
        broker = cls(d, free_port(), free_port(), ca)
        (d / "mosquitto.conf").write_text(
            f"user {getpass.getuser()}\n"
            "per_listener_settings false\n"
            "allow_anonymous false\n"
            "persistence false\n"
            f"password_file {passwd}\n"
            f"acl_file {d / 'acl'}\n"
            "log_type all\n"
            f"listener {broker.port} 127.0.0.1\n"
            f"listener {broker.tls_port} 127.0.0.1\n"
            f"cafile {ca}\n"
            f"certfile {d / 'server.crt'}\n"
            f"keyfile {d / 'server.key'}\n"
        )
        broker.start()
        return broker

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + allow(10.0)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}: {self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


def admin(broker: Broker, identifier: str = "") -> aiomqtt.Client:
    return SafeClient(
        "127.0.0.1",
        broker.port,
        username="admin",
        password=USERS["admin"],
        identifier=identifier or f"test-admin-{os.getpid()}-{time.monotonic_ns()}",
        protocol=aiomqtt.ProtocolVersion.V5,
    )


@dataclass
class Seen:
    """Every message a subscriber got: (topic, payload text, retain flag), in order."""

    messages: list[tuple[str, str, bool]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def last(self, topic: str) -> str | None:
        for t, p, _r in reversed(self.messages):
            if t == topic:
                return p
        return None

    def last_json(self, topic: str) -> Any:
        text = self.last(topic)
        return None if text is None else json.loads(text)

    async def wait_for(
        self, what: Callable[[Seen], Any], timeout: float = 10.0, why: str = ""
    ) -> Any:
        deadline = asyncio.get_running_loop().time() + allow(timeout)
        while True:
            result = what(self)
            if result:
                return result
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                tail = "\n".join(f"{t} {p[:120]}" for t, p, _ in self.messages[-15:])
                raise AssertionError(f"timed out waiting for {why or what}; last seen:\n{tail}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))


@contextlib.asynccontextmanager
async def collect(broker: Broker, topic: str = "#") -> AsyncIterator[tuple[Seen, aiomqtt.Client]]:
    """Subscribe as ``admin`` to ``topic`` and record everything until the block ends."""
    seen = Seen()
    client = admin(broker)
    async with asyncio.timeout(allow(15)):  # aiomqtt itself waits for the CONNACK for ever
        await client.__aenter__()
    try:
        await client.subscribe(topic, qos=1, timeout=allow(10))

        async def reader() -> None:
            async for m in client.messages:
                payload = m.payload
                text = payload.decode() if isinstance(payload, bytes | bytearray) else str(payload)
                seen.messages.append((str(m.topic), text, bool(m.retain)))
                seen.changed.set()

        task = asyncio.create_task(reader(), name="test-mqtt-reader")
        try:
            yield seen, client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        async with asyncio.timeout(allow(10)):
            await client.__aexit__(None, None, None)
