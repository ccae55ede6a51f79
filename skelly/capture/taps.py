"""The listener callbacks: what the input library (pynput) calls on its own threads.

Privacy by construction: :meth:`Taps.on_press` reduces the key object to one boolean (is it a
correction: Backspace or Delete?) on its first line and never stores, logs or passes the key,
its name, code or character anywhere.  Mouse callbacks pass only coordinates (for speed),
"a button went down" and scroll deltas.  Each callback takes the time, then holds the lock only
for a few arithmetic operations on the :class:`~skelly.capture.summariser.Summariser`, so the
input thread is never blocked (docs/CAPTURE.md §6 measures it).

``record`` (set from ``SKELLY_CAPTURE_CALLBACK_TIMES``, for bench/capture.py) collects each
callback's wall time in nanoseconds.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from skelly.capture.summariser import Summariser


def correction_keys() -> tuple[Any, ...]:
    """The loaded pynput back end's Backspace and Delete (needs pynput and a display)."""
    from pynput import keyboard  # type: ignore[import-untyped,unused-ignore]

    return (keyboard.Key.backspace, keyboard.Key.delete)


class Taps:
    def __init__(
        self,
        summariser: Summariser,
        lock: threading.Lock,
        clock: Callable[[], float],
        corrections: tuple[Any, ...],
    ) -> None:
        self._summariser = summariser
        self._lock = lock
        self._clock = clock
        self._corrections = corrections
        # a special key arrives as the enum member; a key code equal to one (same keysym) too
        self._correction_codes = tuple(getattr(k, "value", k) for k in corrections)
        self.record: list[int] | None = None

    def on_press(self, key: Any) -> None:
        correction = key in self._corrections or any(key == c for c in self._correction_codes)
        del key  # nothing below may know which key it was
        ts = self._clock()
        with self._lock:
            self._summariser.key(ts, correction)

    def on_move(self, x: float, y: float) -> None:
        ts = self._clock()
        with self._lock:
            self._summariser.move(ts, x, y)

    def on_click(self, x: float, y: float, button: Any, pressed: bool) -> None:
        if not pressed:
            return
        ts = self._clock()
        with self._lock:
            self._summariser.click(ts)

    def on_scroll(self, x: float, y: float, dx: float, dy: float) -> None:
        ts = self._clock()
        with self._lock:
            self._summariser.scroll(ts, dx, dy)

    def callbacks(self) -> dict[str, Callable[..., None]]:
        """The callbacks to hand to the listeners (timed when ``record`` is a list)."""
        plain: dict[str, Callable[..., None]] = {
            "on_press": self.on_press,
            "on_move": self.on_move,
            "on_click": self.on_click,
            "on_scroll": self.on_scroll,
        }
        if self.record is None:
            return plain
        record = self.record

        def timed(fn: Callable[..., None]) -> Callable[..., None]:
            # pynput passes extra arguments (``injected``) to a callback taking ``*args``
            n = len(inspect.signature(fn).parameters)

            def wrapper(*args: Any) -> None:
                t0 = time.perf_counter_ns()
                fn(*args[:n])
                record.append(time.perf_counter_ns() - t0)

            return wrapper

        return {name: timed(fn) for name, fn in plain.items()}
