"""``skelly sim``: the whole pipeline with simulated hardware and a simulated host.

Real code paths throughout: the eight modules on the bus, real SQLite in a temporary state
directory, DataCapture listening on real loopback TCP with a fresh token, a simulated host
streaming a scenario through the real ingest protocol, and the figurine link talking the real
serial protocol to a simulated MCU on a pseudo-terminal (with the debug socket for
``skelly console``).  The figurine's GPIO back end drives gpiozero's MockFactory pins (the same
device code as on a Pi); ``press short|long|double`` on standard input presses the virtual button
on the mock button pin (docs/FIGURINE.md §7).  On a terminal the run is drawn as a live view
(:mod:`skelly.liveview`: the figurine, the focus state and its timeline, coins, links, the latest
intervention) with single keys ``s``/``l``/``d`` for the button and ``q`` to quit; ``--record``
writes the captured events as the NDJSON ``skelly send`` and ``skelly replay`` take.  Event
time runs ``speed`` times faster than real time (one SimClock shared by the host, Storage's
windows and Analysis), so a work day plays in minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bus import Bus, Delivery, Envelope
from bus.messages import (
    AnalysisComplete,
    AnimationCommand,
    InterventionRequest,
    InterventionResponse,
    LinkStatus,
    RawEvent,
    RewardEvent,
    StateChange,
    UserInput,
)
from firmware_bridge.core.protocol import Event
from firmware_bridge.debug import default_socket_path
from hw_sim.clock import SimClock
from hw_sim.gpio import GESTURES, VirtualButton, describe_pins, mock_factory, trim_history
from hw_sim.host import compressed_storage_config, stream_scenario
from hw_sim.mcu import SimulatedMcu, describe
from hw_sim.scenarios import SCENARIOS, scenario
from skelly import app
from skelly.config import Config
from skelly.errors import SkellyError, require_dir
from skelly.liveview import KEYS_HELP, LiveView, ViewModel, read_keys, single_keys

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class SimOptions:
    scenario: str = "workday"
    speed: float = 60.0
    seed: int = 0
    duration: float = 0.0
    """Real seconds to run; 0 = until Ctrl-C (the scenario repeats with new seeds)."""
    state_dir: str = ""
    """Keep state here instead of a temporary directory."""
    headless: bool = False
    """No live lines while it runs (for tests and CI): the start-up lines, then a summary."""
    keys: bool = True
    """Read ``press short|long|double`` lines from standard input (the virtual button); with
    ``view`` on a terminal, single keys instead."""
    view: bool = False
    """Draw the live view on standard output (a terminal) instead of printing lines."""
    record: str = ""
    """Write the captured events to this file (NDJSON, as ``skelly send`` takes them)."""


def check_options(opts: SimOptions) -> None:
    if opts.scenario not in SCENARIOS:
        raise SkellyError(
            f"unknown scenario {opts.scenario!r}; choose one of {', '.join(sorted(SCENARIOS))}"
        )
    if not 1.0 <= opts.speed <= 600.0:
        raise SkellyError(f"--speed must be between 1 and 600 (times real time), got {opts.speed}")
    if opts.duration < 0:
        raise SkellyError(f"--duration must be 0 (until Ctrl-C) or positive, got {opts.duration}")


def _sim_config(config: Config, state_dir: Path, speed: float, mcu_path: Path) -> Config:
    return dataclasses.replace(
        config,
        data_dir=str(state_dir),
        storage=compressed_storage_config(config.storage, speed),
        ingest=dataclasses.replace(config.ingest, host="127.0.0.1", port=0, unix_path=""),
        figurine=dataclasses.replace(
            config.figurine,
            serial_enabled=True,
            gpio_enabled=True,  # on gpiozero's MockFactory pins
            serial=dataclasses.replace(config.figurine.serial, url=str(mcu_path)),
        ),
    )


class _Narrator:
    """Turns bus traffic into short lines for people (event time in brackets).

    Live, every line is said as it happens; headless, nothing is said until :meth:`summary`.
    """

    def __init__(self, clock: SimClock, say: Say, *, live: bool = True) -> None:
        self.clock = clock
        self._say = say
        self.live = live
        self.windows = 0
        self.changes: list[StateChange] = []
        self.change_stamps: list[str] = []
        self.links: dict[str, list[int]] = {}  # link -> [ups, downs, up now]
        self.looks: list[str] = []
        self.presses = 0
        self.scenarios_done = 0
        self.events_sent = 0
        self.interventions: list[str] = []
        self.responses: dict[str, int] = {}
        self.coins = 0
        self.gpio_looks: list[str] = []
        self.describe_gpio: Callable[[], str] | None = None
        self.on_gpio: Callable[[str], None] | None = None
        self.say_looks = True
        """Say each new figurine look and pin state (the live view draws them instead)."""
        self.trim_gpio: Callable[[], None] | None = None
        self._gpio_check: asyncio.TimerHandle | None = None

    def say(self, line: str) -> None:
        if self.live:
            self._say(line)

    def stamp(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.clock.now()))

    def attach(self, bus: Bus) -> None:
        bus.subscribe(self.on_state, types=StateChange, name="sim.narrator.state")
        bus.subscribe(self.on_window, types=AnalysisComplete, name="sim.narrator.window")
        bus.subscribe(self.on_link, types=LinkStatus, name="sim.narrator.link")
        bus.subscribe(self.on_input, types=UserInput, name="sim.narrator.input")
        bus.subscribe(
            self.on_companion,
            types=(InterventionRequest, InterventionResponse, RewardEvent, AnimationCommand),
            name="sim.narrator.companion",
        )

    def on_companion(self, env: Envelope) -> None:
        msg = env.payload
        if isinstance(msg, InterventionRequest):
            self.interventions.append(msg.kind)
            self.say(
                f"[{self.stamp()}] intervention: {msg.kind} after "
                f"{msg.time_in_state_s / 60:.0f} min {msg.state.value} ({msg.intervention_id})"
            )
        elif isinstance(msg, RewardEvent):
            self.coins = msg.total_coins
            self.say(
                f"[{self.stamp()}] reward: +{msg.coins} coins ({msg.kind}), {msg.total_coins} total"
            )
        elif isinstance(msg, AnimationCommand):
            self.say(f'[{self.stamp()}] figurine shows {msg.name}: "{msg.text}"')
        elif isinstance(msg, InterventionResponse):
            self.responses[msg.response] = self.responses.get(msg.response, 0) + 1
            self.say(f"[{self.stamp()}] response: {msg.response} ({msg.intervention_id})")
        self.check_gpio_soon()

    def check_gpio_soon(self) -> None:
        """Say the mock pins' look a moment after something happened (rate caps applied)."""
        if self.describe_gpio is None or self._gpio_check is not None:
            return
        self._gpio_check = asyncio.get_running_loop().call_later(0.2, self._check_gpio)

    def _check_gpio(self) -> None:
        self._gpio_check = None
        if self.describe_gpio is None:
            return
        line = self.describe_gpio()
        if self.on_gpio is not None:
            self.on_gpio(line)
        if not self.gpio_looks or line != self.gpio_looks[-1]:
            self.gpio_looks.append(line)
            if self.say_looks:
                self.say(f"[{self.stamp()}] {line}")

    def on_state(self, env: Envelope) -> None:
        change = env.payload
        assert isinstance(change, StateChange)
        self.changes.append(change)
        self.change_stamps.append(self.stamp())
        self.say(
            f"[{self.stamp()}] focus: {change.previous.value} -> {change.current.value} "
            f"(confidence {change.confidence:.2f}, after {change.previous_duration_s / 60:.1f} min)"
        )
        self.check_gpio_soon()

    def on_window(self, env: Envelope) -> None:
        self.windows += 1
        if self.trim_gpio is not None:  # the mock pins keep every state: bound that
            self.trim_gpio()

    def on_link(self, env: Envelope) -> None:
        status = env.payload
        assert isinstance(status, LinkStatus)
        counts = self.links.setdefault(status.link, [0, 0, 0])
        counts[0 if status.up else 1] += 1
        counts[2] = int(status.up)
        word = "up" if status.up else "down"
        self.say(f"[{self.stamp()}] {status.link} link {word} {status.detail}".rstrip())

    def on_input(self, env: Envelope) -> None:
        gesture = env.payload
        assert isinstance(gesture, UserInput)
        self.presses += 1
        self.say(f"[{self.stamp()}] button: {gesture.gesture} press ({gesture.origin})")
        self.check_gpio_soon()

    def on_look(self, look: str) -> None:
        self.looks.append(look)
        if self.say_looks:
            self.say(f"[{self.stamp()}] figurine: {look}")

    def on_scenario_done(self, name: str, seed: int, sent: int) -> None:
        self.scenarios_done += 1
        self.events_sent += sent
        self.say(f"skelly sim: scenario {name!r} (seed {seed}) done: {sent} events sent")

    def summary(self, real_s: float, event_s: float) -> list[str]:
        """What a headless run saw, for the end (a few lines)."""
        lines = [f"skelly sim: summary of {real_s:.1f} s ({event_s / 60:.1f} min of event time):"]
        for link in sorted(self.links):
            ups, downs, up_now = self.links[link]
            lines.append(
                f"  {link} link: up {ups}x, down {downs}x, now {'up' if up_now else 'down'}"
            )
        if not self.links:
            lines.append("  links: none came up")
        shown = [
            f"{c.previous.value} -> {c.current.value} [{stamp}]"
            for c, stamp in zip(self.changes[-8:], self.change_stamps[-8:], strict=True)
        ]
        more = "… " if len(self.changes) > len(shown) else ""
        lines.append(f"  focus changes: {len(self.changes)}" + (f": {more}" if shown else ""))
        if shown:
            lines[-1] += ", ".join(shown)
        distinct = len(dict.fromkeys(self.looks))
        last = f", last: {self.looks[-1]}" if self.looks else ""
        lines.append(f"  figurine: {distinct} looks shown{last}")
        last_gpio = f", last: {self.gpio_looks[-1]}" if self.gpio_looks else ""
        lines.append(f"  figurine pins: {len(self.gpio_looks)} changes seen{last_gpio}")
        answered = ", ".join(f"{k} {v}" for k, v in sorted(self.responses.items())) or "none"
        lines.append(
            f"  companion: {len(self.interventions)} interventions, responses: {answered}, "
            f"coins: {self.coins}"
        )
        lines.append(
            f"  host: {self.scenarios_done} scenario runs done, {self.events_sent} events sent "
            f"by them; button presses: {self.presses}"
        )
        return lines


