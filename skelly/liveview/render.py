"""The live view as rich renderables, from a :class:`ViewModel` and the event time ``now``.

Colours are given as RGB; rich downgrades them to what the terminal has (truecolor, 256, 16 or
none), and every colour also has words next to it (the glow's hex, the state's name), so the view
reads the same without colour.  :func:`view_key` says when a re-render would draw something new.
"""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.style import Style
from rich.table import Table
from rich.text import Text

from bus.messages import FocusState
from firmware_bridge.core.messages import Face
from modules.figurine.look import STATE_LOOKS
from skelly.liveview.model import ViewModel

TIMELINE_CELLS = 60
KEYS_HELP = "s short press · l long press · d double press · q quit"
_UNKNOWN = Style(color="grey50")

# eye and mouth (one cell each) of each face on the MCU's display
_FACES: dict[Face, tuple[str, str]] = {
    Face.NEUTRAL: ("o", "-"),
    Face.HAPPY: ("^", "‿"),
    Face.SLEEPY: ("-", "_"),
    Face.FOCUSED: ("•", "-"),
    Face.CONCERNED: ("°", "~"),
    Face.CELEBRATE: ("*", "‿"),
    Face.MELTED: ("x", "~"),
    Face.SURPRISED: ("O", "o"),
}
_WIDTH = 13

# the skeleton at four melt levels (MCU melt 0-255), 7 lines of 13 cells; E an eye, M the mouth
_POSES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        50,
        (
            "    .---.    ",
            "   ( E E )   ",
            "   (  M  )   ",
            "    '-+-'    ",
            "   /--|--\\   ",
            "      |      ",
            "     / \\     ",
        ),
    ),
    (
        110,
        (
            "             ",
            "     .---.   ",
            "    ( E E )  ",
            "    (  M  )  ",
            "   _/'-+-'\\_ ",
            "    \\__|__/  ",
            "     _/ \\_   ",
        ),
    ),
    (
        180,
        (
            "             ",
            "             ",
            "   .-----.   ",
            "  (  E E  )  ",
            "  (~~ M ~~)  ",
            " ~\\~~~|~~~/~ ",
            "~~~~~~~~~~~~~",
        ),
    ),
    (
        256,
        (
            "             ",
            "             ",
            "             ",
            "             ",
            "    .---.    ",
            "  ~~(EME)~~  ",
            "~~~~~~~~~~~~~",
        ),
    ),
)
_POSE_NAMES = ("upright", "slouching", "melting", "a puddle")


# each state's block in the timeline: a colour, and a texture that tells them apart without one
BLOCKS: dict[FocusState, str] = {
    FocusState.FLOW: "█",
    FocusState.HYPERFOCUS: "▓",
    FocusState.NEUTRAL: "▒",
    FocusState.TRANSITIONING: "░",
    FocusState.DISTRACTED: "▚",
    FocusState.IDLE: "▁",
}


def state_style(state: FocusState | None) -> Style:
    if state is None:
        return _UNKNOWN
    r, g, b = STATE_LOOKS[state].rgb
    return Style(color=f"rgb({r},{g},{b})")


def figure_lines(melt: int, face: Face, *, asleep: bool = False) -> list[str]:
    """The skeleton drawn for an MCU melt (0 upright … 255 puddle) and face."""
    eyes, mouth = _FACES.get(face, _FACES[Face.NEUTRAL])
    if asleep:
        eyes, mouth = "-", "z"
    art = next(lines for limit, lines in _POSES if melt < limit)
    return [line.replace("E", eyes).replace("M", mouth).ljust(_WIDTH) for line in art]


def pose_name(melt: int) -> str:
    return next(n for (limit, _), n in zip(_POSES, _POSE_NAMES, strict=True) if melt < limit)


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:02.0f} min"


def _clock(now: float) -> str:
    return time.strftime("%H:%M", time.localtime(now)) if now > 0 else "--:--"


