"""``skelly capture``: the capture agent on the user's computer (docs/CAPTURE.md).

Listens to keyboard and mouse (pynput) and the focused application, turns them into the INGEST
events (docs/INGEST.md §4: key timing with only a correction flag, mouse speed/clicks and scroll
ticks per second, focus changes with a category and an opaque app id, idle spans) and streams
them to the Pi through the same client as ``skelly send`` (spool, resume, TLS).  ``--pause``,
``--resume`` and ``--status`` talk to the running agent; ``--install-user-service`` starts it at
login.  Needs the ``capture`` extra (pynput, python-xlib), never installed on the Pi.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

from modules.ingest.client import IngestClient, IngestClientError, Spool, Target
from skelly.app import run_loop
from skelly.config import load
from skelly.errors import SkellyError

from .send import Connection, add_connection_arguments, resolve_connection, spool_path

CALLBACK_TIMES_ENV = "SKELLY_CAPTURE_CALLBACK_TIMES"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "capture",
        help="capture keyboard/mouse timing and the focused app's category, stream it to a Pi",
        description=(
            "The capture agent for the user's computer (docs/CAPTURE.md). Sends when keys were "
            "pressed (never which: only whether it was Backspace/Delete), mouse speed, clicks "
            "and scroll ticks per second, the category and an opaque id of the focused "
            "application (never a title or URL) and idle spans, through the same spooling, "
            "resuming client as skelly send. Needs the capture extra: "
            "pip install 'skelly-jelly-edge[capture]'. Linux needs an X11 session."
        ),
    )
    add_connection_arguments(
        p,
        required=False,
        session_help="session id (default: a new one per run, capture-<UTC time>-<random>); "
        "spools left by earlier runs are sent at start",
    )
    p.add_argument(
        "--categories",
        help="capture config file with [categories] overrides "
        "(default: ~/.config/skelly/capture.toml)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines, only problems")
    act = p.add_mutually_exclusive_group()
    act.add_argument(
        "--pause", metavar="DURATION", help="pause the running agent, e.g. 30m, 1h, 1h30m"
    )
    act.add_argument("--resume", action="store_true", help="resume the running agent")
    act.add_argument(
        "--status",
        action="store_true",
        help="one line from the running agent: connection, events/min, last ack, paused-until",
    )
    act.add_argument(
        "--install-user-service",
        action="store_true",
        help="write a systemd user unit (macOS: a launchd agent) that runs this command at login",
    )
    p.set_defaults(func=run)


def default_session() -> str:
    return time.strftime("capture-%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _say(text: str) -> None:
    print(f"skelly capture: {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from skelly.capture import control

    if args.status or args.resume or args.pause is not None:
        return _control(args, control)
    if not args.to or not args.token_file:
        raise SkellyError(
            "skelly capture needs --to HOST:PORT and --token-file FILE (the Pi's address and the "
            "token from `skelly token` on the Pi)"
        )
    conn = resolve_connection(args, default_session)
    from skelly.capture import categories, environment

    if args.categories and not Path(args.categories).expanduser().is_file():
        raise SkellyError(
            f"--categories {args.categories}: no such file; give the capture config file with a "
            "[categories] table (docs/CAPTURE.md §3), or leave the option out"
        )
    config = load(args.config)  # a wrong --config is one line now, not at every login
    if args.install_user_service:
        return _install(args, conn.target, conn.token_path.absolute())

    try:
        where = environment.check()
    except environment.Unsupported as exc:
        raise SkellyError(f"capture is not possible here: {exc}") from None
    spool = spool_path(args, config, conn)
    cat_path = (
        Path(args.categories).expanduser()
        if args.categories
        else categories.config_dir() / "capture.toml"
    )
    try:
        overrides = categories.load_overrides(cat_path)
    except categories.CategoryConfigError as exc:
        raise SkellyError(str(exc)) from None
    secret_path = categories.config_dir() / "capture.secret"
    try:
        secret = categories.load_secret(secret_path)
    except OSError as exc:
        raise SkellyError(
            f"cannot create the app-id secret {secret_path}: {exc.strerror}; set "
            "XDG_CONFIG_HOME to a directory you can write"
        ) from None
    setup = _Setup(args, conn, spool)
    setup.categoriser = categories.Categoriser(secret, overrides)
    if not args.quiet:
        _say(f"host {conn.host_id} session {conn.session}")
    return setup.run(where)


def _control(args: argparse.Namespace, control: Any) -> int:
    path = control.socket_path()
    if args.pause is not None:
        try:
            seconds = control.parse_duration(args.pause)
        except ValueError as exc:
            raise SkellyError(f"--pause: {exc}") from None
        message: dict[str, Any] = {"cmd": "pause", "seconds": seconds}
    elif args.resume:
        message = {"cmd": "resume"}
    else:
        message = {"cmd": "status"}
    try:
        reply = control.request(path, message)
    except control.NoAgent as exc:
        raise SkellyError(
            f"{exc}: is skelly capture running as this user? start it with "
            "skelly capture --to HOST:PORT --token-file FILE"
        ) from None
    if "error" in reply:
        raise SkellyError(f"the capture agent said: {reply['error']}")
    print(control.status_line(reply))
    return 0


def _install(args: argparse.Namespace, target: Target, token_path: Path) -> int:
    from skelly.capture import service

    argv = ["--to", str(target), "--token-file", str(token_path)]
    for opt in ("session", "host_id", "config", "categories", "spool", "ca", "tls_name"):
        value = getattr(args, opt)
        if value:
            if opt in ("config", "categories", "spool", "ca"):
                value = str(Path(value).expanduser().absolute())
            argv += ["--" + opt.replace("_", "-"), value]
    if args.tls:
        argv.append("--tls")
    if args.quiet:
        argv.append("--quiet")
    try:
        path, enable = service.install(argv, str(target))
    except OSError as exc:
        raise SkellyError(
            f"cannot write the user service file: {exc.strerror} ({exc.filename}); check that "
            "your config directory is writable"
        ) from None
    print(f"wrote {path}")
    print(f"start it now and at every login: {enable}")
    return 0


class _Setup:
    def __init__(
        self,
        args: argparse.Namespace,
        conn: Connection,
        spool_path: Path,
    ) -> None:
        self.args = args
        self.target = conn.target
        self.token = conn.token
        self.host_id = conn.host_id
        self.session = conn.session
        self.spool_path = spool_path
        self.ctx = conn.tls
        self.categoriser: Any = None
        self.quiet = bool(args.quiet)

    def _status(self, text: str) -> None:
        if not self.quiet:
            _say(text)

    def _refused(self, msg: dict[str, Any]) -> None:
        _say(f"Pi refused event seq {msg.get('seq')}: {msg.get('error')}: {msg.get('message')}")

    def client(self, session: str, spool: Spool) -> IngestClient:
        return IngestClient(
            self.target,
            self.token,
            host_id=self.host_id,
            session_id=session,
            ssl_context=self.ctx,
            server_hostname=self.args.tls_name,
            spool=spool,
            client_name="skelly-capture/1",
            on_refused=self._refused,
            on_status=self._status,
            on_problem=_say,
        )

    def run(self, where: str) -> int:
        try:
            from pynput import keyboard, mouse  # type: ignore[import-untyped,unused-ignore]
        except ImportError as exc:
            raise SkellyError(
                f"the input library is missing or cannot load ({exc}); install the capture "
                "extra: pip install 'skelly-jelly-edge[capture]'"
            ) from None
        from skelly.capture.focus import watcher_for_platform
        from skelly.capture.summariser import Summariser
        from skelly.capture.taps import Taps

        lock = threading.Lock()
        summariser = Summariser()
        taps = Taps(summariser, lock, time.time, (keyboard.Key.backspace, keyboard.Key.delete))
        record_to = os.environ.get(CALLBACK_TIMES_ENV)
        if record_to:
            taps.record = []
        cb = taps.callbacks()

        def on_app(names: tuple[str, ...]) -> None:
            category, app_id = self.categoriser.classify(names)
            ts = time.time()
            with lock:
                summariser.focus(ts, category, app_id)

        watcher = watcher_for_platform(os.environ.get("DISPLAY", ""), on_app)
        kl = _press_only(keyboard.Listener)(on_press=cb["on_press"])
        ml = mouse.Listener(
            on_move=cb["on_move"], on_click=cb["on_click"], on_scroll=cb["on_scroll"]
        )
        try:
            for listener in (kl, ml):
                listener.start()
                listener.wait()
                if not listener.is_alive():
                    raise SkellyError(
                        f"cannot listen to input on {where}; run skelly capture inside your "
                        "desktop session as the logged-in user"
                    )
                if getattr(listener, "IS_TRUSTED", True) is False:  # macOS, not tested here
                    raise SkellyError(
                        "macOS does not let this process read input: allow your terminal (or "
                        "Python) in System Settings → Privacy & Security → Input Monitoring and "
                        "Accessibility, then start skelly capture again"
                    )
            watcher.start()
            if not self.quiet:
                _say(f"capturing keyboard/mouse/focus on {where} → {self.target}")

            def check_inputs() -> str:
                for what, listener in (("keyboard", kl), ("mouse", ml)):
                    if not listener.is_alive():
                        return (
                            f"the {what} listener stopped (see the log above); input can no "
                            "longer be read, so the agent stops rather than send nothing"
                        )
                return ""

            return run_loop(lambda stop: self._main(summariser, lock, watcher, check_inputs, stop))
        finally:
            for listener in (kl, ml):
                listener.stop()
            watcher.stop()
            if record_to and taps.record is not None:
                Path(record_to).write_text("".join(f"{ns}\n" for ns in taps.record))

    async def _main(
        self,
        summariser: Any,
        lock: threading.Lock,
        watcher: Any,
        check_inputs: Any,
        stop: asyncio.Event,
    ) -> int:
        from skelly.capture.agent import AgentError, CaptureAgent
        from skelly.capture.control import socket_path

        client = self.client(self.session, Spool(self.spool_path, self.host_id, self.session))
        try:
            await client.start()
        except ValueError as exc:
            raise SkellyError(str(exc)) from None
        if client.unacked:
            self._status(f"resuming {len(client.unacked)} spooled events from {self.spool_path}")
        agent = CaptureAgent(
            client,
            summariser,
            lock,
            control_path=socket_path(),
            hold_until_welcome=bool(self.args.session) and not client.unacked,
            make_client=self.client,
            say=_say,
            on_resume=watcher.forget,
            check_inputs=check_inputs,
        )
        try:
            await agent.run(self.spool_path.parent, stop)
        except AgentError as exc:
            raise SkellyError(str(exc)) from None
        except IngestClientError as exc:
            raise SkellyError(
                f"the Pi refused the connection: {exc.message}"
                + (" (check --token-file)" if exc.code == "auth" else "")
            ) from None
        finally:
            left = len(client.unacked)
            await client.close()
            if left:
                _say(f"stopped: {left} events not acknowledged kept in {self.spool_path}")
        return 0


def _press_only(listener: Any) -> Any:
    """On X11, record only KeyPress (pynput records KeyPress..KeyRelease): the agent never uses
    releases, and not recording them halves the listener's work per key (docs/CAPTURE.md §9).
    Other back ends (and a pynput without this class attribute) are used as they are."""
    events = getattr(listener, "_EVENTS", None)
    if sys.platform != "linux" or not isinstance(events, tuple) or len(events) != 2:
        return listener
    press = events[0]
    return type("PressOnlyListener", (listener,), {"_EVENTS": (press, press)})
