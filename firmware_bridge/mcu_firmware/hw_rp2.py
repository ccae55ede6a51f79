# Skelly figurine firmware: the hardware layer for a Raspberry Pi Pico (RP2040) running
# MicroPython. Pins come from config.py; a part whose pin is None (or that does not answer, like
# a display missing from the I2C bus) is reported absent in HELLO_REPLY.
#   serial   USB CDC (sys.stdin.buffer / sys.stdout.buffer) or machine.UART
#   ring     WS2812 through neopixel (one colour for the whole ring; fades and pulses are
#            computed in skelly_show.py and written at most 50 times a second)
#   servo    machine.PWM at 50 Hz, pulse width from SERVO_MIN_US (upright) to SERVO_MAX_US
#   display  SSD1306 over I2C through framebuf (a small driver below: no extra package)
#   buzzer   machine.PWM, frequency = the tone, duty = the volume
#   button   a pin to GND with the internal pull-up (debounce and gestures in skelly_show.py)
import select
import sys
import time

import framebuf
import machine
import micropython
from machine import PWM, Pin

_FACE_EYES = (  # per face (§4.1): eye height, mouth curve (-1 frown .. 1 smile), mouth open
    (8, 0, 0),  # NEUTRAL
    (8, 1, 0),  # HAPPY
    (2, 0, 0),  # SLEEPY
    (5, 0, 0),  # FOCUSED
    (8, -1, 0),  # CONCERNED
    (10, 1, 1),  # CELEBRATE
    (3, -1, 0),  # MELTED
    (10, 0, 1),  # SURPRISED
)


def boot_cause():
    """BOOT cause (§4.2) from machine.reset_cause()."""
    c = machine.reset_cause()
    if c == machine.PWRON_RESET:
        return 1
    if c == machine.WDT_RESET:
        return 2
    if c == getattr(machine, "SOFT_RESET", -1):
        return 3
    return 0


