"""Exclusive lock files that name their holder (``flock`` on a file holding the pid).

Shared by the Pi-side Storage (the database lock) and the host-side ``skelly send`` (the spool
lock); standard library only, so either side may import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os


def try_lock(fd: int) -> str | None:
    """Take the exclusive lock on ``fd`` without waiting and write our pid into the file.

    Returns None when the lock is ours.  When another process holds it, closes ``fd`` and
    returns the pid the holder wrote ("" if it cannot be read).
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = ""
        with contextlib.suppress(OSError, ValueError):
            holder = os.pread(fd, 32, 0).decode().strip()
        os.close(fd)
        return holder
    return None


def write_holder(fd: int) -> None:
    """Write our pid into the locked file (what :func:`try_lock` tells the next process)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
