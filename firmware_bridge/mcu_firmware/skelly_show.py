# Skelly figurine firmware (MicroPython): the portable part that turns commands into what the
# figurine shows (docs/PROTOCOL.md §4.1, §5.2 sleepy idle, §10 power-on state) and button edges
# into gestures (§4.2 INPUT_EVENT). Glow fades and pulses, pose easing, animations, tone and
# bubble timers all run here, on the MCU; the hardware layer (hw_rp2.py / hw_unix.py) only
# drives outputs:
#   hw.leds(r, g, b)           the whole ring, final values 0..255
#   hw.servo(melt)             0 upright .. 255 slumped
#   hw.display(face, text)     text None: no bubble; face -1: display off
#   hw.buzz(freq_hz, volume)   freq 0: silent
#   hw.note(what, value)       a line for the record (a no-op on the board)
#   hw.applied(t, buf, off, n) a command was executed (a no-op on the board)
# and says what it has: led_count, has_servo, has_buzzer, has_button, has_display, display_w,
# display_h, max_text. Integer arithmetic only (floats are heap objects on the RP2040).
import time

from micropython import const
from skelly_link import (
    BAD_LENGTH,
    BAD_VALUE,
    T_PLAY_ANIMATION,
    T_SET_BRIGHTNESS,
    T_SET_GLOW,
    T_SET_POSE,
    T_SHOW_TEXT,
    T_SLEEP,
    T_TONE,
    UNSUPPORTED,
    utf8_ok,
)

CAP_SERVO = const(1)
CAP_BUZZER = const(2)
CAP_BUTTON = const(4)
CAP_TOUCH = const(8)
CAP_DISPLAY = const(16)

FACE_SLEEPY = const(2)
_FRAME_MS = const(20)  # outputs refreshed at 50 Hz
_MAX_TEXT = const(160)

# §5.2 sleepy idle look (the same values as the reference simulator): dim slow breathing,
# relaxed pose, sleepy face, no bubble
_IDLE_GLOW = (60, 40, 120, 50, 4000, 200)
_IDLE_MELT = const(96)
_IDLE_BRIGHTNESS = const(128)
_IDLE_FADE_MS = const(1500)
_IDLE_EASE_MS = const(2000)
_RESUME_MS = const(500)

# (1 - cos) / 2 over one period, 32 steps, 0..255: the breathing curve
_BREATH = bytes(
    (0, 2, 10, 22, 37, 56, 78, 101, 127, 154, 177, 199, 218, 233, 245, 253,
     255, 253, 245, 233, 218, 199, 177, 154, 128, 101, 78, 56, 37, 22, 10, 2)
)  # fmt: skip
# BOUNCE easing, 0..1024 at 16 steps (+ the end)
_BOUNCE = (0, 31, 124, 279, 496, 775, 1016, 783, 690, 783, 1016, 946, 924, 946, 1016, 1003, 1024)
# animations (§4.1 PLAY_ANIMATION 1..7): servo offsets (+128 = none) and light (128 = unchanged)
# per 120 ms step at speed 100
_ANIM_SERVO = (
    b"",
    bytes((128, 168, 128, 88, 128, 168, 128, 88)),  # WAVE
    bytes((128, 160, 176, 160, 128, 128)),  # NOD
    bytes((128, 100, 156, 100, 156, 128)),  # SHAKE
    bytes((128, 150, 180, 210, 240, 240, 200, 160, 128)),  # MELT_DRIP
    bytes((128, 88, 168, 88, 168, 88, 168, 128)),  # CELEBRATE
    bytes((128, 138, 118, 138, 118, 138, 118, 128)),  # WIGGLE
    bytes((128, 150, 170, 180, 180, 170, 150, 128)),  # YAWN
)
_ANIM_LIGHT = (
    b"",
    bytes((128, 160, 128, 160, 128, 160, 128, 128)),
    bytes((128, 128, 128, 128, 128, 128)),
    bytes((128, 110, 128, 110, 128, 128)),
    bytes((128, 120, 110, 100, 90, 90, 100, 115, 128)),
    bytes((128, 255, 128, 255, 128, 255, 128, 128)),
    bytes((128, 150, 128, 150, 128, 150, 128, 128)),
    bytes((128, 110, 90, 70, 70, 90, 110, 128)),
)
_ANIM_STEP_MS = const(120)


