"""systemd's notify protocol with the standard library (docs/STATUS.md §3).

The protocol is one datagram per message to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET``
(a path, or ``@name`` for the abstract namespace), so a ``sendto`` does it and no library is
needed.  Without ``NOTIFY_SOCKET`` (not started by systemd) :func:`from_environ` returns a
notifier that does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping


class Notifier:
    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def __call__(self, message: str) -> None:
        """Send ``message`` (e.g. ``READY=1`` or ``STATUS=...``) in one datagram."""
        if self._sock is None or self.address is None:
            return
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]
        self._sock.sendto(message.encode("utf-8", "replace"), target)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def from_environ(environ: Mapping[str, str] | None = None) -> Notifier:
    env = os.environ if environ is None else environ
    return Notifier(env.get("NOTIFY_SOCKET") or None)


def watchdog_seconds(environ: Mapping[str, str] | None = None) -> float | None:
    """``WATCHDOG_USEC`` in seconds, or None when there is no watchdog for this process
    (unset, not a positive number, or ``WATCHDOG_PID`` names another process)."""
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 else None
