# Runs the Pico's hardware layer (hw_rp2.py) and the firmware loop on the unix port with the
# fake `machine`/`neopixel` modules: the bytes in argv[1] (hex) arrive on the UART; after they
# are consumed and argv[2] more ms have passed, the call log and the UART output are printed.
import sys
import time

import fake_machine
import fake_neopixel

sys.modules["machine"] = fake_machine
sys.modules["neopixel"] = fake_neopixel

import config  # noqa: E402
import hw_rp2  # noqa: E402
import skelly_run  # noqa: E402

config.SERIAL = "uart"
if len(sys.argv) > 3 and sys.argv[3] == "no-display":
    fake_machine.i2c_present = ()
fake_machine.reset_cause_value = fake_machine.WDT_RESET
fake_machine.uart_rx.extend(bytes.fromhex(sys.argv[1]))
settle_ms = int(sys.argv[2])


class Hw(hw_rp2.Rp2Hw):
    done_at = None

    def poll(self, fw, now):
        super().poll(fw, now)
        if fake_machine.uart_pending():
            return
        if self.done_at is None:
            self.done_at = now
        elif time.ticks_diff(now, self.done_at) >= settle_ms:
            self.running = False


class Firmware(skelly_run.Firmware):
    def __init__(self, hw):
        super().__init__(hw)
        hw.note = self.note  # an exception in the loop is printed, not swallowed

    def note(self, what, value):
        print("NOTE", what, value)


Firmware(Hw(config)).run(hw_rp2.boot_cause())
for entry in fake_machine.log:
    print("LOG", *entry)
print("TX", bytes(fake_machine.uart_tx).hex())
