"""The control socket: ``status\\n`` in, one line of JSON out (docs/STATUS.md §4)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware_bridge.debug import socket_is_live

log = logging.getLogger("skelly.orchestrator")

SOCKET_NAME = "control.sock"
MAX_REQUEST = 256


def control_socket_path(state_dir: Path) -> Path:
    """Where the service serves its control socket: next to the console socket."""
    return state_dir / SOCKET_NAME


class ControlSocketError(OSError):
    """The control socket cannot be served (another live service holds it, or not creatable)."""


class ControlServer:
    def __init__(self, path: Path, status: Callable[[], dict[str, Any]]) -> None:
        self.path = path
        self._status = status
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if await asyncio.to_thread(socket_is_live, self.path):
                raise ControlSocketError(
                    f"another skelly service already serves the control socket {self.path}; "
                    "stop it first (or give this one another data_dir)"
                )
            self.path.unlink()  # a dead service's leftover
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
            os.chmod(self.path, 0o600)
        except OSError as exc:
            raise ControlSocketError(
                f"cannot create the control socket {self.path}: {exc.strerror or exc}"
            ) from exc

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1.0)
        with contextlib.suppress(OSError):
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), 5.0)
            except (TimeoutError, ValueError):
                return
            request = line[:MAX_REQUEST].decode("utf-8", "replace").strip()
            reply: dict[str, Any]
            if request == "status":
                try:
                    reply = self._status()
                except Exception as exc:  # say it to the client rather than drop the line
                    log.exception("control socket: building the status failed")
                    reply = {"error": f"the service could not build its status: {exc}"}
            else:
                reply = {"error": f"unknown request {request[:40]!r}; send 'status'"}
            writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