class Recorder:
    """``--record FILE``: every event DataCapture committed, one NDJSON line each, in the form
    ``skelly send`` and ``skelly replay`` take (docs/INGEST.md §4).  The simulated host starts a
    new session (its seq from 1 again) each time the scenario repeats, so the file numbers the
    events 1, 2, 3… by position: one continuous capture with no hello line."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self.events = 0
        try:
            self._file = self.path.open("wb")
        except OSError as exc:
            raise SkellyError(
                f"cannot write --record {self.path}: {exc.strerror or exc}; give a file in a "
                "directory you can write"
            ) from None

    def attach(self, bus: Bus) -> None:
        # reliable: a full queue dead-letters (counted) rather than dropping silently
        bus.subscribe(
            self.on_event, types=RawEvent, mode=Delivery.RELIABLE, maxsize=65536, name="sim.record"
        )

    def on_event(self, env: Envelope) -> None:
        ev = env.payload
        assert isinstance(ev, RawEvent)
        self.events += 1
        line = {"kind": ev.kind, "seq": self.events, "ts": ev.ts, **dict(ev.attrs)}
        self._file.write(orjson.dumps(line) + b"\n")

    def close(self) -> None:
        self._file.close()


async def run(
    config: Config, opts: SimOptions, say: Say = print, stop: asyncio.Event | None = None
) -> int:
    """Run the simulator until ``stop`` is set or ``opts.duration`` seconds have passed."""
    check_options(opts)
    stop = stop or asyncio.Event()
    if opts.state_dir:
        state_dir = await asyncio.to_thread(make_state_dir, opts.state_dir)
        return await _run(config, opts, state_dir, say, stop)
    with tempfile.TemporaryDirectory(prefix="skelly-sim-") as tmp:
        return await _run(config, opts, Path(tmp), say, stop)


def make_state_dir(path: str) -> Path:
    """``--state-dir``, created if needed; a clear error if this user cannot use it."""
    made = Path(path).expanduser()
    require_dir(
        made,
        write=True,
        create=True,
        what="the --state-dir",
        hint="give --state-dir a directory you can write, or leave it out for a temporary one",
    )
    return made


async def _run(
    config: Config, opts: SimOptions, state_dir: Path, say: Say, stop: asyncio.Event
) -> int:
    recorder = await asyncio.to_thread(Recorder, opts.record) if opts.record else None
    try:
        return await _run_recorded(config, opts, state_dir, say, stop, recorder)
    finally:
        if recorder is not None:
            recorder.close()


async def _run_recorded(
    config: Config,
    opts: SimOptions,
    state_dir: Path,
    say: Say,
    stop: asyncio.Event,
    recorder: Recorder | None,
) -> int:
    clock = SimClock(opts.speed)
    model = ViewModel() if opts.view else None
    # in the live view the narration becomes the view's last few lines
    narrator = _Narrator(
        clock, model.add_line if model else say, live=model is not None or not opts.headless
    )
    last_look = [""]
    started = (time.monotonic(), clock.now())

    def on_mcu_change(mcu: SimulatedMcu, event: Event | None) -> None:
        if model is not None:
            model.on_look(mcu.visible)
        look = describe(mcu.visible)
        if look != last_look[0]:
            last_look[0] = look
            narrator.on_look(look)

    pins = mock_factory()
    async with SimulatedMcu(state_dir / "mcu", on_change=on_mcu_change) as mcu:
        cfg = _sim_config(config, state_dir, opts.speed, mcu.path)
        button = VirtualButton(pins, cfg.figurine.gpio)
        gpio = cfg.figurine.gpio
        narrator.describe_gpio = lambda: describe_pins(pins, gpio)
        narrator.trim_gpio = lambda: trim_history(pins, gpio)
        token = secrets.token_urlsafe(32)
        bus = app.make_bus(cfg)
        narrator.attach(bus)
        view = None
        if model is not None:
            narrator.on_gpio = model.on_pins
            narrator.say_looks = False
            view = LiveView(
                model, clock.now, title=f"skelly sim · {opts.scenario} · {opts.speed:g}x"
            )
            view.attach(bus)
        if recorder is not None:
            recorder.attach(bus)
        modules = app.build_modules(
            cfg,
            event_clock=clock.now,
            event_sleep=clock.sleep,
            token=token,
            pin_factory=lambda: pins,
        )
        try:
            await app.start_all(bus, modules)
        except BaseException:
            await bus.aclose()
            raise
        try:
            say(f"skelly sim: state in {state_dir}; all eight modules registered:")
            for module in modules:
                health = bus.registry.module(module.name)
                say(f"  {module.name:<15} {health.effective.value:<10} {health.detail}")
            placeholders = [m.name for m in modules if m.placeholder]
            if placeholders:
                say("skelly sim: placeholders that do nothing yet: " + ", ".join(placeholders))
            capture = next(m for m in modules if m.name == "DataCapture")
            port = getattr(capture, "port", 0)
            if not port:
                raise SkellyError(
                    f"ingest did not start: {bus.registry.module(capture.name).detail}"
                )
            say(
                f"skelly sim: host streams the {opts.scenario!r} scenario to 127.0.0.1:{port} at "
                f"{opts.speed:g}x; serial console: skelly console --socket "
                f"{default_socket_path(state_dir)}; Ctrl-C to stop"
            )
            if recorder is not None:
                say(f"skelly sim: recording the captured events to {recorder.path}")
            single = opts.keys and view is not None and _is_terminal(sys.stdin)
            if single:
                say(
                    "skelly sim: the figurine's button is on mock GPIO"
                    f"{cfg.figurine.gpio.button}: keys {KEYS_HELP}"
                )
            elif opts.keys:
                say(
                    "skelly sim: the figurine's button is on mock GPIO"
                    f"{cfg.figurine.gpio.button}: type press short|long|double and Enter"
                )
                _read_keys(asyncio.get_running_loop(), button, model.add_line if model else say)
            with contextlib.ExitStack() as keys:
                if single:
                    keys.enter_context(single_keys(sys.stdin.fileno()))
                    keys.callback(_single_keys(button, model, stop, cfg.figurine.gpio.button))
                await _until_done(opts, clock, port, token, narrator, stop, view)
        finally:
            narrator.describe_gpio = narrator.trim_gpio = narrator.on_gpio = None
            await app.stop_all(modules)
            await bus.aclose()
            pins.reset()
    if opts.headless or opts.view:
        for line in narrator.summary(time.monotonic() - started[0], clock.now() - started[1]):
            say(line)
    if recorder is not None:
        say(f"skelly sim: recorded {recorder.events} captured events to {recorder.path}")
    say(
        f"skelly sim: stopped cleanly after {narrator.windows} analysis windows and "
        f"{len(narrator.changes)} focus changes"
    )
    return 0


async def _until_done(
    opts: SimOptions,
    clock: SimClock,
    port: int,
    token: str,
    narrator: _Narrator,
    stop: asyncio.Event,
    view: LiveView | None,
) -> None:
    """The simulated host (and the view) until ``stop``, the duration, or the host failing."""
    host = asyncio.create_task(_host_loop(opts, clock, port, token, narrator), name="sim-host")
    drawing = asyncio.create_task(view.run(), name="sim-view") if view is not None else None
    stopper = asyncio.create_task(stop.wait(), name="sim-stop-wait")
    waited: set[asyncio.Task[None] | asyncio.Task[bool]] = {stopper, host}
    if drawing is not None:
        waited.add(drawing)
    try:
        await asyncio.wait(
            waited, timeout=opts.duration or None, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stopper.cancel()
        if drawing is not None:  # leave the alternate screen before anything else is said
            drawing.cancel()
            await asyncio.gather(drawing, return_exceptions=True)
        await _cancel(host)
    if drawing is not None and not drawing.cancelled() and drawing.exception() is not None:
        raise SkellyError(f"the live view failed: {drawing.exception()}")


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty()) and os.isatty(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _single_keys(
    button: VirtualButton, model: ViewModel | None, stop: asyncio.Event, pin: int
) -> Callable[[], None]:
    """s / l / d press the virtual button, q stops; returns the undo."""
    loop = asyncio.get_running_loop()
    presses: set[asyncio.Task[None]] = set()
    by_key = {g[0]: g for g in GESTURES}

    def on_key(char: str) -> None:
        char = char.lower()
        if char == "q":
            if model is not None:
                model.add_line("skelly sim: q pressed, stopping")
            stop.set()
        elif char in by_key:
            gesture = by_key[char]
            if model is not None:
                model.add_line(f"key {char}: {gesture} press on mock GPIO{pin}")
            task = loop.create_task(button.press(gesture), name="sim-press")
            presses.add(task)
            task.add_done_callback(presses.discard)

    return read_keys(loop, sys.stdin.fileno(), on_key)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel and wait; cancel again if the first one was swallowed (Python 3.11's wait_for can
    lose a cancellation that lands as its inner await completes)."""
    for _ in range(100):
        task.cancel()
        done, _pending = await asyncio.wait({task}, timeout=0.1)
        if done:
            break
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise SkellyError(f"the simulated host failed: {task.exception()}")


