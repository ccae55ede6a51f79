"""``[gamification]``: every number of docs/COMPANION.md, with its default."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GamificationConfig:
    enabled: bool = True
    """False: the module registers and publishes CompanionMode, but decides nothing."""
    timezone: str = ""
    """IANA name (``Europe/Berlin``) for quiet hours, "today" and streaks; "" = the Pi's own
    local time zone (``/etc/localtime``)."""
    quiet_start: str = "22:00"
    """Local wall time at which quiet hours begin (HH:MM)."""
    quiet_end: str = "08:00"
    """Local wall time at which quiet hours end; start > end spans midnight; equal = none."""
    snooze_min: float = 30.0
    """A long press on the figurine snoozes interventions this long."""

    flow_protect_confidence: float = 0.8
    """FLOW at or above this confidence is never interrupted."""
    break_after_min: float = 90.0
    """HYPERFOCUS is never interrupted before this; at it a break suggestion is guaranteed."""
    nudge_after_min: float = 10.0
    """DISTRACTED this long (blip-tolerant time in state) earns a gentle nudge."""
    recovery_min_distracted_min: float = 5.0
    """A distraction must have lasted this long for coming back to count as a recovery."""
    recovery_within_min: float = 10.0
    """Coming back (FLOW, HYPERFOCUS or NEUTRAL) must happen this soon after the distraction."""

    global_cooldown_min: float = 15.0
    """Between two interventions of any kind (from delivery; a break is exempt)."""
    max_per_hour: int = 3
    """Interventions delivered in any rolling 60 minutes (every kind, breaks included)."""
    break_cooldown_min: tuple[float, float, float] = (30.0, 30.0, 60.0)
    """Per-type cooldown (start, lower bound, upper bound), minutes, from delivery."""
    nudge_cooldown_min: tuple[float, float, float] = (30.0, 20.0, 90.0)
    recovery_cooldown_min: tuple[float, float, float] = (30.0, 15.0, 120.0)
    dismissed_factor: float = 1.5
    """A quick dismiss multiplies that kind's cooldown by this (up to its upper bound)."""
    ignored_factor: float = 1.25
    engaged_factor: float = 0.8
    """An engaged response multiplies that kind's cooldown by this (down to its lower bound)."""
    delivery_timeout_s: float = 60.0
    """A request with no 'delivered' by then counts as delivered at request time."""
    host_stale_min: float = 5.0
    """A host with no analysis for this long no longer protects (or triggers) anything."""

    focus_block_min: float = 15.0
    """Focus coins for every full block of this many minutes of FLOW/HYPERFOCUS in one run."""
    focus_coins: int = 5
    recovery_coins: int = 3
    milestones_min: tuple[float, ...] = (30.0, 60.0, 120.0, 180.0)
    """Daily focus milestones (minutes of FLOW/HYPERFOCUS in one local day), each granted once."""
    milestone_coins: int = 10
    streak_min_focus_min: float = 30.0
    """A local day counts toward the streak once it has this much focus."""
    streak_coins: int = 5
    """Coins for a streak day: this × min(streak length, 7)."""
    celebrate_gap_min: float = 10.0
    """At most one celebration (milestone, streak) shown per this many minutes."""
    celebrate_keep_min: float = 120.0
    """A celebration held back (focus, quiet hours, snooze) is dropped after this long."""
    store_key: str = "gamification"
    """Key of the persisted progress in Storage's state."""

    def __post_init__(self) -> None:
        for name in ("quiet_start", "quiet_end"):
            parse_hhmm(getattr(self, name), name)
        for name in ("break_cooldown_min", "nudge_cooldown_min", "recovery_cooldown_min"):
            start, low, high = getattr(self, name)
            if not 0 <= low <= start <= high:
                raise ValueError(f"{name} must be (start, low, high) with low <= start <= high")
        if self.max_per_hour < 1:
            raise ValueError("max_per_hour must be >= 1")
        if not 0 < self.engaged_factor <= 1 <= self.dismissed_factor:
            raise ValueError("engaged_factor must be in (0, 1] and dismissed_factor >= 1")
        if self.focus_block_min <= 0 or self.snooze_min <= 0:
            raise ValueError("focus_block_min and snooze_min must be > 0")

    def cooldown_bounds(self, kind: str) -> tuple[float, float, float]:
        """(start, low, high) in seconds for an intervention kind."""
        start, low, high = getattr(self, f"{kind}_cooldown_min")
        return start * 60.0, low * 60.0, high * 60.0


def parse_hhmm(text: str, name: str = "time") -> int:
    """Minutes after midnight of ``HH:MM``; ValueError naming ``name`` otherwise."""
    try:
        hh, mm = text.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        raise ValueError(f"{name} must be HH:MM, got {text!r}") from None
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{name} must be HH:MM between 00:00 and 23:59, got {text!r}")
    return h * 60 + m
