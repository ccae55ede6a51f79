# A stand-in for MicroPython's `machine` module on the unix port, so the Pico's hardware layer
# (firmware_bridge/mcu_firmware/hw_rp2.py) runs under the real interpreter: every call is
# recorded for the test to read. Installed with sys.modules["machine"] = fake_machine.
PWRON_RESET = 1
WDT_RESET = 3
reset_cause_value = PWRON_RESET
log = []  # (what, args) in call order
uart_rx = bytearray()
uart_rx_at = 0  # how much of uart_rx the firmware has read
uart_tx = bytearray()
i2c_present = (0x3C,)


def uart_pending():
    return len(uart_rx) - uart_rx_at


def reset_cause():
    return reset_cause_value


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, n, mode=-1, pull=-1):
        self.n = n
        self.level = 1  # a button to GND with the pull-up: 1 = not pressed

    def value(self, v=None):
        return self.level


class PWM:
    def __init__(self, pin):
        self.pin = pin.n

    def freq(self, f):
        log.append(("pwm.freq", self.pin, f))

    def duty_u16(self, d):
        log.append(("pwm.duty_u16", self.pin, d))

    def duty_ns(self, ns):
        log.append(("pwm.duty_ns", self.pin, ns))


class UART:
    def __init__(self, n, baudrate=9600, tx=None, rx=None, rxbuf=0, timeout=0):
        log.append(("uart", n, baudrate))

    def readinto(self, buf):
        global uart_rx_at
        n = min(len(buf), len(uart_rx) - uart_rx_at, 64)  # a FIFO's worth at a time
        if not n:
            return None
        buf[:n] = uart_rx[uart_rx_at : uart_rx_at + n]
        uart_rx_at += n
        return n

    def write(self, data):
        uart_tx.extend(data)
        return len(data)


class I2C:
    def __init__(self, n, sda=None, scl=None, freq=0):
        self.n = n

    def writeto(self, addr, data):
        if addr not in i2c_present:
            raise OSError(19)  # ENODEV: nothing acknowledges that address
        log.append(("i2c.cmd", addr, data[1]))

    def writevto(self, addr, parts):
        lit = sum(bin(b).count("1") for b in parts[1])
        log.append(("i2c.frame", addr, lit))


class WDT:
    def __init__(self, timeout=0):
        log.append(("wdt", timeout))

    def feed(self):
        pass
