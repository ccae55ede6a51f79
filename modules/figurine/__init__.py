"""CuteFigurine: a compositor (base look + overlays → one look per instant) driving a GPIO and/or
a serial back end (docs/FIGURINE.md).

* ``look.py`` — :class:`Look` and the base look of each state; ``overlays.py`` — the priority
  queue; ``buttons.py`` — short/long/double from edges; ``compositor.py`` — the pure core;
* ``backends.py`` — the back-end port and rate caps; ``gpio.py`` — gpiozero devices with an
  injected pin factory; ``serial.py`` — the ``firmware_bridge`` link;
* ``module.py`` — :class:`CuteFigurine`, the shell on the bus.
"""

from modules.figurine.compositor import Compositor
from modules.figurine.config import FigurineConfig, GpioConfig
from modules.figurine.look import Look
from modules.figurine.module import GESTURES, CuteFigurine

__all__ = ["GESTURES", "Compositor", "CuteFigurine", "FigurineConfig", "GpioConfig", "Look"]
