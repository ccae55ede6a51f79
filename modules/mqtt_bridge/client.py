"""aiomqtt's client with its loop calls made thread-safe (imported only when aiomqtt is there).

aiomqtt 2.x runs paho's blocking ``connect()`` in an executor thread; paho calls back from that
thread (socket open, register/unregister write — the TLS handshake and the CONNECT packet are
written there).  aiomqtt hops to the loop with ``call_soon_threadsafe`` for ``add_reader`` /
``add_writer`` but calls ``remove_writer`` / ``remove_reader`` directly, which PEP 3156 does not
allow from another thread (libuv handles are not thread-safe).  Here both run on the loop
thread: directly when called there (ordering with the socket's close matters),
through ``call_soon_threadsafe`` otherwise, so they queue behind the ``add_*`` calls they undo.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomqtt


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class SafeClient(aiomqtt.Client):
    def _on_socket_unregister_write(self, client: Any, userdata: Any, sock: Any) -> None:
        loop = self._loop
        if _on_loop(loop):
            loop.remove_writer(sock.fileno())
        else:
            loop.call_soon_threadsafe(loop.remove_writer, sock.fileno())

    def _on_socket_close(self, client: Any, userdata: Any, sock: Any) -> None:
        loop = self._loop
        fileno = sock.fileno()
        if fileno > -1:
            if _on_loop(loop):
                loop.remove_reader(fileno)
            else:
                loop.call_soon_threadsafe(loop.remove_reader, fileno)
        task = self._misc_task
        if task is not None and not task.done():
            loop.call_soon_threadsafe(task.cancel)
