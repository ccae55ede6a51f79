"""modules.lockfile: the exclusive lock that names its holder (database and spool locks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modules.lockfile import try_lock, write_holder


def test_a_second_open_of_a_held_lock_learns_the_holders_pid(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    first = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        assert try_lock(first) is None
        write_holder(first)
        second = os.open(path, os.O_RDWR)  # another open file description: flock conflicts
        assert try_lock(second) == str(os.getpid())
        with pytest.raises(OSError):
            os.fstat(second)  # closed by try_lock
    finally:
        os.close(first)
    third = os.open(path, os.O_RDWR)  # released with the holder's fd
    try:
        assert try_lock(third) is None
    finally:
        os.close(third)