def _ease(easing, p):
    # p 0..1024 -> 0..1024 (§4.1 SET_POSE easing)
    if easing == 1:  # EASE_IN_OUT: smoothstep
        return p * p * (3072 - 2 * p) >> 20
    if easing == 2:  # EASE_OUT
        q = 1024 - p
        return 1024 - (q * q >> 10)
    if easing == 3:  # BOUNCE
        i = p >> 6
        if i >= 16:
            return 1024
        a = _BOUNCE[i]
        return a + ((_BOUNCE[i + 1] - a) * (p & 63) >> 6)
    return p


class Show:
    """The figurine's state: what the host last set (kept without a session) and what shows."""

    def __init__(self, hw):
        self.hw = hw
        self.session_on = False
        # what the host set (§10 power-on values)
        self.glow = [0, 0, 0, 0, 0, 0]  # r g b intensity pulse_ms depth
        self.melt = 0
        self.face = 0
        self.text = None
        self.text_until = 0
        self.text_timed = False
        self.brightness = 255
        self.asleep = False
        # what is rendered: the glow moving from _from to _to over _fade_ms since _t0
        self._to = [0, 0, 0, 0, 0, 0]
        self._from = [0, 0, 0, 0]
        self._cur = [0, 0, 0, 0]
        self._t0 = time.ticks_ms()
        self._fade_ms = 0
        self._bright = 255
        self._sleep_from = 255
        self._sleep_to = 255
        self._sleep_t0 = self._t0
        self._sleep_ms = 0
        self._sleep_now = 255
        self._m_from = 0
        self._m_to = 0
        self._m_t0 = self._t0
        self._m_ms = 0
        self._m_easing = 0
        self.melt_now = 0
        self._anim = 0
        self._anim_t0 = 0
        self._anim_step = _ANIM_STEP_MS
        self._anim_left = 0
        self._anim_servo = 128
        self._anim_light = 128
        self._tone_until = 0
        self._tone_on = False
        self._last_frame = self._t0
        self._shown_leds = -1
        self._shown_melt = -1
        self._shown_face = -2
        self._shown_text = None

    # ------------------------------------------------------------------ §6.1 checks

    def check(self, t, b, o, n):
        """0, or the NACK reason for this command body b[o:o+n] (in the order of §6.1)."""
        hw = self.hw
        if t == T_SET_GLOW:
            return BAD_LENGTH if n < 9 else 0
        if t == T_SET_POSE:
            if n < 4:
                return BAD_LENGTH
            if b[o + 3] > 3:
                return BAD_VALUE
            return 0 if hw.has_servo else UNSUPPORTED
        if t == T_SHOW_TEXT:
            if n < 4 or n < 4 + b[o + 3]:
                return BAD_LENGTH
            tl = b[o + 3]
            if b[o] > 7 or tl > _MAX_TEXT or not utf8_ok(b, o + 4, o + 4 + tl):
                return BAD_VALUE
            if not hw.has_display:
                return UNSUPPORTED
            return BAD_VALUE if tl > hw.max_text else 0
        if t == T_SET_BRIGHTNESS:
            return BAD_LENGTH if n < 1 else 0
        if t == T_SLEEP:
            if n < 3:
                return BAD_LENGTH
            return BAD_VALUE if b[o] > 1 else 0
        if t == T_PLAY_ANIMATION:
            if n < 3:
                return BAD_LENGTH
            return BAD_VALUE if b[o] > 7 or b[o + 2] == 0 else 0
        if t == T_TONE:
            if n < 5:
                return BAD_LENGTH
            f = b[o] | (b[o + 1] << 8)
            d = b[o + 2] | (b[o + 3] << 8)
            if (0 < f < 20) or f > 20000 or d > 5000 or (d == 0 and f):
                return BAD_VALUE
            return 0 if hw.has_buzzer else UNSUPPORTED
        return 0

    # ------------------------------------------------------------------ executing commands

    def apply(self, t, b, o, n, now):
        self.hw.applied(t, b, o, n)
        if t == T_SET_GLOW:
            g = self.glow
            for i in range(4):
                g[i] = b[o + i]
            g[4] = b[o + 4] | (b[o + 5] << 8)
            g[5] = b[o + 6]
            self._glow_to(g, b[o + 7] | (b[o + 8] << 8), now)
        elif t == T_SET_POSE:
            self.melt = b[o]
            self._pose_to(b[o], b[o + 1] | (b[o + 2] << 8), b[o + 3], now)
        elif t == T_SHOW_TEXT:
            self.face = b[o]
            d = b[o + 1] | (b[o + 2] << 8)
            tl = b[o + 3]
            self.text = str(bytes(b[o + 4 : o + 4 + tl]), "utf-8") if tl else None
            self.text_timed = bool(d and tl)
            self.text_until = time.ticks_add(now, d)
        elif t == T_SET_BRIGHTNESS:
            self.brightness = self._bright = b[o]
        elif t == T_SLEEP:
            self.asleep = bool(b[o])
            self._sleep_fade(0 if self.asleep else 255, b[o + 1] | (b[o + 2] << 8), now)
        elif t == T_PLAY_ANIMATION:
            a = b[o]
            self._anim = a
            self._anim_left = b[o + 1]  # 0: until replaced
            self._anim_step = _ANIM_STEP_MS * 100 // b[o + 2] or 1
            self._anim_t0 = now
            if not a:
                self._anim_servo = self._anim_light = 128
        elif t == T_TONE:
            f = b[o] | (b[o + 1] << 8)
            d = b[o + 2] | (b[o + 3] << 8)
            self.hw.buzz(f, b[o + 4])
            self._tone_on = bool(f)
            self._tone_until = time.ticks_add(now, d)

    def session(self, on, now):
        """A session started (show what the host set) or ended (§5.2: the sleepy idle look)."""
        self.session_on = on
        if on:
            self._glow_to(self.glow, _RESUME_MS, now)
            self._pose_to(self.melt, _RESUME_MS, 1, now)
            self._bright = self.brightness
            self._sleep_fade(0 if self.asleep else 255, _RESUME_MS, now)
        else:
            self._glow_to(_IDLE_GLOW, _IDLE_FADE_MS, now)
            self._pose_to(_IDLE_MELT, _IDLE_EASE_MS, 1, now)
            self._bright = _IDLE_BRIGHTNESS
            self._sleep_fade(255, _IDLE_FADE_MS, now)
            self._anim = 0
            self._anim_servo = self._anim_light = 128
            if self._tone_on:
                self.hw.buzz(0, 0)
                self._tone_on = False

    def note(self, what, value):
        self.hw.note(what, value)

    def status(self):
        """STATUS flags (bit 0 asleep) and where the servo is now."""
        return (1 if self.asleep else 0), self.melt_now

    def _glow_to(self, g, fade_ms, now):
        self._current(now)
        f = self._from
        for i in range(4):
            f[i] = self._cur[i]
            self._to[i] = g[i]
        self._to[4] = g[4]
        self._to[5] = g[5]
        self._t0 = now
        self._fade_ms = fade_ms

    def _pose_to(self, melt, ease_ms, easing, now):
        self._m_from = self.melt_now
        self._m_to = melt
        self._m_t0 = now
        self._m_ms = ease_ms
        self._m_easing = easing

    def _sleep_fade(self, level, ms, now):
        self._sleep_from = self._sleep_now
        self._sleep_to = level
        self._sleep_t0 = now
        self._sleep_ms = ms

    # ------------------------------------------------------------------ rendering

    def _current(self, now):
        # the glow's colour and intensity now, before pulse and brightness, into self._cur
        el = time.ticks_diff(now, self._t0)
        cur = self._cur
        if el >= self._fade_ms:
            for i in range(4):
                cur[i] = self._to[i]
            return
        p = (el << 10) // self._fade_ms
        for i in range(4):
            a = self._from[i]
            cur[i] = a + (((self._to[i] - a) * p) >> 10)

    def render(self, now):
        """Refresh the outputs (at most every 20 ms); timers for bubble, tone, animation."""
        if time.ticks_diff(now, self._last_frame) < _FRAME_MS:
            return
        self._last_frame = now
        hw = self.hw
        if self._tone_on and time.ticks_diff(now, self._tone_until) >= 0:
            self._tone_on = False
            hw.buzz(0, 0)
        if self._anim:
            self._animate(now)
        # glow: fade, pulse, animation light, sleep fade, master brightness
        self._current(now)
        cur = self._cur
        inten = cur[3]
        period = self._to[4]
        if period:
            phase = (time.ticks_diff(now, self._t0) % period) * 32 // period
            inten = inten * (255 - (self._to[5] * _BREATH[phase] // 255)) // 255
        if self._anim_light != 128:
            inten = inten * self._anim_light >> 7
            inten = inten if inten < 255 else 255
        el = time.ticks_diff(now, self._sleep_t0)
        if el >= self._sleep_ms:
            s = self._sleep_to
        else:
            a = self._sleep_from
            s = a + (self._sleep_to - a) * el // self._sleep_ms
        self._sleep_now = s
        scale = inten * self._bright * s // 65025  # 0..255
        r = cur[0] * scale // 255
        g = cur[1] * scale // 255
        bl = cur[2] * scale // 255
        rgb = (r << 16) | (g << 8) | bl
        if rgb != self._shown_leds:
            self._shown_leds = rgb
            hw.leds(r, g, bl)
        # pose: easing plus the animation's offset
        el = time.ticks_diff(now, self._m_t0)
        if el >= self._m_ms:
            m = self._m_to
        else:
            m = (
                self._m_from
                + (self._m_to - self._m_from)
                * _ease(self._m_easing, (el << 10) // self._m_ms)
                // 1024
            )
        self.melt_now = m
        m += self._anim_servo - 128
        m = 0 if m < 0 else (255 if m > 255 else m)
        if m != self._shown_melt:
            self._shown_melt = m
            if hw.has_servo:
                hw.servo(m)
        # face and bubble
        if not self.session_on:
            face, text = FACE_SLEEPY, None
        elif self.asleep and self._sleep_now == 0:
            face, text = -1, None
        else:
            face, text = self.face, self.text
            if self.text_timed and time.ticks_diff(now, self.text_until) >= 0:
                text = self.text = None
                self.text_timed = False
        if face != self._shown_face or text is not self._shown_text:
            self._shown_face = face
            self._shown_text = text
            if hw.has_display:
                hw.display(face, text)

    def _animate(self, now):
        a = self._anim
        steps = _ANIM_SERVO[a]
        k = time.ticks_diff(now, self._anim_t0) // self._anim_step
        if k >= len(steps):
            if self._anim_left != 1:  # 0 loops until replaced
                if self._anim_left:
                    self._anim_left -= 1
                self._anim_t0 = now
                k = 0
            else:
                self._anim = 0
                self._anim_servo = self._anim_light = 128
                return
        self._anim_servo = steps[k]
        self._anim_light = _ANIM_LIGHT[a][k]


# ---------------------------------------------------------------------- the button (§4.2)

SHORT_PRESS = const(1)
LONG_PRESS = const(2)
DOUBLE_PRESS = const(3)
DEBOUNCE_MS = const(30)
LONG_MS = const(700)
DOUBLE_GAP_MS = const(300)


class Gestures:
    """Debounced button edges -> SHORT/LONG/DOUBLE presses. feed(pressed, now) with the raw
    level every few ms; it returns 0 or a gesture kind, its hold time in self.held_ms."""

    def __init__(self):
        self._raw = False
        self._raw_since = 0
        self._down = False
        self._down_at = 0
        self._first_held = -1  # a short press waiting to see whether a second one follows
        self._first_up = 0
        self.held_ms = 0

    def feed(self, pressed, now):
        if pressed != self._raw:
            self._raw = pressed
            self._raw_since = now
        elif pressed != self._down and time.ticks_diff(now, self._raw_since) >= DEBOUNCE_MS:
            self._down = pressed
            at = self._raw_since  # the edge, not the end of the debounce
            if pressed:
                self._down_at = at
            else:
                held = time.ticks_diff(at, self._down_at)
                if held >= LONG_MS:
                    self._first_held = -1
                    self.held_ms = held
                    return LONG_PRESS
                if self._first_held >= 0:
                    self._first_held = -1
                    self.held_ms = held
                    return DOUBLE_PRESS
                self._first_held = held
                self._first_up = at
                return 0
        if (
            self._first_held >= 0
            and not self._down
            and not self._raw
            and time.ticks_diff(now, self._first_up) >= DOUBLE_GAP_MS
        ):
            self.held_ms = self._first_held
            self._first_held = -1
            return SHORT_PRESS
        return 0
