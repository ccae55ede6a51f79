"""Pseudo-terminal plumbing for the simulated figurine MCU.

A :class:`VirtualSerialPort` is a real pty pair (``os.openpty()``) standing in for a USB serial
device. The simulated MCU owns the *master* side; the host opens the *slave* side through pyserial
exactly as it would open ``/dev/serial/by-id/...`` on the Pi, via a stable symlink path
(``link_path``) that survives an unplug/replug even though the kernel hands out a new
``/dev/pts/N`` each time (the same trick a udev rule plays for a real USB adapter).

* ``plug()``  creates the pair, puts the slave in raw mode, points the symlink at it.
* ``unplug()`` closes the master (the host's reads then fail with EIO/EOF, as when a USB cable is
  pulled) and removes the symlink (opening it then fails with ENOENT, as with a missing device).

The port keeps its own handle on the slave side while plugged, so the master never sees EIO while
the host is between reconnects; pyserial flushes stale input when the host opens the port.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import tty
from pathlib import Path
from types import TracebackType


class VirtualSerialPort:
    """A pty pair reachable at a stable symlink path, with plug/unplug."""

    def __init__(self, link_path: str | os.PathLike[str] | None = None) -> None:
        if link_path is None:
            self._tmpdir: str | None = tempfile.mkdtemp(prefix="skelly-pty-")
            link_path = Path(self._tmpdir) / "mcu"
        else:
            self._tmpdir = None
        self.path = Path(link_path)
        self._master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self.plug_count = 0

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def master_fd(self) -> int:
        if self._master is None:
            raise RuntimeError(f"virtual port {self.path} is unplugged: call plug() first")
        return self._master

    def plug(self) -> int:
        """Create a fresh pty pair, raw and non-blocking; return the master fd."""
        if self._master is not None:
            return self._master
        if self.path.exists() and not self.path.is_symlink():
            raise FileExistsError(
                f"{self.path} exists and is not a symlink; choose another --link path"
            )
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                f"directory {self.path.parent} does not exist; create it or choose another "
                "--link path"
            )
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # no echo, no line discipline, 8-bit clean
            os.set_blocking(master, False)
            self.slave_name = os.ttyname(slave)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(self.slave_name, tmp)
            os.replace(tmp, self.path)  # atomic: the path never points at a stale pty
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        self.plug_count += 1
        return master

    def unplug(self) -> None:
        """Close the pair (the host sees EIO/EOF) and remove the path (opens see ENOENT)."""
        with contextlib.suppress(FileNotFoundError):
            if self.path.is_symlink():
                self.path.unlink()
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None

    def close(self) -> None:
        self.unplug()
        if self._tmpdir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._tmpdir)
            self._tmpdir = None

    def __enter__(self) -> VirtualSerialPort:
        self.plug()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
