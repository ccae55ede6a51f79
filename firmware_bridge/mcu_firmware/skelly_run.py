# Skelly figurine firmware (MicroPython): the main loop, the same on the board and on the unix
# port. The hardware layer (hw_rp2.py / hw_unix.py) provides, besides the outputs skelly_show.py
# drives:
#   hw.read(buf) -> n     bytes waiting on the serial line (never blocks)
#   hw.write(mv)          send bytes (never blocks for long)
#   hw.wait(ms)           sleep until input may be waiting, at most ms
#   hw.button() -> bool   the raw button level (only called when has_button)
#   hw.poll(fw, now)      its own periodic work (watchdog, test control)
#   hw.running            False ends the loop
import gc
import time

from micropython import const
from skelly_link import Link
from skelly_show import (
    CAP_BUTTON,
    CAP_BUZZER,
    CAP_DISPLAY,
    CAP_SERVO,
    Gestures,
    Show,
)

_GC_EVERY = const(4096)  # collect after this many bytes allocated: garbage stays bounded
_IDLE_WAIT_MS = const(5)


def caps_of(hw):
    """HELLO_REPLY caps from what is configured (§4.2)."""
    return (
        (CAP_SERVO if hw.has_servo else 0)
        | (CAP_BUZZER if hw.has_buzzer else 0)
        | (CAP_BUTTON if hw.has_button else 0)
        | (CAP_DISPLAY if hw.has_display else 0)
    )


class Firmware:
    def __init__(self, hw):
        self.hw = hw
        self.show = Show(hw)
        w, h = (hw.display_w, hw.display_h) if hw.has_display else (0, 0)
        mt = hw.max_text if hw.has_display else 0
        self.link = Link(hw, self.show, caps_of(hw), hw.led_count, w, h, mt)
        self.gestures = Gestures() if hw.has_button else None
        self.heap_peak = 0
        self.errors = 0
        self.loops = 0

    def run(self, boot_cause):
        hw = self.hw
        link = self.link
        show = self.show
        gestures = self.gestures
        buf = bytearray(256)
        gc.collect()
        gc.threshold(_GC_EVERY)
        now = time.ticks_ms()
        show.session(False, now)  # no session yet: the sleepy idle look (§5.2)
        link.boot(boot_cause, now)
        while hw.running:
            try:
                n = hw.read(buf)
                now = time.ticks_ms()
                if n:
                    link.feed(buf, n, now)
                link.tick(now)
                if gestures is not None:
                    kind = gestures.feed(hw.button(), now)
                    if kind:
                        link.press(kind, 0, gestures.held_ms, now)
                hw.poll(self, now)
                show.render(now)
                a = gc.mem_alloc()
                if a > self.heap_peak:
                    self.heap_peak = a
                self.loops += 1
                if not n:
                    hw.wait(_IDLE_WAIT_MS)
            except Exception as e:  # never freeze on one bad moment (MemoryError included)
                self.errors += 1
                hw.note("ERROR", repr(e))
                time.sleep_ms(10)
