"""Opening ports: clear, typed errors for missing, busy and fd-less ports, on a real pty."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from firmware_bridge.core.errors import BridgeError
from firmware_bridge.link import (
    PortBusyError,
    PortMissingError,
    PortUnsupportedError,
    open_port,
)
from hw_sim.pty import VirtualSerialPort


def test_missing_port_says_to_plug_in_and_check_by_id(tmp_path: Path) -> None:
    with pytest.raises(PortMissingError) as info:
        open_port(str(tmp_path / "nope"), 115200)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, BridgeError)
    assert info.value.errno == errno.ENOENT
    assert "/dev/serial/by-id" in str(info.value)


def test_busy_port_names_the_console_as_the_way_to_share() -> None:
    with VirtualSerialPort() as vport:
        first = open_port(str(vport.path), 115200)
        try:
            with pytest.raises(PortBusyError) as info:
                open_port(str(vport.path), 115200)
            assert isinstance(info.value, OSError)
            assert "in use by another program" in str(info.value)
            assert "skelly console" in str(info.value)
        finally:
            first.close()
        open_port(str(vport.path), 115200).close()  # free again once the holder closed it


def test_loop_url_is_refused_because_asyncio_needs_a_file_descriptor() -> None:
    with pytest.raises(PortUnsupportedError, match="file descriptor") as info:
        open_port("loop://", 115200)
    assert isinstance(info.value, ValueError)


def test_unknown_scheme_is_refused_with_what_to_use() -> None:
    with pytest.raises(PortUnsupportedError, match="device path"):
        open_port("bogus://x", 115200)


def test_unplugged_virtual_port_is_missing_and_replug_keeps_the_path() -> None:
    with VirtualSerialPort() as vport:
        first_pts = vport.slave_name
        vport.unplug()
        with pytest.raises(PortMissingError):
            open_port(str(vport.path), 115200)
        vport.plug()
        assert vport.path.resolve() == Path(vport.slave_name)
        assert vport.plug_count == 2
        open_port(str(vport.path), 115200).close()
        assert first_pts  # the kernel named the first pty too


def test_virtual_port_refuses_to_replace_a_real_file(tmp_path: Path) -> None:
    target = tmp_path / "not-a-link"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="choose another --link path"):
        VirtualSerialPort(target).plug()
    assert target.read_text() == "precious"


def test_virtual_port_in_a_missing_directory_says_so_and_leaks_no_descriptor(
    tmp_path: Path,
) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with pytest.raises(FileNotFoundError, match=r"directory .* does not exist"):
            VirtualSerialPort(tmp_path / "no-such-dir" / "mcu").plug()
    assert len(os.listdir("/proc/self/fd")) == before
