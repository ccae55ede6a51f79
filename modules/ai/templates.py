"""The template bank: one personality, every message ≤ 150 characters once filled in.

Skelly is a small melty skeleton on the desk: chill, warm, on the user's side, talks like a
friend who noticed rather than a coach who judges.  Never clinical, never "you should".
Skeleton puns are rare: they are marked (``pun=True``) and the writer shows one at most once in
every ``pun_every`` messages.  Variables: ``{minutes}`` (whole minutes of the state or of the
distraction that ended), ``{coins}`` (the reward just earned), ``{total}`` (coins so far),
``{days}`` (streak length).  tests/unit/test_ai.py runs every template through the tone filter
with the longest values the variables can take.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    pun: bool = False


@dataclass(frozen=True, slots=True)
class Cue:
    """The figurine's part of a message (AnimationCommand fields)."""

    name: str
    duration_s: float
    glow: tuple[int, int, int]
    melt: int
    sound: str | None


CUES: dict[str, Cue] = {
    # warm amber, a little slump, no sound: a nudge is the gentlest thing the companion does
    "nudge": Cue("nudge", 20.0, (255, 170, 90), 30, None),
    # soft sky blue, upright, one chime: stretch time
    "break": Cue("break", 30.0, (120, 200, 255), 10, "chime"),
    # teal glow of flow, upright, a small chirp
    "recovery": Cue("recovery", 12.0, (0, 200, 160), 0, "chirp"),
    # gold, upright, sparkle: a reward moment (not an intervention)
    "celebrate": Cue("celebrate", 6.0, (255, 210, 60), 0, "sparkle"),
}

T = Template
BANK: dict[str, tuple[Template, ...]] = {
    "nudge": (
        T("Tabs have been hopping for {minutes} min. Want to pick one thing for a while?"),
        T("Lots of switching lately. Fancy a slow breath and one small next step?"),
        T("Your brain's been channel-surfing for {minutes} min. Which one thing matters most?"),
        T("Little check-in: {minutes} min of bouncing around. Want to park the rest and pick one?"),
        T("Mind wandering? Happens to every skull. What's the tiniest next step on your thing?"),
        T("I'm melting a bit watching all those hops. Want to land somewhere together?", pun=True),
        T("Psst. {minutes} min of scattered. A sip of water and one small task might feel good."),
        T("Scattered spell going on. Close a tab or two and see what's left?"),
    ),
    "break": (
        T("{minutes} min of deep focus, wow. Time to stretch, sip some water and rest those eyes?"),
        T("Locked in for {minutes} min. A few minutes away would do your shoulders good."),
        T("Deep dive at {minutes} min. Come up for air: stand, stretch, look out a window?"),
        T("Big focus run! How about a short break? Your work will still be here, promise."),
        T("Even my bones need a stretch after {minutes} min. Join me for a quick one?", pun=True),
        T("{minutes} min in the zone. A glass of water and a little walk could feel lovely."),
        T("Impressive stretch of focus. Let's give your eyes and back a few minutes off."),
    ),
    "recovery": (
        T("Welcome back! Finding your thread after {minutes} min away is a real win."),
        T("Nice, you're back on it. That took some steering, and you did it."),
        T("Back in the groove. Skelly noticed, and Skelly is proud."),
        T("There you are! Picking it back up is the hard part, and it's done."),
        T("Good comeback. Let's ride this one gently."),
        T("You found your way back. That deserves a little glow."),
        T("Back to it after a wander. I'm tickled, right down to the funny bone.", pun=True),
    ),
    "celebrate": (
        T("+{coins} coins! You're at {total}. Lovely work."),
        T("A little treasure: +{coins} coins, {total} in the chest."),
        T("Coins for you: +{coins}. That's {total} now. Nice going."),
        T("Shiny! +{coins} coins, {total} total."),
        T("+{coins} coins. I'm glowing on your behalf. {total} so far."),
    ),
    "milestone": (
        T("{minutes} min of focus today! +{coins} coins, {total} in total."),
        T("Milestone: {minutes} focused minutes today. Have {coins} coins, you earned them."),
        T("Today's focus passed {minutes} min. That's worth {coins} coins and a happy wiggle."),
        T("Look at that, {minutes} min of focus today. +{coins} coins for the collection."),
        T("{minutes} focused min today. I'm grinning ear to ear, if I had ears.", pun=True),
    ),
    "streak": (
        T("Day {days} of the streak! +{coins} coins. Steady and kind, that's the way."),
        T("{days} days in a row with good focus. +{coins} coins, {total} total."),
        T("Streak: {days} days. Have {coins} coins and a warm glow."),
        T("Another focus day counted: {days} in a row. +{coins} coins."),
        T("{days}-day streak! I'd do a happy dance but my knees are jelly.", pun=True),
    ),
}
"""Templates per cue (``celebrate`` has three banks: plain coins, milestone, streak)."""

MAX_VALUES = {"minutes": 9999, "coins": 99999, "total": 9999999, "days": 9999}
"""The longest values the variables take (tests fill them in to check the length)."""