def view_key(model: ViewModel, now: float, cells: int = TIMELINE_CELLS) -> tuple[object, ...]:
    """Everything that changes the drawing: a re-render with the same key draws the same."""
    tis = model.time_in_state(now)
    return (
        model.version,
        _clock(now),
        None if tis is None else _minutes(tis),
        int(now // (model.timeline_s / cells)),
    )


def _figure(model: ViewModel) -> RenderableType:
    look = model.look
    if look is None:
        return Text("\n".join(figure_lines(0, Face.SLEEPY)), style="grey50")
    g = look.glow
    lit = max(g.r, g.g, g.b) >= 40 and g.intensity > 0 and not look.sleep.asleep
    style = Style(color=f"rgb({g.r},{g.g},{g.b})", bold=True) if lit else Style(color="grey50")
    lines = figure_lines(look.pose.melt, look.text.face, asleep=look.sleep.asleep)
    return Text("\n".join(lines), style=style, no_wrap=True)


def _glow(model: ViewModel) -> Text:
    look = model.look
    text = Text("glow  ")
    if look is None:
        return text.append("no figurine yet", style="grey50")
    g = look.glow
    text.append("      ", style=Style(bgcolor=f"rgb({g.r},{g.g},{g.b})"))
    text.append(f" #{g.r:02x}{g.g:02x}{g.b:02x}")
    level = round(g.intensity * 100 / 255)
    filled = round(g.intensity * 5 / 255)
    text.append(f"  {'▮' * filled}{'▯' * (5 - filled)} {level}%")
    if g.pulse_ms:
        text.append(f"  breathing {g.pulse_ms / 1000:g} s")
    if look.sleep.asleep:
        text.append("  asleep", style="grey50")
    return text


def _bubble(model: ViewModel) -> RenderableType:
    look = model.look
    face = look.text.face.name.lower() if look is not None else "-"
    said = look.text.text if look is not None else ""
    melt = look.pose.melt if look is not None else 0
    body = Text(f"“{said}”" if said else "…", style="bold" if said else "grey50")
    return Panel(
        body,
        title=f"face {face}",
        subtitle=f"{pose_name(melt)} (melt {round(melt * 100 / 255)}%)",
        width=28,
        padding=(0, 1),
    )


def _status(model: ViewModel, now: float) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="grey62", no_wrap=True)
    grid.add_column(no_wrap=True)
    state = model.state
    tis = model.time_in_state(now)
    state_text = Text(
        state.value if state else "waiting", style=state_style(state) + Style(bold=True)
    )
    if tis is not None:
        state_text.append(f"  for {_minutes(tis)}", style="default")
    grid.add_row("focus", state_text)
    if state is not None:
        grid.add_row("", Text(f"confidence {model.confidence:.2f}", style="grey62"))
    coins = "-" if model.coins is None else str(model.coins)
    streak = "-" if model.streak is None else f"{model.streak} day{'s' * (model.streak != 1)}"
    grid.add_row("coins", Text(f"{coins}   streak {streak}", style="yellow"))
    links = Text()
    for name, label in (("host", "host"), ("mcu", "MCU")):
        up, _detail = model.links.get(name, (False, ""))
        known = name in model.links
        word = ("up" if up else "down") if known else "not yet"
        links.append("● ", style="green" if up else ("red" if known else "grey50"))
        links.append(f"{label} {word}   ")
    grid.add_row("links", links)
    mode = "quiet hours" if model.quiet else ""
    if model.snoozed_until:
        mode = (mode + ", " if mode else "") + "snoozed"
    if mode:
        grid.add_row("mode", Text(mode, style="magenta"))
    return grid


def _timeline(model: ViewModel, now: float, cells: int) -> RenderableType:
    cells_text = Text()
    for state in model.timeline(now, cells):
        cells_text.append(BLOCKS[state] if state else "·", style=state_style(state))
    legend = Text()
    for state in FocusState:
        legend.append(BLOCKS[state] + " ", style=state_style(state))
        legend.append(f"{state.value.lower()}  ")
    minutes = model.timeline_s / 60
    title = Text(f"last {minutes:g} min  ", style="grey62")
    return Group(title + cells_text, legend)


def _events(model: ViewModel) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="grey62", no_wrap=True, min_width=12)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    iv = model.intervention
    if iv is None:
        grid.add_row("intervention", Text("none yet", style="grey50"))
    else:
        said = Text(f"{iv.kind} after {_minutes(iv.time_in_state_s)} {iv.state.value}")
        if iv.response:
            said.append(f" → {iv.response}", style="bold")
        grid.add_row("intervention", said)
    press = model.press
    pressed = (
        Text(f"{press.gesture} press ({press.origin}) at {_clock(press.at)}")
        if press
        else Text("none yet", style="grey50")
    )
    grid.add_row("button", pressed)
    if model.pins:
        grid.add_row("pins", Text(model.pins.removeprefix("gpio: "), style="grey62"))
    for line in model.log:
        grid.add_row("", Text(line, style="grey62"))
    return grid


def render(
    model: ViewModel, now: float, *, title: str = "skelly sim", cells: int = TIMELINE_CELLS
) -> RenderableType:
    """The whole view at event time ``now``."""
    top = Table.grid(padding=(0, 1))
    top.add_column(no_wrap=True)
    top.add_column()
    top.add_column()
    top.add_row(_figure(model), _bubble(model), _status(model, now))
    body = Group(
        top, _glow(model), Text(""), _timeline(model, now, cells), Text(""), _events(model)
    )
    return Panel(
        body,
        title=f"{title} · {_clock(now)}",
        title_align="left",
        subtitle=KEYS_HELP,
        subtitle_align="left",
        border_style="grey50",
    )
