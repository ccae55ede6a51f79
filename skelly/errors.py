"""Errors the CLI turns into ``skelly: error: <what and what to do>`` and exit status 2."""

from __future__ import annotations

import errno
import os
from pathlib import Path


class SkellyError(Exception):
    """A user-facing error whose message says what was wrong and what to do."""


class StartupFault(SkellyError):
    """A module could not start because something in its environment is wrong (docs/CLI.md §2).

    ``module`` names it and ``detail`` is what it reported; the service exits rather than run
    without it.
    """

    def __init__(self, module: str, detail: str) -> None:
        super().__init__(
            f"cannot start: {module}: {detail} (stopped rather than run without {module})"
        )
        self.module = module
        self.detail = detail


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError`` that reached the CLI: the file, the reason, what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f" {exc.filename}" if exc.filename is not None else ""
    if isinstance(exc, PermissionError):
        return (
            f"cannot access{where}: {reason}; run as the user that owns it (the service's user "
            "for its data_dir, e.g. `sudo -u skelly skelly …`) or fix its permissions"
        )
    return f"cannot use{where}: {reason}"


def require_dir(path: Path, *, write: bool, create: bool, what: str, hint: str) -> bool:
    """Check that ``path`` is a directory this user can read (and write, if ``write``).

    Creates it (mode 0700) if ``create``.  Returns False if it does not exist and was not to be
    created.  Raises :class:`SkellyError` naming ``what`` (e.g. "the data directory") with the
    reason and ``hint`` (what to do) otherwise.
    """
    try:
        if create:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        is_dir = path.is_dir()
        exists = is_dir or path.exists()
    except OSError as exc:
        raise SkellyError(
            f"cannot {'create' if create else 'use'} {what} {path}: {_reason(exc, path)}; {hint}"
        ) from None
    if not exists:
        return False
    if not is_dir:
        raise SkellyError(f"{what} {path} is not a directory; {hint}")
    need = os.R_OK | os.X_OK | (os.W_OK if write else 0)
    if not os.access(path, need):
        mode = "read and write" if write else "read"
        raise SkellyError(f"cannot {mode} {what} {path}: permission denied; {hint}")
    return True


def data_dir_hint(command: str) -> str:
    """What to do about a data directory this user cannot use, for ``skelly <command>``."""
    return (
        "set data_dir (or SKELLY_DATA_DIR) to a directory you can use, or run as the user that "
        f"owns it (e.g. `sudo -u skelly skelly {command} --config /etc/skelly/config.toml`)"
    )


def _reason(exc: OSError, path: Path) -> str:
    if isinstance(exc, (NotADirectoryError, FileExistsError)):
        for parent in (path, *path.parents):
            try:
                if parent.exists() and not parent.is_dir():
                    return f"{parent} is a file, not a directory"
            except OSError:
                break
    return exc.strerror or str(exc)


STOP_SERVICE = "is `skelly run` running? stop the service first: `sudo systemctl stop skelly`"


def describe_device_error(exc: BaseException, device: str, *, serial: bool) -> str:
    """A hint for a GPIO chip (``serial=False``) or serial port that could not be opened
    (``skelly smoke``): which group the user needs, whether it is missing, who may hold it."""
    text = str(exc).lower()
    code = getattr(exc, "errno", None)
    if (
        isinstance(exc, PermissionError)
        or code in (errno.EACCES, errno.EPERM)
        or ("permission" in text or "can not open gpiochip" in text)
    ):
        group = "dialout" if serial else "gpio"
        return (
            f"permission denied on {device}: is the user in group {group}? (`id`; "
            f"`sudo usermod -aG {group} $USER`, then log in again)"
        )
    if isinstance(exc, FileNotFoundError) or code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        if serial:
            return (
                f"{device} missing: is the MCU plugged in? (`ls /dev/serial/by-id/`, `lsusb`; a "
                "charge-only cable shows nothing; the udev rule names it /dev/skelly-mcu: "
                "docs/HARDWARE.md §5)"
            )
        return f"{device} missing: is this a Raspberry Pi? (or set [figurine] gpio_enabled = false)"
    if code in (errno.EBUSY, errno.EAGAIN) or "busy" in text or "in use" in text:
        extra = (
            "; otherwise ModemManager may hold it (`ID_MM_DEVICE_IGNORE=1`, docs/OPERATIONS.md §7)"
            if serial
            else ""
        )
        return f"{device} is busy: {STOP_SERVICE}{extra}"
    if isinstance(exc, ImportError):
        return (
            f"cannot use {device}: {exc}; install the pi extra on a Raspberry Pi "
            "(pip install 'skelly-jelly-edge[pi]') or set [figurine] gpio_enabled = false"
        )
    return f"cannot use {device}: {exc}"
