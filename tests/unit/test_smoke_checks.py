"""``skelly smoke``'s checklist logic and the checks that need nobody (docs/SMOKE.md §1, §2, §6):
real files, a real SQLite database, real sockets."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from pathlib import Path

import pytest

from modules.data_capture import IngestConfig
from modules.storage.db import open_database
from skelly.config import Config
from skelly.errors import describe_device_error
from skelly.smoke import Checklist, Item, Status
from skelly.smoke.checks import (
    Service,
    check_data_dir,
    check_database,
    check_ingest,
    running_service,
)


def test_exit_status_is_1_only_when_something_failed() -> None:
    c = Checklist()
    c.passed("a", "ok")
    c.skipped("b", "not configured")
    assert c.exit_code == 0
    c.failed("c", "broken", "fix it")
    assert c.exit_code == 1
    assert c.summary() == "summary: 1 passed, 1 failed, 1 skipped"
    assert c.as_dict()["exit"] == 1


def test_a_failure_needs_a_hint_and_the_hint_is_printed_under_it() -> None:
    with pytest.raises(ValueError, match="without a hint"):
        Item("x", Status.FAIL, "broken")
    c = Checklist()
    c.failed("servo", "did not move", "power it from 5 V")
    c.passed("glow", "seen")
    lines = c.render()
    assert lines[1] == "  FAIL  servo  did not move"
    assert lines[2] == "        hint: power it from 5 V"
    assert lines[3] == "  PASS  glow   seen"


def test_data_dir_writable_leaves_nothing_behind(tmp_path: Path) -> None:
    c = Checklist()
    assert check_data_dir(c, tmp_path)
    item = c.items[0]
    assert item.status is Status.PASS and "writable (write+fsync+delete)" in item.detail
    assert "free" in item.detail
    assert list(tmp_path.iterdir()) == []


def test_data_dir_under_a_regular_file_fails_naming_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    c = Checklist()
    assert not check_data_dir(c, blocker / "data")
    item = c.items[0]
    assert item.status is Status.FAIL
    assert f"{blocker} is a file, not a directory" in item.detail
    assert "data_dir" in item.hint


def test_data_dir_not_there_yet_passes_when_it_can_be_created(tmp_path: Path) -> None:
    c = Checklist()
    assert check_data_dir(c, tmp_path / "later" / "data")
    assert c.items[0].status is Status.PASS and "does not exist yet" in c.items[0].detail
    assert not (tmp_path / "later").exists()  # not created by the smoke test


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_database_quick_check_passes_read_only_without_changing_a_byte(tmp_path: Path) -> None:
    db, _ = open_database(tmp_path)
    db.close()
    before = _digest(tmp_path)
    c = Checklist()
    check_database(c, tmp_path, Config())
    assert c.items[0].status is Status.PASS, c.items[0]
    assert "quick_check ok" in c.items[0].detail
    assert _digest(tmp_path) == before


def test_damaged_database_fails_with_the_service_s_recovery_as_hint(tmp_path: Path) -> None:
    db, _ = open_database(tmp_path)
    db.close()
    path = tmp_path / "skelly.db"
    data = bytearray(path.read_bytes())
    data[3 * 4096 :] = b"\xff" * (len(data) - 3 * 4096)  # garble every table's b-tree pages
    path.write_bytes(bytes(data))
    before = _digest(tmp_path)
    c = Checklist()
    check_database(c, tmp_path, Config())
    item = c.items[0]
    assert item.status is Status.FAIL, item
    assert "moves a damaged database aside" in item.hint
    assert _digest(tmp_path) == before


def test_no_database_is_skipped(tmp_path: Path) -> None:
    c = Checklist()
    check_database(c, tmp_path, Config())
    assert c.items[0].status is Status.SKIP


def _listener() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, int(s.getsockname()[1])


def test_ingest_port_free_passes_and_busy_fails_with_ss_hint() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    c = Checklist()
    check_ingest(c, IngestConfig(host="127.0.0.1", port=free), None)
    assert c.items[0].status is Status.PASS and "can be bound" in c.items[0].detail
    server, port = _listener()
    with server:
        c = Checklist()
        check_ingest(c, IngestConfig(host="127.0.0.1", port=port), None)
        item = c.items[0]
        assert item.status is Status.FAIL and "in use by another process" in item.detail
        assert f"ss -ltnp 'sport = :{port}'" in item.hint
        c = Checklist()
        check_ingest(c, IngestConfig(host="127.0.0.1", port=port), Service(4242, "test"))
        item = c.items[0]
        assert item.status is Status.PASS
        assert "served by the running service (pid 4242" in item.detail


def test_ingest_on_an_address_of_another_machine_fails() -> None:
    c = Checklist()
    check_ingest(c, IngestConfig(host="192.0.2.1", port=7878), None)  # TEST-NET-1
    assert (
        c.items[0].status is Status.FAIL and "not an address of this machine" in c.items[0].detail
    )


def test_ingest_disabled_is_skipped() -> None:
    c = Checklist()
    check_ingest(c, IngestConfig(enabled=False), None)
    assert c.items[0].status is Status.SKIP


def test_running_service_found_by_its_control_socket_and_its_database_lock(
    tmp_path: Path,
) -> None:
    assert running_service(tmp_path, Config()) is None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "control.sock"))
        server.listen()
        found = running_service(tmp_path, Config())
        assert found is not None and found.pid == os.getpid()
    os.unlink(tmp_path / "control.sock")
    db, _ = open_database(tmp_path)  # no lock yet: a tool's open, not a service
    db.close()
    from modules.storage import acquire_lock, lock_file, release_lock

    fd = acquire_lock(tmp_path / "skelly.db")
    try:
        found = running_service(tmp_path, Config())
        assert found is not None and found.pid == os.getpid()
        assert str(lock_file(tmp_path / "skelly.db")) in found.how
    finally:
        release_lock(fd)
    assert running_service(tmp_path, Config()) is None


@pytest.mark.parametrize(
    ("exc", "device", "serial", "words"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "/dev/gpiochip0", False,
         "permission denied on /dev/gpiochip0: is the user in group gpio?"),
        (PermissionError(errno.EACCES, "Permission denied"), "/dev/ttyACM0", True,
         "is the user in group dialout?"),
        (FileNotFoundError(errno.ENOENT, "No such file"), "/dev/ttyACM0", True,
         "/dev/ttyACM0 missing: is the MCU plugged in?"),
        (OSError(errno.EBUSY, "busy"), "/dev/skelly-mcu", True,
         "stop the service first: `sudo systemctl stop skelly`; otherwise ModemManager"),
        (ImportError("No module named 'lgpio'"), "/dev/gpiochip0", False, "pi extra"),
    ],
)  # fmt: skip
def test_device_hints(exc: BaseException, device: str, serial: bool, words: str) -> None:
    assert words in describe_device_error(exc, device, serial=serial)
