"""Draw docs/wiring.svg: the figurine's parts on the Raspberry Pi's 40-pin header.

    python docs/wiring.py            # rewrite docs/wiring.svg
    python docs/wiring.py --check    # exit 1 if docs/wiring.svg is not what this draws

The pins come from ``[figurine.gpio]`` in deploy/config.example.toml (the documented defaults),
so the picture cannot drift from the configuration; tests/deploy/test_docs.py runs ``--check``.
Plain SVG written by hand: no dependency, the same bytes on every machine.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "deploy" / "config.example.toml"
OUT = HERE / "wiring.svg"

# physical pin -> name on every 40-pin Raspberry Pi (Zero 2 W, 3, 4, 5)
HEADER = {
    1: "3V3", 2: "5V", 3: "GPIO2", 4: "5V", 5: "GPIO3", 6: "GND", 7: "GPIO4", 8: "GPIO14",
    9: "GND", 10: "GPIO15", 11: "GPIO17", 12: "GPIO18", 13: "GPIO27", 14: "GND", 15: "GPIO22",
    16: "GPIO23", 17: "3V3", 18: "GPIO24", 19: "GPIO10", 20: "GND", 21: "GPIO9", 22: "GPIO25",
    23: "GPIO11", 24: "GPIO8", 25: "GND", 26: "GPIO7", 27: "GPIO0", 28: "GPIO1", 29: "GPIO5",
    30: "GND", 31: "GPIO6", 32: "GPIO12", 33: "GPIO13", 34: "GND", 35: "GPIO19", 36: "GPIO16",
    37: "GPIO26", 38: "GPIO20", 39: "GND", 40: "GPIO21",
}  # fmt: skip
PHYSICAL = {name: pin for pin, name in reversed(HEADER.items())}


@dataclass(frozen=True)
class Wire:
    pin: int  # physical header pin
    part: str  # the box it goes to
    label: str  # said next to the wire
    colour: str


@dataclass(frozen=True)
class Part:
    name: str
    lines: tuple[str, ...]
    y: int


def gpio_pins() -> dict[str, int]:
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    gpio = config["figurine"]["gpio"]
    return {k: gpio[k] for k in ("red", "green", "blue", "eyes", "servo", "buzzer", "button")}


def physical(bcm: int) -> int:
    return PHYSICAL[f"GPIO{bcm}"]


def layout(pins: dict[str, int]) -> tuple[list[Part], list[Wire]]:
    """Parts wired to odd (left column) pins sit on the left, even ones on the right, so no
    wire crosses the other column; the grounds are chosen on the same side as the part."""
    parts = [
        Part("body", ("Body RGB LED", "common cathode", "220-330 Ω per colour"), 150),
        Part("buzzer", ("Passive piezo buzzer", "100 Ω in series", "(off by default)"), 390),
        Part("button", ("Button", "to GND, internal pull-up"), 500),
        Part("eyes", ("Eye LED(s)", "330 Ω each (≤ 8 mA)"), 150),
        Part("servo", ("Posture servo (SG90)", "5 V supply, NOT 3.3 V", "GND shared with Pi"), 340),
    ]
    wires = [
        Wire(9, "body", "GND (cathode)", "#222222"),
        Wire(physical(pins["red"]), "body", f"GPIO{pins['red']} red", "#d62728"),
        Wire(physical(pins["green"]), "body", f"GPIO{pins['green']} green", "#2ca02c"),
        Wire(physical(pins["blue"]), "body", f"GPIO{pins['blue']} blue", "#1f77b4"),
        Wire(25, "buzzer", "GND", "#222222"),
        Wire(physical(pins["buzzer"]), "buzzer", f"GPIO{pins['buzzer']} PWM1", "#9467bd"),
        Wire(physical(pins["button"]), "button", f"GPIO{pins['button']}", "#17becf"),
        Wire(39, "button", "GND", "#222222"),
        Wire(physical(pins["eyes"]), "eyes", f"GPIO{pins['eyes']} PWM", "#e6a800"),
        Wire(20, "eyes", "GND", "#222222"),
        Wire(2, "servo", "5V (or a separate 5 V supply)", "#b00000"),
        Wire(physical(pins["servo"]), "servo", f"GPIO{pins['servo']} PWM0 signal", "#ff7f0e"),
        Wire(34, "servo", "GND", "#222222"),
    ]
    return parts, wires


HEADER_X = 540  # x of the odd (left) column; the even column is 20 to the right
LEFT_BOX, RIGHT_BOX, BOX_W = 20, 830, 250


def pin_xy(pin: int) -> tuple[int, int]:
    row = (pin - 1) // 2
    return (HEADER_X if pin % 2 else HEADER_X + 20), 60 + row * 26


def draw(pins: dict[str, int]) -> str:
    parts, wires = layout(pins)
    used = {w.pin for w in wires}
    side = {w.part: w.pin % 2 for w in wires}  # 1: left
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="1100" height="640" '
        'viewBox="0 0 1100 640" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
        '<rect width="1100" height="640" fill="#ffffff"/>',
        '<text x="20" y="28" font-size="17" font-weight="bold">Skelly figurine: GPIO wiring '
        "(BCM numbers, the defaults of [figurine.gpio])</text>",
        f'<rect x="{HEADER_X - 25}" y="42" width="70" height="528" rx="6" fill="#1e5631"/>',
        f'<text x="{HEADER_X + 10}" y="590" text-anchor="middle">Pi 40-pin header</text>',
        f'<text x="{HEADER_X + 10}" y="605" text-anchor="middle" fill="#555">'
        "pin 1 at the top (the corner with the square pad)</text>",
    ]
    part_y = {p.name: p.y for p in parts}
    slots: dict[str, int] = {}
    bends = {1: 0, 0: 0}
    for wire in wires:
        x, y = pin_xy(wire.pin)
        left = wire.pin % 2 == 1
        slot = slots.get(wire.part, 0)
        slots[wire.part] = slot + 1
        ty = part_y[wire.part] + 14 + slot * 16
        n = bends[int(left)]
        bends[int(left)] = n + 1
        if left:
            edge, bend, anchor, tx = LEFT_BOX + BOX_W, 410 - n * 14, "start", LEFT_BOX + BOX_W + 6
        else:
            edge, bend, anchor, tx = RIGHT_BOX, 700 + n * 14, "end", RIGHT_BOX - 6
        out.append(
            f'<polyline points="{x},{y} {bend},{y} {bend},{ty} {edge},{ty}" fill="none" '
            f'stroke="{wire.colour}" stroke-width="2.5"/>'
        )
        out.append(
            f'<text x="{tx}" y="{ty - 3}" text-anchor="{anchor}" font-size="10" '
            f'fill="{wire.colour}">{escape(wire.label)}</text>'
        )
    # pins and their names last, on a white ground, so wires pass under the names
    for pin, name in HEADER.items():
        x, y = pin_xy(pin)
        fill = "#ffd700" if pin in used else "#c0c0c0"
        out.append(f'<circle cx="{x}" cy="{y}" r="7" fill="{fill}" stroke="#000"/>')
        text = f"{name} ({pin})"
        width = 7 * len(text) + 6
        tx = x - 32 if pin % 2 else x + 32
        rx = tx - width + 3 if pin % 2 else tx - 3
        anchor = "end" if pin % 2 else "start"
        out.append(f'<rect x="{rx}" y="{y - 9}" width="{width}" height="17" fill="#ffffff"/>')
        out.append(f'<text x="{tx}" y="{y + 4}" text-anchor="{anchor}">{text}</text>')
    for part in parts:
        box_x = LEFT_BOX if side[part.name] else RIGHT_BOX
        height = max(20 + 16 * slots.get(part.name, 1), 18 + 15 * len(part.lines))
        out.append(
            f'<rect x="{box_x}" y="{part.y}" width="{BOX_W}" height="{height}" rx="6" '
            'fill="#f4f4f4" stroke="#333"/>'
        )
        for j, line in enumerate(part.lines):
            weight = ' font-weight="bold"' if j == 0 else ""
            ty = part.y + 18 + 15 * j
            out.append(f'<text x="{box_x + 12}" y="{ty}"{weight}>{escape(line)}</text>')
    out.append(
        '<text x="20" y="630" fill="#555">GPIO pins are 3.3 V, at most 16 mA each: '
        "never power the servo from them or from the 3.3 V rail. See docs/HARDWARE.md.</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    svg = draw(gpio_pins())
    if argv[1:] == ["--check"]:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != svg:
            print(f"{OUT} is out of date: run python docs/wiring.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(svg, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
