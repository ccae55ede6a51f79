"""Bus errors."""

from __future__ import annotations


class BusError(Exception):
    """Base class of bus errors."""


class BusNotBoundError(BusError, RuntimeError):
    """``publish_threadsafe`` was called before the bus saw its event loop."""


class BusClosedError(BusError, RuntimeError):
    """The bus (or its loop) is closed."""
