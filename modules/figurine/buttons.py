"""Button gestures from edges: short, long, double (docs/FIGURINE.md §4).  Pure: times passed in.

The GPIO back end feeds it gpiozero's own events: ``pressed``/``released`` (``when_pressed`` /
``when_released``) and ``held`` (``when_held``, fired by gpiozero after ``hold_time``).  A long
press is decided when gpiozero says held (its release is then ignored); a double press on the
second press edge within ``double_press_s`` of the first release; a short press
``double_press_s`` after its release when no second press came (at once when ``double_press_s``
is 0).  The shell calls :meth:`poll` at :meth:`next_deadline`.
"""

from __future__ import annotations


class GestureDetector:
    def __init__(self, double_press_s: float = 0.4) -> None:
        self.double_press_s = double_press_s
        self._down = False
        self._held = False
        self._second = False
        self._released_at: float | None = None

    def pressed(self, now: float) -> list[str]:
        out = self.poll(now)
        self._down = True
        self._held = False
        if self._released_at is not None:  # within the window (poll kept it)
            self._released_at = None
            self._second = True
            out.append("double")
        return out

    def released(self, now: float) -> list[str]:
        out = self.poll(now)
        if not self._down:
            return out
        self._down = False
        if self._held or self._second:
            self._held = self._second = False
            return out
        if self.double_press_s <= 0:
            return [*out, "short"]
        self._released_at = now
        return out

    def held(self, now: float) -> list[str]:
        out = self.poll(now)
        if not self._down or self._held:
            return out
        self._held = True
        if self._second:  # the second press of a double, kept down: already decided
            return out
        return [*out, "long"]

    def poll(self, now: float) -> list[str]:
        if self._released_at is not None and now >= self._released_at + self.double_press_s:
            self._released_at = None
            return ["short"]
        return []

    def next_deadline(self) -> float | None:
        if self._released_at is None:
            return None
        return self._released_at + self.double_press_s