class _Ssd1306:
    """The SSD1306 OLED over I2C: a framebuf.FrameBuffer and show()."""

    def __init__(self, i2c, addr, w, h):
        self.i2c, self.addr, self.w, self.h = i2c, addr, w, h
        self.buf = bytearray(w * h // 8)
        self.fb = framebuf.FrameBuffer(self.buf, w, h, framebuf.MONO_VLSB)
        self._cmd_buf = bytearray(2)
        self._cmd_buf[0] = 0x80
        self._data_prefix = b"\x40"
        for c in (
            0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, h - 1, 0xC8, 0xD3, 0x00,
            0xDA, 0x02 if w > 2 * h else 0x12, 0xD5, 0x80, 0xD9, 0xF1, 0xDB, 0x30,
            0x81, 0xFF, 0xA4, 0xA6, 0x8D, 0x14, 0xAF,
        ):  # fmt: skip
            self._cmd(c)

    def _cmd(self, c):
        self._cmd_buf[1] = c
        self.i2c.writeto(self.addr, self._cmd_buf)

    def power(self, on):
        self._cmd(0xAF if on else 0xAE)

    def show(self):
        for c in (0x21, 0, self.w - 1, 0x22, 0, self.h // 8 - 1):
            self._cmd(c)
        self.i2c.writevto(self.addr, (self._data_prefix, self.buf))


class Rp2Hw:
    def __init__(self, cfg):
        self.running = True
        self._rx1 = bytearray(1)
        if cfg.SERIAL == "uart":
            self._uart = machine.UART(
                cfg.UART_ID, baudrate=cfg.UART_BAUD, tx=Pin(cfg.UART_TX), rx=Pin(cfg.UART_RX),
                rxbuf=1024, timeout=0,
            )  # fmt: skip
        else:
            self._uart = None
            micropython.kbd_intr(-1)  # a 0x03 in a frame must not stop the firmware
            self._in = sys.stdin.buffer
            self._out = sys.stdout.buffer
            self._poll = select.poll()
            self._poll.register(sys.stdin, select.POLLIN)
        self.led_count = cfg.LED_COUNT if cfg.LED_PIN is not None else 0
        self._np = None
        if self.led_count:
            import neopixel

            self._np = neopixel.NeoPixel(Pin(cfg.LED_PIN), self.led_count)
        self.has_servo = cfg.SERVO_PIN is not None
        if self.has_servo:
            self._servo = PWM(Pin(cfg.SERVO_PIN))
            self._servo.freq(50)
            self._servo_min = cfg.SERVO_MIN_US * 1000
            self._servo_span = (cfg.SERVO_MAX_US - cfg.SERVO_MIN_US) * 1000
            self.servo(0)
        self.has_buzzer = cfg.BUZZER_PIN is not None
        if self.has_buzzer:
            self._buzzer = PWM(Pin(cfg.BUZZER_PIN))
            self._buzzer.duty_u16(0)
        self.has_button = cfg.BUTTON_PIN is not None
        if self.has_button:
            self._button = Pin(cfg.BUTTON_PIN, Pin.IN, Pin.PULL_UP)
        self.display_w, self.display_h = cfg.DISPLAY_W, cfg.DISPLAY_H
        self.max_text = cfg.MAX_TEXT
        self._oled = None
        if cfg.DISPLAY_SDA is not None:
            try:
                i2c = machine.I2C(
                    0 if cfg.DISPLAY_SDA in (0, 4, 8, 12, 16, 20) else 1,
                    sda=Pin(cfg.DISPLAY_SDA), scl=Pin(cfg.DISPLAY_SCL), freq=400000,
                )  # fmt: skip
                self._oled = _Ssd1306(i2c, cfg.DISPLAY_ADDR, cfg.DISPLAY_W, cfg.DISPLAY_H)
            except OSError:  # nothing answers at that address: no display
                self._oled = None
        self.has_display = self._oled is not None
        self._wdt = machine.WDT(timeout=cfg.WATCHDOG_MS) if cfg.WATCHDOG_MS else None

    # serial
    def read(self, buf):
        if self._uart is not None:
            return self._uart.readinto(buf) or 0
        n = 0
        size = len(buf)
        rx1 = self._rx1
        while n < size:
            ready = False
            for _ in self._poll.ipoll(0):  # ipoll: no allocation per call
                ready = True
            if not ready:
                break
            self._in.readinto(rx1)
            buf[n] = rx1[0]
            n += 1
        return n

    def write(self, mv):
        if self._uart is not None:
            self._uart.write(mv)
        else:
            self._out.write(mv)

    def wait(self, ms):
        if self._uart is None:
            for _ in self._poll.ipoll(ms):
                break
        else:
            time.sleep_ms(1 if ms > 1 else ms)

    def button(self):
        return self._button.value() == 0

    def poll(self, fw, now):
        if self._wdt is not None:
            self._wdt.feed()

    # outputs
    def leds(self, r, g, b):
        np = self._np
        if np is not None:
            np.fill((r, g, b))
            np.write()

    def servo(self, melt):
        self._servo.duty_ns(self._servo_min + self._servo_span * melt // 255)

    def buzz(self, freq, volume):
        if freq:
            self._buzzer.freq(freq)
            self._buzzer.duty_u16(volume * 128)  # 255 -> 50 % duty: the loudest
        else:
            self._buzzer.duty_u16(0)

    def display(self, face, text):
        oled = self._oled
        fb = oled.fb
        if face < 0:  # asleep: display off
            oled.power(False)
            return
        oled.power(True)
        fb.fill(0)
        eye_h, curve, open_mouth = _FACE_EYES[face]
        top = 12 - eye_h // 2 if text else 24 - eye_h // 2
        cx = self.display_w // 2
        fb.fill_rect(cx - 24, top, 10, eye_h, 1)
        fb.fill_rect(cx + 14, top, 10, eye_h, 1)
        my = top + eye_h + 6
        if open_mouth:
            fb.ellipse(cx, my + 2, 6, 4, 1, True)
        else:
            fb.hline(cx - 10, my, 21, 1)
            if curve:
                fb.pixel(cx - 11, my - curve, 1)
                fb.pixel(cx + 11, my - curve, 1)
        if text:
            self._bubble(fb, text)
        oled.show()

    def _bubble(self, fb, text):
        # 16 characters a line, up to 5 lines under the face; the built-in font is ASCII only
        w = self.display_w // 8
        y = 24
        line = ""
        for ch in text:
            line += ch if " " <= ch <= "~" else "?"
            if len(line) == w:
                fb.text(line, 0, y, 1)
                y += 8
                line = ""
                if y > self.display_h - 8:
                    return
        if line:
            fb.text(line, 0, y, 1)

    def note(self, what, value):
        pass  # nothing to print on: stdout may be the serial line

    def applied(self, t, b, o, n):
        pass
