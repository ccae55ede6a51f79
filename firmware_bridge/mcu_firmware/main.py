# Skelly figurine firmware: the Pico's entry point (MicroPython runs main.py at power-on).
# Hold the button while plugging the Pico in to skip the firmware and keep the REPL (the
# firmware turns Ctrl-C off: the serial line carries protocol bytes, 0x03 among them).
import config
from machine import Pin


def _safe_mode():
    if config.BUTTON_PIN is None:
        return False
    return Pin(config.BUTTON_PIN, Pin.IN, Pin.PULL_UP).value() == 0


if _safe_mode():
    print("skelly: button held at power-on: firmware not started (REPL stays)")
else:
    from hw_rp2 import Rp2Hw, boot_cause
    from skelly_run import Firmware

    Firmware(Rp2Hw(config)).run(boot_cause())
