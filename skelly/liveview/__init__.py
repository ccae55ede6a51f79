"""``skelly sim``'s live view: the figurine and the service at a glance, on rich's ``Live``.

* :mod:`skelly.liveview.model` — :class:`ViewModel`, plain values fed from the bus and the
  simulated MCU;
* :mod:`skelly.liveview.render` — the view as rich renderables from the model and the event
  time (tested on a recording console);
* :class:`LiveView` — redraws on a :class:`rich.live.Live` a few times a second, and only when
  the drawing would change (:func:`~skelly.liveview.render.view_key`);
* :func:`single_keys` — the terminal in cbreak mode for single key presses, restored on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.live import Live

from bus import Bus, Envelope
from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    CompanionMode,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    RewardEvent,
    StateChange,
    UserInput,
)
from skelly.liveview.model import ViewModel
from skelly.liveview.render import KEYS_HELP, render, view_key

__all__ = ["KEYS_HELP", "LiveView", "ViewModel", "render", "single_keys", "view_key"]

FPS = 8.0
SHOWN = (
    StateChange,
    AnalysisComplete,
    LinkStatus,
    RewardEvent,
    InterventionRequest,
    InterventionResponse,
    UserInput,
    AnimationCommand,
    CompanionMode,
)


class LiveView:
    """Draws ``model`` at event time ``now()`` on ``console`` until cancelled."""

    def __init__(
        self,
        model: ViewModel,
        now: Callable[[], float],
        console: Console | None = None,
        *,
        title: str = "skelly sim",
        fps: float = FPS,
    ) -> None:
        self.model = model
        self.now = now
        self.console = console or Console()
        self.title = title
        self.fps = fps
        self.checks = 0
        """How often the loop looked for something new to draw."""
        self.renders = 0
        """How often it drew."""

    def attach(self, bus: Bus) -> None:
        def on_message(env: Envelope) -> None:
            self.model.on_message(env.payload)

        bus.subscribe(on_message, types=SHOWN, name="sim.liveview")

    async def run(self) -> None:
        """Redraw at most ``fps`` times a second, and only when the drawing changed.

        The alternate screen (as ``top`` uses) keeps the view in place; stray writes to stdout
        or stderr, and the log lines of handlers writing to stderr, are printed through rich
        instead of tearing the view."""
        shown: tuple[object, ...] | None = None
        stderr = sys.stderr
        with (
            Live(
                console=self.console,
                screen=True,
                auto_refresh=False,
                redirect_stdout=True,
                redirect_stderr=True,
            ) as live,
            _logs_to(stderr, sys.stderr),
        ):
            while True:
                self.checks += 1
                now = self.now()
                key = view_key(self.model, now)
                if key != shown:
                    shown = key
                    live.update(render(self.model, now, title=self.title), refresh=True)
                    self.renders += 1
                await asyncio.sleep(1.0 / self.fps)


@contextlib.contextmanager
def _logs_to(old: object, new: object) -> Iterator[None]:
    """Point the logging handlers that write to ``old`` at ``new`` while inside."""
    moved = [
        h
        for h in logging.getLogger().handlers
        if type(h) is logging.StreamHandler and h.stream is old and new is not old
    ]
    for handler in moved:
        handler.setStream(new)
    try:
        yield
    finally:
        for handler in moved:
            handler.setStream(old)


@contextlib.contextmanager
def single_keys(fd: int) -> Iterator[None]:
    """Key presses arrive one at a time, unechoed, while inside; the terminal's settings are
    restored on the way out (also after Ctrl-C or an error).  cbreak, not raw: Ctrl-C still
    sends SIGINT, so the service's orderly shutdown handles it as everywhere else."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_keys(
    loop: asyncio.AbstractEventLoop, fd: int, on_key: Callable[[str], None]
) -> Callable[[], None]:
    """Call ``on_key`` on the loop for each key typed on ``fd``; returns the undo."""

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the terminal went away
            loop.remove_reader(fd)
            return
        for char in data.decode(errors="replace"):
            on_key(char)

    loop.add_reader(fd, readable)

    def undo() -> None:
        loop.remove_reader(fd)

    return undo
