"""Test helper (run as a child process with DISPLAY set): map one top-level X window per
``WM_CLASS`` given as ``instance.Class`` arguments, print their ids (one per line, hex), then
keep them open until stdin closes."""

from __future__ import annotations

import sys

from Xlib import X, Xatom, display  # type: ignore[import-untyped,unused-ignore]


def main() -> None:
    d = display.Display()
    root = d.screen().root
    windows = []
    for i, spec in enumerate(sys.argv[1:]):
        instance, _, cls = spec.partition(".")
        w = root.create_window(
            20 + 220 * i, 20, 200, 150, 0, d.screen().root_depth, X.InputOutput,
            X.CopyFromParent, event_mask=X.FocusChangeMask,
        )  # fmt: skip
        w.set_wm_class(instance, cls)
        w.change_property(Xatom.WM_NAME, Xatom.STRING, 8, b"secret window title")
        w.map()
        windows.append(w)
    d.sync()
    for w in windows:
        print(hex(w.id), flush=True)
    sys.stdin.read()
    d.close()


if __name__ == "__main__":
    main()
