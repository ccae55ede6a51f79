"""docs/FIRMWARE.md says what the firmware's files and config.py do: the wiring table's pins are
config.py's defaults, and the `mpremote cp` line copies every file the Pico needs."""

from __future__ import annotations

import ast
import re

from tests.firmware.micropython import FIRMWARE_DIR, ROOT

DOC = (ROOT / "docs" / "FIRMWARE.md").read_text(encoding="utf-8")


def _config() -> dict[str, object]:
    tree = ast.parse((FIRMWARE_DIR / "config.py").read_text(encoding="utf-8"))
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }


def test_the_wiring_table_uses_the_pins_of_config_py() -> None:
    cfg = _config()
    rows = {
        "LED_PIN": "LED ring DIN",
        "SERVO_PIN": "servo signal",
        "BUZZER_PIN": "buzzer +",
        "BUTTON_PIN": "button",
        "DISPLAY_SDA": "display SDA",
        "DISPLAY_SCL": "display SCL",
    }
    for name, part in rows.items():
        match = re.search(rf"^\| GP(\d+) \| \d+ \| {re.escape(part)}", DOC, re.MULTILINE)
        assert match, f"no wiring row for {part}"
        assert int(match.group(1)) == cfg[name], (name, match.group(0))
    assert "`LED_COUNT`" in DOC and f"{cfg['LED_COUNT']} LEDs" in DOC
    assert f"{cfg['SERVO_MIN_US']}–{cfg['SERVO_MAX_US']} µs" in DOC
    assert "MAX_TEXT` is announced" in DOC and f"{cfg['MAX_TEXT']} bytes" in DOC


def test_the_copy_command_copies_every_file_the_pico_imports() -> None:
    (line,) = [ln for ln in DOC.splitlines() if ln.startswith("mpremote cp ")]
    copied = set(line.split(" : ")[0].split()[2:])
    on_board = {p.name for p in FIRMWARE_DIR.glob("*.py")} - {"hw_unix.py"}
    assert copied == on_board
    # and nothing the board runs imports the unix-only layer
    for name in on_board:
        tree = ast.parse((FIRMWARE_DIR / name).read_text(encoding="utf-8"))
        imported = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        } | {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "hw_unix" not in imported, name
        local = {m for m in imported if (FIRMWARE_DIR / f"{m}.py").exists()}
        assert local <= {p.removesuffix(".py") for p in on_board}, name
