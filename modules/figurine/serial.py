"""Serial back end: the look as ``firmware_bridge`` command slots on the MCU link.

Writes go through :meth:`SerialLink.command` into ``HostProtocol``'s slots, which keep only the
newest value per slot and re-send the full state after a reconnect or an MCU reset; this back end
adds what the link does not know: only changed values, glow/text ≤ ``led_max_hz``, pose ≤
``servo_max_hz``, and one animation and one tone per overlay start.
"""

from __future__ import annotations

from firmware_bridge.core.messages import (
    Animation,
    Face,
    Message,
    PlayAnimation,
    SetGlow,
    SetPose,
    ShowText,
    Tone,
)
from firmware_bridge.core.protocol import unit_to_u8
from firmware_bridge.link import SerialLink
from modules.figurine.backends import RateCap, earliest
from modules.figurine.config import FigurineConfig
from modules.figurine.look import DEFAULT_TONE, TONES, Look

FADE_MS = 500
EASE_MS = 1000
PULSE_DEPTH = 77  # 0.3 of 255
MAX_TEXT = 160


class SerialBackend:
    name = "serial"

    def __init__(self, config: FigurineConfig, link: SerialLink) -> None:
        self.link = link
        self._glow: RateCap[Message] = RateCap(config.led_max_hz)
        self._text: RateCap[Message] = RateCap(config.led_max_hz)
        self._pose: RateCap[Message] = RateCap(config.servo_max_hz)
        self._cue = 0

    def apply(self, look: Look, now: float) -> float | None:
        r, g, b = look.rgb
        pulse_ms = round(look.pulse_s * 1000)
        glow = SetGlow(
            r,
            g,
            b,
            unit_to_u8("intensity", max(0.0, min(1.0, look.intensity))),
            pulse_ms,
            PULSE_DEPTH if pulse_ms else 0,
            FADE_MS,
        )
        face = Face[look.face.upper()] if look.face.upper() in Face.__members__ else Face.NEUTRAL
        text = ShowText(face, look.text[:MAX_TEXT])
        pose = SetPose(max(0, min(255, round(look.melt * 255 / 100))), EASE_MS)
        sent = False
        retry: list[float | None] = []
        for cap, msg in ((self._glow, glow), (self._text, text), (self._pose, pose)):
            write, at = cap.offer(msg, now)
            retry.append(at)
            if write:
                self.link.command(msg)
                sent = True
        if look.cue_serial > self._cue:
            self._cue = look.cue_serial
            if look.animation and look.animation.upper() in Animation.__members__:
                self.link.command(PlayAnimation(Animation[look.animation.upper()]))
                sent = True
            if look.sound:
                hz, seconds = TONES.get(look.sound, DEFAULT_TONE)
                self.link.command(Tone(round(hz), round(seconds * 1000), 128))
                sent = True
        if sent:
            self.link.wakeup()
        return earliest(*retry)

    def close(self) -> None:
        """The link is closed by the module (it also serves the debug socket)."""
