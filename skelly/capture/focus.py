"""The focused application, per platform (docs/CAPTURE.md §4).

A watcher runs on its own daemon thread and calls ``on_app(names)`` whenever the focused
application changes, with the application's well-known ids, most specific first (X11:
``(WM_CLASS class, WM_CLASS instance)``; macOS: ``(bundle id,)``; Windows: ``(exe name,)``).
The names go straight to :class:`~skelly.capture.categories.Categoriser` and are never logged
or sent; window titles are never read.

* Linux/X11 (tested under Xvfb): ``_NET_ACTIVE_WINDOW`` on the root window, re-read on each
  ``PropertyNotify`` of the root (a window manager updates it); without a window manager (a
  bare Xvfb) ``GetInputFocus``, walking up to the window that has a ``WM_CLASS``.  Either way
  the focus is also checked once a second (at most 1 Hz) as a fallback.
* macOS (NSWorkspace frontmost application, via pyobjc) and Windows (GetForegroundWindow +
  the process's executable, via ctypes): polled once a second. **Not tested here.**
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Names = tuple[str, ...]
POLL_S = 1.0


class FocusWatcher:
    """Base: a daemon thread calling ``on_app`` on changes; ``stop()`` ends it."""

    def __init__(self, on_app: Callable[[Names], None], poll_s: float = POLL_S) -> None:
        self.on_app = on_app
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="capture-focus", daemon=True)
        self._last: Names | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _changed(self, names: Names) -> None:
        if names and names != self._last:
            self._last = names
            self.on_app(names)

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:  # the agent keeps capturing keys/mouse without focus
            log.warning("focus watcher stopped: %s", type(exc).__name__)

    def forget(self) -> None:
        """Report the current application again at the next check (after a resume)."""
        self._last = None

    def run(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class X11FocusWatcher(FocusWatcher):
    def __init__(
        self, display_name: str, on_app: Callable[[Names], None], poll_s: float = POLL_S
    ) -> None:
        super().__init__(on_app, poll_s)
        self.display_name = display_name

    def run(self) -> None:
        from Xlib import X, display, error  # type: ignore[import-untyped,unused-ignore]

        d = display.Display(self.display_name)
        try:
            root = d.screen().root
            active_atom = d.intern_atom("_NET_ACTIVE_WINDOW")
            root.change_attributes(event_mask=X.PropertyChangeMask)
            d.flush()
            fd = d.fileno()
            while not self._stop.is_set():
                # a window that went away while we looked: look again next time
                with contextlib.suppress(error.XError, error.BadWindow):
                    self._changed(_x11_focused(d, root, active_atom))
                readable, _, _ = select.select([fd], [], [], self.poll_s)
                if readable:
                    for _ in range(d.pending_events()):
                        d.next_event()
        finally:
            with contextlib.suppress(Exception):
                d.close()


def _x11_focused(d: Any, root: Any, active_atom: int) -> Names:
    from Xlib import X  # type: ignore[import-untyped,unused-ignore]

    window: Any = None
    prop = root.get_full_property(active_atom, X.AnyPropertyType)
    if prop is not None and len(prop.value) and int(prop.value[0]):
        window = d.create_resource_object("window", int(prop.value[0]))
    else:
        focus = d.get_input_focus().focus
        if isinstance(focus, int):  # None (0) or PointerRoot (1): no application
            return ()
        window = focus
    for _ in range(32):
        if window is None or window.id == root.id:
            return ()
        wm_class = window.get_wm_class()
        if wm_class:
            instance, cls = wm_class
            return tuple(n for n in (cls, instance) if n)
        parent = window.query_tree().parent
        if isinstance(parent, int) or parent is None:
            return ()
        window = parent
    return ()


class MacFocusWatcher(FocusWatcher):  # pragma: no cover - not tested here (docs/CAPTURE.md)
    def run(self) -> None:
        from AppKit import NSWorkspace  # type: ignore[import-not-found]  # pyobjc via pynput

        workspace = NSWorkspace.sharedWorkspace()
        while not self._stop.wait(self.poll_s):
            app = workspace.frontmostApplication()
            bundle = app.bundleIdentifier() if app is not None else None
            if bundle:
                self._changed((str(bundle),))


class WindowsFocusWatcher(FocusWatcher):  # pragma: no cover - not tested here (docs/CAPTURE.md)
    def run(self) -> None:
        import ctypes
        from ctypes import wintypes

        user32 = ctypes.windll.user32  # type: ignore[attr-defined]
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        limited_info = 0x1000  # PROCESS_QUERY_LIMITED_INFORMATION
        while not self._stop.wait(self.poll_s):
            hwnd = user32.GetForegroundWindow()
            if not hwnd:
                continue
            pid = wintypes.DWORD()
            user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
            handle = kernel32.OpenProcess(limited_info, False, pid.value)
            if not handle:
                continue
            try:
                buf = ctypes.create_unicode_buffer(1024)
                size = wintypes.DWORD(len(buf))
                if kernel32.QueryFullProcessImageNameW(handle, 0, buf, ctypes.byref(size)):
                    self._changed((os.path.basename(buf.value).lower(),))
            finally:
                kernel32.CloseHandle(handle)


def watcher_for_platform(display_name: str, on_app: Callable[[Names], None]) -> FocusWatcher:
    if sys.platform == "darwin":
        return MacFocusWatcher(on_app)
    if sys.platform == "win32":
        return WindowsFocusWatcher(on_app)
    return X11FocusWatcher(display_name, on_app)
