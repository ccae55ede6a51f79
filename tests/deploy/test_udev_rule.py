"""deploy/70-skelly.rules against a recorded ``udevadm info --attribute-walk`` of the MCU.

The fixture is the attribute walk of an RP2040 board (Raspberry Pi Pico, USB CDC serial) on a
Raspberry Pi 4's USB hub; tests/deploy/udev_match.py evaluates the rules on it the way udev(7)
does (parent keys on one device of the chain, globs, ``|`` alternatives) and refuses anything it
does not understand, so a typo in the rule fails here instead of silently never matching.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.udev_match import Node, RuleError, evaluate, load, parse_rules, parse_walk

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "70-skelly.rules"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
MCU_SERIAL = "E6614C311B2A8F2D"


def mcu_walk() -> list[Node]:
    return parse_walk((FIXTURES / "udevadm-info-rp2040-ttyACM0.txt").read_text())


def gpio_walk() -> list[Node]:
    return parse_walk((FIXTURES / "udevadm-info-gpiochip0.txt").read_text())


def test_the_fixture_is_read_as_udevadm_prints_it() -> None:
    walk = mcu_walk()
    assert [n.kernel for n in walk[:3]] == ["ttyACM0", "1-1.3:1.0", "1-1.3"]
    assert walk[0].subsystem == "tty"
    assert walk[2].attrs["idVendor"] == "2e8a"
    assert walk[2].attrs["serial"] == MCU_SERIAL


def test_the_mcu_gets_the_stable_name_and_modemmanager_ignores_it() -> None:
    result = evaluate(load(RULES), mcu_walk())
    assert result.symlinks == ["skelly-mcu"]
    assert result.env.get("ID_MM_DEVICE_IGNORE") == "1"
    assert result.group == "dialout"
    assert result.mode == "0660"


def test_pinned_to_the_boards_serial_it_still_matches_and_another_board_does_not() -> None:
    text = RULES.read_text()
    assert 'ATTRS{serial}=="*"' in text  # install.sh --mcu-serial replaces exactly this
    pinned = parse_rules(text.replace('ATTRS{serial}=="*"', f'ATTRS{{serial}}=="{MCU_SERIAL}"'))
    assert evaluate(pinned, mcu_walk()).symlinks == ["skelly-mcu"]
    other = parse_rules(text.replace('ATTRS{serial}=="*"', 'ATTRS{serial}=="0123456789ABCDEF"'))
    assert evaluate(other, mcu_walk()).symlinks == []


def test_a_pico_running_micropython_matches_too() -> None:
    # the project's own firmware (docs/FIRMWARE.md) enumerates as MicroPython's 2e8a:0005
    walk = mcu_walk()
    walk[2].attrs.update(idProduct="0005", product="Board in FS mode", manufacturer="MicroPython")
    result = evaluate(load(RULES), walk)
    assert result.symlinks == ["skelly-mcu"]
    assert result.env.get("ID_MM_DEVICE_IGNORE") == "1"


def test_other_serial_devices_are_left_alone() -> None:
    # the same walk as an FTDI USB-serial adapter (0403:6001) on the same port
    walk = mcu_walk()
    walk[2].attrs.update(idVendor="0403", idProduct="6001", serial="A10K4XYZ")
    result = evaluate(load(RULES), walk)
    assert result.symlinks == []
    assert "ID_MM_DEVICE_IGNORE" not in result.env
    # and the serial number of the USB host controller (a parent) is not the board's
    assert evaluate(load(RULES), mcu_walk()[1:]).symlinks == []


def test_gpio_chips_go_to_group_gpio_and_the_mcu_rule_does_not_touch_them() -> None:
    result = evaluate(load(RULES), gpio_walk())
    assert (result.group, result.mode, result.symlinks) == ("gpio", "0660", [])


# each mistake someone could make while editing the rule
TYPOS = [
    ('ATTRS{idVendor}=="2e8a"', 'ATTR{idVendor}=="2e8a"'),  # own attribute: the tty has none
    ('ATTRS{idVendor}=="2e8a"', 'ATTRS{idVendor}=="2e8b"'),
    ('ATTRS{idProduct}=="0005|000a"', 'ATTRS{idproduct}=="0005|000a"'),
    ('ATTRS{idProduct}=="0005|000a"', 'ATTRS{idProduct}=="0005,000a"'),
    ('SUBSYSTEMS=="usb"', 'SUBSYSTEM=="usb"'),  # the tty itself is not usb
    ('SUBSYSTEM=="tty"', 'SUBSYSTEM="tty"'),  # an assignment, refused by udev
    ('SYMLINK+="skelly-mcu"', 'SYMLINKS+="skelly-mcu"'),
    ('SYMLINK+="skelly-mcu"', 'SYMLINK=="skelly-mcu"'),
    ('ENV{ID_MM_DEVICE_IGNORE}="1"', 'ENV{ID_MM_DEVICE_IGNORED}="1"'),
    ('ENV{ID_MM_DEVICE_IGNORE}="1"', 'ENV{ID_MM_DEVICE_IGNORE}=="1"'),
    ('MODE="0660"', 'MODE="0660'),
    ('MODE="0660", ', 'MODE="0660" '),
]


@pytest.mark.parametrize(("good", "bad"), TYPOS)
def test_a_typo_in_the_rule_fails(good: str, bad: str) -> None:
    text = RULES.read_text()
    assert good in text
    try:
        result = evaluate(parse_rules(text.replace(good, bad, 1)), mcu_walk())
    except RuleError:
        return
    assert not (
        result.symlinks == ["skelly-mcu"]
        and result.env.get("ID_MM_DEVICE_IGNORE") == "1"
        and result.group == "dialout"
        and result.mode == "0660"
    ), bad
