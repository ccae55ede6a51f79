"""A real ``skelly run`` with the MQTT bridge on: its own Mosquitto is killed (SIGKILL) and
restarted mid-run while a host keeps sending through the real ingest client — ingest keeps
acknowledging, the bridge reconnects and publishes every retained state again to the fresh
broker (no persistence) — and ``kill -9`` of the service makes the broker publish its last will.
Also: a bad port and a missing aiomqtt are one-line start-up errors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from modules.ingest.client import IngestClient
from tests.mqtt.broker import USERS, Broker, collect, free_port
from tests.slowness import allow

ROOT = Path(__file__).resolve().parents[2]
Run = Callable[[Coroutine[Any, Any, Any]], Any]
MARKER = "sess-SECRET-9c1e"


def _config(tmp: Path, broker: Broker, ingest_port: int, **mqtt: str) -> Path:
    extra = "".join(f"{k} = {v}\n" for k, v in mqtt.items())
    config = tmp / "config.toml"
    config.write_text(
        f'data_dir = "{tmp / "state"}"\n'
        f"[ingest]\nport = {ingest_port}\n"
        "[storage]\ncommit_max_wait_s = 0.0\n"
        "[figurine]\nserial_enabled = false\n"
        "[mqtt]\nenabled = true\n"
        f'host = "127.0.0.1"\nport = {broker.port}\n'
        f'username = "svc"\npassword = "{USERS["svc"]}"\ndevice_id = "svc"\n'
        "reconnect_initial_s = 0.2\nreconnect_max_s = 1.0\n" + extra
    )
    return config


def _skelly(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skelly.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_broker_killed_and_restarted_then_service_killed(run_uv: Run, tmp_path: Path) -> None:
    broker = Broker.create(tmp_path / "mosquitto")
    ingest_port = free_port()
    config = _config(tmp_path, broker, ingest_port)
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    token = _skelly("token", "--config", str(config), env=env)
    assert token.returncode == 0, token.stderr
    service = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    async def main() -> None:
        assert service.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(service.stdout.readline), allow(30))
        assert "started" in line, line
        client = IngestClient(
            f"127.0.0.1:{ingest_port}", token.stdout.strip(), host_id="laptop", session_id=MARKER
        )
        await client.start()
        t0 = time.time() - 60

        async def send(n: int, start: int) -> None:
            for i in range(start, start + n):
                await client.send({"kind": "key", "ts": t0 + i * 0.1, "correction": False})
            await client.flush(timeout=allow(15))

        try:
            async with collect(broker, "#") as (seen, _c):
                await seen.wait_for(
                    lambda v: v.last("skelly/svc/availability") == "online", why="online"
                )
                await send(100, 0)
                await seen.wait_for(lambda v: v.last("skelly/svc/link/host") == "up", why="up")
                before = list(seen.messages)
            broker.kill()  # a crash: no goodbye to anyone
            acked = client.acked
            await send(200, 100)  # ingest keeps acknowledging while the broker is away
            assert client.acked >= acked + 200
            broker.start()
            async with collect(broker, "#") as (fresh, _c):
                # the restarted broker has no retained message of its own: these are the bridge's
                await fresh.wait_for(
                    lambda v: (
                        v.last("skelly/svc/availability") == "online"
                        and v.last("skelly/svc/link/host") == "up"
                        and v.last("homeassistant/switch/svc/quiet/config") is not None
                        and v.last("skelly/svc/health") is not None
                    ),
                    timeout=20,
                    why="retained state republished after the broker restart",
                )
                await send(50, 300)
                # kill -9: the broker publishes the last will
                service.kill()
                await asyncio.to_thread(service.wait, 10)
                await fresh.wait_for(
                    lambda v: v.last("skelly/svc/availability") == "offline",
                    why="the last will",
                )
                after = list(fresh.messages)
        finally:
            await client.close()
        for topic, payload, _r in before + after:
            assert MARKER not in payload and MARKER not in topic, (topic, payload)

    try:
        run_uv(main())
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)
        broker.stop()


def test_sigterm_publishes_offline_and_exits_cleanly(
    run_uv: Run, broker: Broker, tmp_path: Path
) -> None:
    config = _config(tmp_path, broker, free_port())
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    service = subprocess.Popen(
        [sys.executable, "-m", "skelly.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    async def main() -> None:
        async with collect(broker, "skelly/svc/availability") as (seen, _c):
            await seen.wait_for(lambda v: v.last("skelly/svc/availability") == "online")
            service.send_signal(signal.SIGTERM)
            _out, err = await asyncio.to_thread(service.communicate, None, allow(30))
            assert service.returncode == 0, err
            await seen.wait_for(lambda v: v.last("skelly/svc/availability") == "offline")

    try:
        run_uv(main())
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skelly: error: "), result.stderr
    return lines[0]


def test_bad_port_is_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt]\nenabled = true\nport = 70000\n")
    assert "mqtt.port must be 1..65535" in _one_error_line(
        _skelly("run", "--config", str(bad), env=env)
    )


def test_missing_aiomqtt_is_a_start_fault_naming_the_extra(tmp_path: Path) -> None:
    """The Pi's base install has no aiomqtt: an import that fails is what it would see."""
    blocker = tmp_path / "blocker" / "aiomqtt"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text('raise ImportError("no aiomqtt here")\n')
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": f"{blocker.parent}:{ROOT}"}
    config = tmp_path / "c.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "state"}"\n[ingest]\nport = {free_port()}\n'
        "[figurine]\nserial_enabled = false\n[mqtt]\nenabled = true\n"
    )
    assert _skelly("token", "--config", str(config), env=env).returncode == 0
    line = _one_error_line(_skelly("run", "--config", str(config), env=env))
    assert "MqttBridge" in line and "pip install 'skelly-jelly-edge[mqtt]'" in line
    assert "/opt/skelly/venv" in line