async def _host_loop(
    opts: SimOptions, clock: SimClock, port: int, token: str, narrator: _Narrator
) -> None:
    seed = opts.seed
    while True:
        sc = scenario(opts.scenario, seed=seed, start=clock.now() + 1.0)
        stats = await stream_scenario(
            sc, clock, f"127.0.0.1:{port}", token, session_id=f"sim-{seed}"
        )
        narrator.on_scenario_done(opts.scenario, seed, stats.sent)
        seed += 1


def _read_keys(loop: asyncio.AbstractEventLoop, button: VirtualButton, say: Say) -> None:
    """Read ``press short|long|double`` lines on a daemon thread (a blocked read never holds up
    the exit) and press the virtual button on the loop."""
    presses: set[asyncio.Task[None]] = set()

    def on_line(line: str) -> None:
        words = line.split()
        if not words:
            return
        if len(words) != 2 or words[0] != "press" or words[1] not in ("short", "long", "double"):
            say(f"skelly sim: unknown input {line.strip()!r}; type press short|long|double")
            return
        task = loop.create_task(button.press(words[1]), name="sim-press")
        presses.add(task)
        task.add_done_callback(presses.discard)

    def reader() -> None:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            for line in sys.stdin:
                loop.call_soon_threadsafe(on_line, line)

    threading.Thread(target=reader, name="sim-keys", daemon=True).start()
