"""The live view of `skelly sim` as a person sees it: rendered on rich's recording Console from a
given model, asserting on the words and on the colours of what is drawn (truecolor, the 256-colour
fallback, and no colour at all)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.segment import Segment

from bus.messages import (
    AnalysisComplete,
    FocusState,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    RewardEvent,
    StateChange,
    UserInput,
)
from firmware_bridge.core.messages import Face, SetGlow, SetPose, ShowText, Sleep
from firmware_bridge.core.protocol import FigurineState
from modules.figurine.look import STATE_LOOKS
from skelly.liveview import LiveView, ViewModel, render, view_key
from skelly.liveview.render import BLOCKS, figure_lines

Run = Callable[[Coroutine[Any, Any, Any]], Any]
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_764_000_000.0  # event time of the first window
ORANGE = (255, 120, 40)
TEAL = STATE_LOOKS[FocusState.FLOW].rgb


def _model() -> ViewModel:
    """20 minutes of FLOW, then DISTRACTED for 10 minutes, an answered nudge, a double press."""
    m = ViewModel()
    m.on_message(LinkStatus("host", True, "laptop"))
    m.on_message(LinkStatus("mcu", False, "", "unplugged"))
    m.on_message(AnalysisComplete(T0 - 30, T0, FocusState.FLOW, 0.9, FocusState.FLOW, 0.0))
    m.on_message(StateChange(FocusState.FLOW, FocusState.DISTRACTED, 0.8, T0 + 1200, 1200.0))
    m.on_message(RewardEvent("streak", 15, 155, "3 day streak"))
    m.on_message(InterventionRequest("iv-1", "gentle_nudge", FocusState.DISTRACTED, 420.0))
    m.on_message(InterventionResponse("iv-1", "engaged", 3.0))
    m.on_message(UserInput("double", "gpio", T0 + 1700))
    m.on_look(
        FigurineState(
            glow=SetGlow(*ORANGE, intensity=153, pulse_ms=3000),
            pose=SetPose(140),
            text=ShowText(Face.CONCERNED, "Back to it?"),
        )
    )
    m.add_line("[10:20:00] focus: FLOW -> DISTRACTED")
    return m


def _console(width: int = 80) -> Console:
    return Console(record=True, force_terminal=True, color_system="truecolor", width=width)


def _segments(console: Console, model: ViewModel, now: float) -> list[Segment]:
    return list(console.render(render(model, now), console.options))


def test_the_view_says_what_happens_in_words() -> None:
    console = _console(width=80)
    console.print(render(_model(), T0 + 1800))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and len(lines) <= 24, text  # fits 80x24
    assert "DISTRACTED  for 10 min" in text  # state and time in state (10 min since the change)
    assert "confidence 0.80" in text
    assert "face concerned" in text and "“Back to it?”" in text  # face and text bubble
    assert "melting (melt 55%)" in text  # 140/255 of the way to a puddle
    assert "#ff7828" in text and "60%" in text and "breathing 3 s" in text
    assert "coins 155   streak 3 days" in text
    assert "● host up" in text and "● MCU down" in text
    assert "gentle_nudge after 7 min DISTRACTED → engaged" in text
    assert "double press (gpio)" in text
    assert "[10:20:00] focus: FLOW -> DISTRACTED" in text
    assert "s short press · l long press · d double press · q quit" in text
    # the concerned face on the melting skeleton
    assert "(  ° °  )" in text and "(~~ ~ ~~)" in text


def test_the_glow_swatch_and_the_figure_are_drawn_in_the_real_colour() -> None:
    console = _console()
    segments = _segments(console, _model(), T0 + 1800)
    swatch = [s for s in segments if s.style and s.style.bgcolor and s.text.strip() == ""]
    assert swatch and swatch[0].style is not None and swatch[0].style.bgcolor is not None
    assert swatch[0].style.bgcolor.triplet == ORANGE
    assert len(swatch[0].text) == 6
    figure = [s for s in segments if "~~~~~~~~~~~~~" in s.text]
    assert figure and figure[0].style is not None and figure[0].style.color is not None
    assert figure[0].style.color.triplet == ORANGE and figure[0].style.bold
    console.print(render(_model(), T0 + 1800))
    assert "48;2;255;120;40m      " in console.export_text(styles=True)  # on the terminal


def test_the_timeline_has_a_coloured_block_per_state() -> None:
    """The last 60 minutes in 60 cells: 30 cells before the first window (unknown), 20 of FLOW,
    10 of DISTRACTED, each in the colour the figurine glows for that state."""
    segments = _segments(_console(), _model(), T0 + 1800)
    cells = [s for s in segments if s.text in (*BLOCKS.values(), "·") and len(s.text) == 1]
    by_text: dict[str, list[Segment]] = {}
    for s in cells:
        by_text.setdefault(s.text, []).append(s)
    flow, distracted = BLOCKS[FocusState.FLOW], BLOCKS[FocusState.DISTRACTED]
    assert len(by_text[flow]) == 20 and len(by_text[distracted]) == 10
    assert len(by_text["·"]) == 30
    assert {s.style.color.triplet for s in by_text[flow] if s.style and s.style.color} == {TEAL}
    assert {s.style.color.triplet for s in by_text[distracted] if s.style and s.style.color} == {
        ORANGE
    }


def _written(colors: str | None) -> str:
    """What the terminal receives from a console of ``colors``, in a fresh interpreter as in a
    real run: rich caches a style's escape codes for the first colour system it is drawn with, so
    one process never draws the same style for two colour systems."""
    script = (
        "import io, sys\n"
        "from rich.console import Console\n"
        "from skelly.liveview import render\n"
        "from tests.unit.test_live_view import T0, _model\n"
        f"console = Console(force_terminal=True, color_system={colors!r}, width=80)\n"
        "console.print(render(_model(), T0 + 1800))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_terminal_without_truecolor_gets_the_nearest_colours_and_no_colour_gets_words() -> None:
    styled = _written("256")
    assert "48;2;" not in styled and "38;2;" not in styled
    # the swatch, downgraded to the 256-colour palette's nearest orange
    assert "\x1b[48;5;208m      \x1b[0m #ff7828" in styled
    plain = _written(None)
    assert "38;" not in plain and "48;" not in plain  # no colour at all
    assert "#ff7828" in plain and "▚ distracted" in plain  # colour and states said in words
    assert "DISTRACTED  for 10 min" in plain


def test_the_skeleton_melts_as_the_pose_melts() -> None:
    tops = []
    for melt in (0, 80, 150, 230):
        lines = figure_lines(melt, Face.HAPPY)
        assert len(lines) == 7 and {len(line) for line in lines} == {13}
        tops.append(next(i for i, line in enumerate(lines) if line.strip()))
        assert "^" in "".join(lines)
    assert tops == sorted(tops) and tops[0] < tops[-1]  # the head sinks
    assert "/ \\" in "\n".join(figure_lines(0, Face.NEUTRAL))  # legs when upright
    assert "~~~~~~~~~~~~~" in figure_lines(230, Face.MELTED)[-1]  # a puddle
    asleep = "\n".join(figure_lines(0, Face.HAPPY, asleep=True))
    assert "- -" in asleep and "^" not in asleep


def test_asleep_or_dark_figurine_is_drawn_grey() -> None:
    m = _model()
    m.on_look(FigurineState(glow=SetGlow(*ORANGE), sleep=Sleep(True)))
    console = _console()
    console.print(render(m, T0 + 1800))
    text = console.export_text()
    assert "asleep" in text
    segments = _segments(console, m, T0 + 1800)
    figure = next(s for s in segments if "/--|--\\" in s.text)
    assert figure.style is not None and figure.style.color is not None
    assert figure.style.color.name == "grey50"


def test_model_timeline_and_time_in_state() -> None:
    m = ViewModel(timeline_s=600.0)
    assert m.time_in_state(T0) is None and m.timeline(T0, 4) == [None] * 4
    m.on_message(AnalysisComplete(T0 - 30, T0, FocusState.NEUTRAL, 0.7, FocusState.NEUTRAL, 90.0))
    # the analysis's own time in state at its window, plus the time since
    assert m.time_in_state(T0 + 60) == 150.0
    for k in range(1, 200):  # many changes: only what the timeline still shows is kept
        state = FocusState.FLOW if k % 2 else FocusState.NEUTRAL
        m.on_message(StateChange(FocusState.IDLE, state, 0.9, T0 + 60 * k, 60.0))
    assert len(m.transitions) <= 12
    now = T0 + 60 * 199 + 30
    assert m.timeline(now, 10)[-1] is FocusState.FLOW  # change 199 (odd) is FLOW
    assert m.timeline(now, 10)[-2] is FocusState.NEUTRAL


def test_view_key_changes_only_when_the_drawing_does() -> None:
    m = _model()
    key = view_key(m, T0 + 1800)
    assert view_key(m, T0 + 1801) == key  # same minute, same cell: nothing new to draw
    assert view_key(m, T0 + 1800 + 60) != key  # a minute later: time in state and timeline
    m.on_message(UserInput("short", "gpio", T0 + 1800))
    assert view_key(m, T0 + 1800) != key


async def eventually(pred: Callable[[], bool], timeout: float = 60) -> None:
    """Wait for a count the view keeps (no event announces it): a slow machine waits longer."""
    async with asyncio.timeout(timeout):
        while True:
            if pred():
                return
            await asyncio.sleep(0.001)


def test_live_view_redraws_only_on_change(run: Run) -> None:
    """The loop checks many times; it draws once, then again only after the model changed."""
    console = Console(
        record=True, force_terminal=True, color_system="truecolor", width=80, height=30
    )
    model = _model()
    view = LiveView(model, lambda: T0 + 1800, console, fps=1000.0)

    async def main() -> None:
        task = asyncio.create_task(view.run())
        try:
            await eventually(lambda: view.checks >= 20)
            assert view.renders == 1
            model.add_line("[10:30:00] a new line")
            await eventually(lambda: view.renders >= 2)
            checks = view.checks
            await eventually(lambda: view.checks >= checks + 20)
            assert view.renders == 2
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(main())
    assert "a new line" in console.export_text()


def test_log_lines_go_through_the_view_not_over_it(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """A warning logged to stderr while the view is up is printed by rich, not over the view."""
    console = Console(
        record=True, force_terminal=True, color_system="truecolor", width=80, height=30
    )
    view = LiveView(_model(), lambda: T0 + 1800, console, fps=1000.0)
    handler = logging.StreamHandler()  # writes to sys.stderr, as logging.basicConfig's does
    root = logging.getLogger()
    root.addHandler(handler)

    async def main() -> None:
        task = asyncio.create_task(view.run())
        try:
            await eventually(lambda: view.renders >= 1)
            logging.getLogger("test").warning("storage: a warning while the view is up")
            await eventually(lambda: view.checks >= 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    try:
        run(main())
    finally:
        root.removeHandler(handler)
    assert "storage: a warning while the view is up" in console.export_text()
    assert "a warning" not in capsys.readouterr().err
    assert handler.stream is sys.stderr  # pointed back after the view
