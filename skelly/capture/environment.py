"""Can input be read here?  One clear answer before any listener starts (docs/CAPTURE.md §5).

:func:`check` returns a description of the session to capture (e.g. ``X11 display :0``) or
raises :class:`Unsupported` with one line saying what is unsupported and what to do.  Wayland
does not let an application read global input (and Xwayland shows only the input of X11
windows), so a Wayland session is refused rather than run as an agent that sends nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

WAYLAND_HINT = (
    'log in to an X11 session instead (on the login screen choose e.g. "GNOME on Xorg" or '
    '"Plasma (X11)") and run skelly capture there; an evdev back end for Wayland is not built'
)


class Unsupported(Exception):
    """Input cannot be read in this session; the message says why and what to do."""


def check(env: Mapping[str, str] | None = None, platform: str | None = None) -> str:
    env = os.environ if env is None else env
    platform = platform or sys.platform
    if platform == "darwin":
        return "macOS"
    if platform == "win32":
        return "Windows"
    display = env.get("DISPLAY", "")
    wayland = env.get("WAYLAND_DISPLAY", "")
    session = env.get("XDG_SESSION_TYPE", "").lower()
    if wayland or session == "wayland":
        where = f"WAYLAND_DISPLAY={wayland}" if wayland else "XDG_SESSION_TYPE=wayland"
        raise Unsupported(
            f"this is a Wayland session ({where}): Wayland does not let skelly capture read "
            f"keyboard and mouse timing (Xwayland shows only X11 windows' input); {WAYLAND_HINT}"
        )
    if not display:
        raise Unsupported(
            "no display: DISPLAY is not set, so there is no X11 session to read input from; run "
            "skelly capture inside your desktop session (or with DISPLAY=:0 and XAUTHORITY set), "
            "or install it as a user service there: skelly capture --install-user-service …"
        )
    _check_x11(display)
    return f"X11 display {display}"


def _check_x11(display: str) -> None:
    try:
        from Xlib import display as xdisplay  # type: ignore[import-untyped,unused-ignore]
        from Xlib import error  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise Unsupported(
            "python-xlib is not installed; install the capture extra: "
            "pip install 'skelly-jelly-edge[capture]'"
        ) from None
    try:
        d = xdisplay.Display(display)
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        raise Unsupported(
            f"cannot open the X11 display {display} ({exc}); run skelly capture inside your X11 "
            "session, or check DISPLAY and XAUTHORITY"
        ) from None
    try:
        if not d.has_extension("RECORD"):
            raise Unsupported(
                f"the X server on {display} has no RECORD extension, so keyboard and mouse "
                'timing cannot be read; enable it (Xorg: Load "record" in the Module section; '
                "Xvfb: +extension RECORD)"
            )
    finally:
        d.close()
