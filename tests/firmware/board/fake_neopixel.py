# A stand-in for MicroPython's `neopixel` module (see fake_machine.py).
import fake_machine


class NeoPixel:
    def __init__(self, pin, n):
        self.n = n
        self.pixels = [(0, 0, 0)] * n
        fake_machine.log.append(("neopixel", pin.n, n))

    def fill(self, rgb):
        self.pixels = [rgb] * self.n

    def write(self):
        fake_machine.log.append(("neopixel.write", self.pixels[0]))
