"""One documented allowance for the few tests that measure time on purpose.

Most tests wait for the event they need (an ack, a committed window, a frame) or drive time with
an injected clock, so they do not care how fast the machine is.  A test that must bound how long
something takes in real time writes its limit as ``allow(seconds)``: the limit for a normal
2-core machine, multiplied by ``SKELLY_TEST_SLOWNESS`` (default 1).  The arm64 emulated run
(5-20x slower) sets ``SKELLY_TEST_SLOWNESS=20``; the per-test timeout (pytest-timeout) is scaled
by the same factor in ``tests/conftest.py``.
"""

from __future__ import annotations

import os


def _factor() -> float:
    raw = os.environ.get("SKELLY_TEST_SLOWNESS", "1")
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"SKELLY_TEST_SLOWNESS must be a number >= 1, got {raw!r}") from None
    if not value >= 1.0:
        raise SystemExit(f"SKELLY_TEST_SLOWNESS must be a number >= 1, got {raw!r}")
    return value


FACTOR = _factor()


def allow(seconds: float) -> float:
    """A real-time limit of ``seconds`` on a normal machine, scaled for a slow one."""
    return seconds * FACTOR
