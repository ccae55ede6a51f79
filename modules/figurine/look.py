"""What the figurine shows at one instant (:class:`Look`) and the base look of each state.

Pure values: no I/O, no clock.  ``docs/FIGURINE.md`` §1-§2 has the same tables in words.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.messages import FocusState


@dataclass(frozen=True, slots=True)
class Look:
    """One desired look.  ``melt`` 0 (upright) … 100 (puddle); ``intensity`` and ``eyes`` 0 … 1;
    ``pulse_s`` 0 = steady glow.  ``cue`` names the one-shots (animation and sound) of the overlay
    that is showing, with ``cue_serial`` incremented each time one starts, so a back end plays
    them once per start and never again for the same look."""

    rgb: tuple[int, int, int]
    intensity: float
    pulse_s: float
    melt: int
    eyes: float
    face: str
    mood: str
    text: str = ""
    animation: str = ""
    sound: str = ""
    cue_serial: int = 0


@dataclass(frozen=True, slots=True)
class StateLook:
    rgb: tuple[int, int, int]
    intensity: float
    pulse_s: float
    melt: int
    eyes: float
    face: str
    mood: str
    energy_target: float


STATE_LOOKS: dict[FocusState, StateLook] = {
    FocusState.FLOW: StateLook((0, 190, 170), 0.6, 6.0, 0, 0.7, "focused", "calm", 80),
    FocusState.HYPERFOCUS: StateLook((30, 60, 160), 0.25, 0.0, 0, 0.3, "focused", "absorbed", 90),
    FocusState.NEUTRAL: StateLook((150, 130, 220), 0.5, 8.0, 10, 0.6, "neutral", "content", 60),
    FocusState.TRANSITIONING: StateLook(
        (230, 170, 60), 0.55, 4.0, 25, 0.6, "neutral", "curious", 50
    ),
    FocusState.DISTRACTED: StateLook(
        (255, 120, 40), 0.6, 3.0, 40, 0.5, "concerned", "restless", 40
    ),
    FocusState.IDLE: StateLook((70, 40, 110), 0.15, 10.0, 80, 0.1, "sleepy", "sleepy", 15),
}
SLEEPY = StateLook((60, 40, 120), 0.10, 10.0, 90, 0.05, "sleepy", "sleepy", 10)

DISTRACTED_MELT_PER_MIN = 4.0
DISTRACTED_MELT_MAX = 80
ENERGY_STEP = 0.2
"""Each analysis window moves energy this fraction of the way to the state's target."""


def energy_factor(energy: float) -> float:
    """How energy scales the base glow and the eyes: 0.6 at 0 … 1.0 at 100."""
    return 0.6 + 0.4 * max(0.0, min(100.0, energy)) / 100.0


def base_melt(state: FocusState, time_in_state_s: float) -> int:
    melt = STATE_LOOKS[state].melt
    if state is FocusState.DISTRACTED:
        rising = melt + DISTRACTED_MELT_PER_MIN * max(0.0, time_in_state_s) / 60.0
        return int(min(DISTRACTED_MELT_MAX, rising))
    return melt


TONES: dict[str, tuple[float, float]] = {
    # sound name -> (Hz within TonalBuzzer's default A3..A5 range, seconds)
    "chime": (880.0, 0.2),
    "soft": (440.0, 0.15),
    "celebrate": (660.0, 0.3),
}
DEFAULT_TONE = (523.0, 0.2)
