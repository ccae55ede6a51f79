"""The asyncio serial link against the simulated MCU on a REAL pty, under uvloop and asyncio.

Every test runs twice through the ``run`` fixture (uvloop and the stock loop). Waits are
event-driven (``SimulatedMcu.wait_until``, link status events) with generous timeouts; the only
timed assertions are the "re-synced within 2 s after the port returns" bounds the issue asks for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from bus.messages import LinkStatus
from firmware_bridge.core.messages import Face, Hello, HelloReply, InputKind, SetGlow, Tone
from firmware_bridge.core.protocol import (
    SLEEPY_IDLE,
    Acked,
    Event,
    HostProtocol,
    InputReceived,
    Slot,
    Timing,
)
from firmware_bridge.link import (
    LinkState,
    PortUnsupportedError,
    SerialLink,
    SerialLinkConfig,
    open_port,
)
from firmware_bridge.link_pacing import Backoff
from hw_sim.mcu import Faults, SimulatedMcu

Run = Callable[[Coroutine[Any, Any, Any]], Any]


class Statuses:
    """Collects LinkStatus callbacks and lets a test wait for the next up/down."""

    def __init__(self) -> None:
        self.seen: list[LinkStatus] = []
        self._changed = asyncio.Event()

    def __call__(self, status: LinkStatus) -> None:
        self.seen.append(status)
        self._changed.set()

    async def wait(self, up: bool, after: int = 0, timeout: float = 5.0) -> LinkStatus:
        async with asyncio.timeout(timeout):
            while True:
                for status in self.seen[after:]:
                    if status.up is up:
                        return status
                self._changed.clear()
                await self._changed.wait()


def in_sync(mcu: SimulatedMcu, host: HostProtocol) -> Callable[[], bool]:
    return lambda: mcu.in_session and mcu.visible == host.desired


def paint(host: HostProtocol, i: int) -> None:
    host.set_glow(i % 256, (7 * i) % 256, 200, 0.8, pulse_s=1.5)
    host.set_pose((i % 11) / 10, ease_s=0.4)
    host.show_text(f"focus {i}", Face.FOCUSED)
    host.set_brightness(0.9)


def test_handshake_then_state_reaches_the_figurine_and_the_tap_sees_both_ways(run: Run) -> None:
    async def main() -> None:
        frames: list[tuple[str, int | None, object]] = []
        raw: list[tuple[str, bytes]] = []
        acked = asyncio.Event()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            link = SerialLink(
                str(mcu.path),
                115200,
                host,
                on_event=lambda e: acked.set() if isinstance(e, Acked) and host.in_sync else None,
                tap=lambda d, _t, seq, msg: frames.append((d, seq, msg)),
                raw_tap=lambda d, _t, data: raw.append((d, data)),
            )
            async with link:
                await link.wait_up(timeout=5)
                assert link.state is LinkState.UP
                paint(host, 3)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert mcu.visible.text.text == "focus 3"
                assert mcu.visible.glow == SetGlow(3, 21, 200, 204, 1500, 0, 0)
                async with asyncio.timeout(5):
                    await acked.wait()  # every slot acknowledged back to the host
            assert link.state is LinkState.CLOSED
            open_port(str(mcu.path), 115200).close()  # the link let go of the port
        hello = next(f for f in frames if f[0] == "tx")
        assert isinstance(hello[2], Hello)
        reply = next(f[2] for f in frames if f[0] == "rx" and isinstance(f[2], HelloReply))
        assert reply.reply_to == hello[1]
        assert any(isinstance(f[2], SetGlow) and f[0] == "tx" for f in frames)
        assert sum(len(d) for direction, d in raw if direction == "tx") == link.counters.bytes_out
        stats = link.stats()
        assert stats["frames_out"] >= 5 and stats["acks_in"] == 4
        assert stats["sessions"] == 1 and stats["port_opens"] == 1 and stats["reconnects"] == 0

    run(main())


def test_unplug_replug_reconnects_and_resyncs_within_2s_of_the_port_returning(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        statuses = Statuses()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host, on_status=statuses) as link:
                paint(host, 1)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                for round_ in range(2):
                    n = len(statuses.seen)
                    mcu.unplug()
                    down = await statuses.wait(up=False, after=n)
                    assert "unplugged" in down.detail
                    paint(host, 10 + round_)  # the app keeps changing its mind meanwhile
                    link.wakeup()
                    # stay away long enough for the backoff to reach its cap (1 s)
                    await asyncio.sleep(1.5)
                    assert link.state in (LinkState.BACKOFF, LinkState.OPENING)
                    mcu.replug()  # a USB replug power-cycles the MCU: it boots blank
                    returned = loop.time()
                    await mcu.wait_until(in_sync(mcu, host), timeout=5)
                    assert loop.time() - returned <= 2.0
                    assert mcu.visible.text.text == f"focus {10 + round_}"
                assert link.counters.port_losses == 2
                assert link.counters.reconnects == 2
                assert link.counters.open_failures >= 2  # it really retried a missing path
                assert [s.up for s in statuses.seen] == [True, False, True, False, True]

    run(main())


def test_mcu_reset_with_its_boot_frame_lost_is_noticed_and_resynced_within_2s(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host) as link:
                paint(host, 5)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                resets_before = host.counters.peer_resets
                mcu.reset(lose_boot_frame=True)
                reset_at = loop.time()
                assert mcu.visible == SLEEPY_IDLE  # rebooted, no session yet
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert loop.time() - reset_at <= 2.0
                assert mcu.fault_counters.frames_lost_to_reset == 1
                assert host.counters.peer_resets == resets_before + 1  # via NACK NOT_READY
                assert link.counters.port_losses == 0  # same port, no reopen needed
                assert link.counters.reconnects == 1

    run(main())


def test_a_stalled_mcu_is_declared_dead_the_port_reopened_and_state_resynced(run: Run) -> None:
    async def main() -> None:
        statuses = Statuses()
        timing = Timing(heartbeat_s=0.1)  # dead after 0.35 s of silence
        async with SimulatedMcu(timing=timing) as mcu:
            host = HostProtocol(timing)
            link = SerialLink(str(mcu.path), 115200, host, on_status=statuses, reopen_after=0.3)
            async with link:
                paint(host, 2)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                mcu.stall(1.5)
                down = await statuses.wait(up=False, timeout=3)
                assert "no frame from the MCU" in down.detail
                await mcu.wait_until(lambda: not mcu.stalled, timeout=5)
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert host.counters.dead_links == 1
                assert link.counters.reopens >= 1  # silent while handshaking: port reopened
                assert link.counters.port_losses == 0

    run(main())


def test_9600_baud_under_10x_offered_load_stays_bounded_and_ends_in_the_newest_state(
    run: Run,
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        baud = 9600
        timing = Timing.for_baud(baud)
        async with SimulatedMcu(baud=baud, timing=timing) as mcu:
            host = HostProtocol(timing)
            async with SerialLink(str(mcu.path), baud, host) as link:
                await link.wait_up(timeout=5)
                start_bytes = link.counters.bytes_out
                rate = baud / 10
                start = loop.time()
                # capacity: 960 B/s / (20 B SET_GLOW + 15 B SET_POSE) ~ 27 glow+pose pairs/s;
                # offered: 8 pairs every 10 ms ~ 800 pairs/s nominal (~29x), and more when the
                # loop is slow (a busy machine): always >= 12x up to the next turn's due time
                commands = 0
                worst = 0
                while (now := loop.time() - start) < 2.0:
                    offered_until = now + 0.01
                    for _ in range(max(8, int(12 * rate * offered_until / (20 + 15)) - commands)):
                        commands += 1
                        host.set_glow(commands % 256, 255 - commands % 256, 9, 0.5)
                        host.set_pose((commands % 100) / 100)
                    link.wakeup()
                    worst = max(worst, link.buffered_bytes)
                    await asyncio.sleep(0.01)
                elapsed = loop.time() - start
                final = host.desired
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert mcu.visible == final  # the newest state, not an older one
                sent = link.counters.bytes_out - start_bytes
                assert commands >= 10 * rate * offered_until / (20 + 15)  # offered >= 10x
                # the link never ran ahead of the wire and never held more than a burst itself
                assert sent <= rate * elapsed + 2 * 255 + 64
                assert worst <= 2 * 255
                assert link.counters.max_buffered_bytes <= 2 * 255
                assert host.counters.superseded > commands  # coalesced, not queued
                assert mcu.protocol.counters.frames_in < commands / 4

    run(main())


def test_corruption_drops_and_duplicates_both_ways_still_converge(run: Run) -> None:
    async def main() -> None:
        faults = Faults(corrupt_rate=0.01, drop_rate=0.005, duplicate_rate=0.2)
        events: list[Event] = []
        got_input = asyncio.Event()

        def on_event(event: Event) -> None:
            events.append(event)
            if isinstance(event, InputReceived):
                got_input.set()

        async with SimulatedMcu(faults=faults, seed=1234) as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host, on_event=on_event) as link:
                for i in range(30):
                    paint(host, i)
                    link.wakeup()
                    if i % 10 == 0:
                        mcu.press(InputKind.SHORT_PRESS)
                    await asyncio.sleep(0.02)
                await mcu.wait_until(in_sync(mcu, host), timeout=10)
                assert mcu.visible.text.text == "focus 29"
                fc = mcu.fault_counters
                assert fc.corrupted > 0 and fc.dropped > 0 and fc.duplicated > 0
                assert host.counters.crc_errors + mcu.protocol.counters.crc_errors > 0
                assert host.counters.retransmits > 0
                # button presses arrive, each exactly once, despite duplicated frames: stop the
                # damage (duplicates go on) so that no press can run out of its 5 s of retries
                faults.corrupt_rate = faults.drop_rate = 0.0
                async with asyncio.timeout(5):
                    while len([e for e in events if isinstance(e, InputReceived)]) < 3:
                        got_input.clear()
                        await got_input.wait()
                await asyncio.sleep(0.5)  # a duplicate reported late would show up by now
                inputs = [e for e in events if isinstance(e, InputReceived)]
                assert len({e.seq for e in inputs}) == len(inputs) == 3

    run(main())


def test_a_url_without_file_descriptor_fails_run_with_a_clear_error(run: Run) -> None:
    async def main() -> None:
        link = SerialLink("loop://", 115200, HostProtocol(), backoff=Backoff(0.01, 0.02))
        with pytest.raises(PortUnsupportedError, match="file descriptor"):
            await link.run()
        assert link.state is LinkState.CLOSED

    run(main())


def test_bad_settings_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match=r"serial\.url"):
        SerialLink("", 115200, HostProtocol())
    with pytest.raises(ValueError, match="baud"):
        SerialLink("/dev/ttyACM0", 0, HostProtocol())


def test_link_started_before_the_device_exists_connects_when_it_appears(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        statuses = Statuses()
        mcu = SimulatedMcu()
        host = HostProtocol()
        host.set_glow(0, 200, 80)
        async with SerialLink(str(mcu.path), 115200, host, on_status=statuses) as link:
            await asyncio.sleep(0.4)  # the service booted before the figurine was plugged in
            assert link.state in (LinkState.BACKOFF, LinkState.OPENING)
            assert "does not exist" in link.last_error and link.counters.open_failures >= 2
            async with mcu:
                plugged = loop.time()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert loop.time() - plugged <= 2.0
        assert [s.up for s in statuses.seen] == [True, False]
        assert statuses.seen[-1].detail == "link stopped"

    run(main())


def test_cancelling_the_link_task_in_a_taskgroup_releases_the_port(run: Run) -> None:
    async def main() -> None:
        timing = Timing(heartbeat_s=0.1)
        async with SimulatedMcu(timing=timing) as mcu:
            link = SerialLink(str(mcu.path), 115200, HostProtocol(timing))
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0), asyncio.TaskGroup() as tg:
                    task = tg.create_task(link.run(), name="serial-link[mcu]")
                    await link.wait_up(timeout=5)
                    assert task.get_name() == "serial-link[mcu]"
                    await asyncio.sleep(5)  # cancelled by the timeout, like a service shutdown
            assert task.cancelled()
            assert link.state is LinkState.CLOSED
            assert link.buffered_bytes == 0
            open_port(str(mcu.path), 115200).close()  # nobody holds the port any more
            await mcu.wait_until(lambda: not mcu.in_session, timeout=5)  # MCU notices silence

    run(main())


def test_incompatible_firmware_is_reported_and_not_hammered_with_reopens(run: Run) -> None:
    async def main() -> None:
        statuses = Statuses()
        async with SimulatedMcu(proto=(2, 3), fw_version=(2, 1, 0)) as mcu:
            host = HostProtocol()
            link = SerialLink(str(mcu.path), 115200, host, on_status=statuses, reopen_after=0.2)
            async with link:
                down = await statuses.wait(up=False, timeout=5)
                assert "firmware 2.1.0 speaking protocol 2..3" in down.detail
                assert "flash matching firmware" in down.detail
                await asyncio.sleep(0.6)  # three reopen periods
                assert link.counters.reopens == 0 and link.counters.port_opens == 1
                assert not mcu.in_session

    run(main())


def test_link_from_config_uses_its_backoff_and_reopen_settings(run: Run) -> None:
    with pytest.raises(ValueError, match=r"serial\.url is empty"):
        SerialLinkConfig(url="")
    with pytest.raises(ValueError, match="base=2"):
        SerialLinkConfig(backoff_base_s=2.0, backoff_cap_s=1.0)

    async def main() -> None:
        async with SimulatedMcu() as mcu:
            config = SerialLinkConfig(url=str(mcu.path), baud=230400, backoff_cap_s=0.2)
            host = HostProtocol()
            link = SerialLink.from_config(config, host)
            assert (link.baud, link.backoff.cap, link.reopen_after) == (230400, 0.2, 5.0)
            async with link:
                await link.wait_up(timeout=5)
                with pytest.raises(RuntimeError, match="already running"):
                    await link.run()
                assert link.is_up  # the refused second run did not disturb the first

    run(main())


def test_a_write_attempt_on_an_unplugged_port_is_a_port_loss_not_a_loop_error(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        statuses = Statuses()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host, on_status=statuses) as link:
                await link.wait_up(timeout=5)
                n = len(statuses.seen)
                mcu.unplug()
                paint(host, 4)  # the app changes state before the link has read the EIO
                link.wakeup()
                down = await statuses.wait(up=False, after=n)
                assert "unplugged" in down.detail
                assert link.counters.port_losses == 1
        assert errors == []

    run(main())


def test_callbacks_that_raise_do_not_wedge_the_link(run: Run) -> None:
    # an application callback raising inside the link's timer used to skip rearming the timer:
    # after a dead link the HELLO was never sent again and the link stayed down for good
    async def main() -> None:
        def broken(_arg: object, *_rest: object) -> None:
            raise RuntimeError("a bug in the application's callback")

        timing = Timing(heartbeat_s=0.1)
        async with SimulatedMcu(timing=timing) as mcu:
            host = HostProtocol(timing)
            link = SerialLink(
                str(mcu.path),
                115200,
                host,
                on_event=broken,
                on_status=broken,
                tap=broken,
                raw_tap=broken,
                reopen_after=0.3,
            )
            async with link:
                paint(host, 6)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                mcu.stall(1.0)
                await mcu.wait_until(lambda: not mcu.stalled, timeout=5)
                await link.wait_up(timeout=5)
                assert host.counters.dead_links >= 1
                paint(host, 7)
                link.wakeup()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)

    run(main())


def test_a_tone_requested_while_the_port_is_closed_is_dropped_after_2_s(run: Run) -> None:
    # PROTOCOL.md §6.2: a one-shot not acknowledged within 2 s of being requested is dropped; a
    # tone asked for through the link while unplugged was timed from the reconnect and played late
    async def main() -> None:
        statuses = Statuses()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host, on_status=statuses) as link:
                await link.wait_up(timeout=5)
                mcu.unplug()
                await statuses.wait(up=False)
                link.command(Tone(880, 100))  # stale by the time the port returns
                link.command(SetGlow(1, 2, 3))  # state is delivered whenever it is
                await asyncio.sleep(2.2)  # longer on a loaded machine only makes it staler
                mcu.replug()
                await mcu.wait_until(in_sync(mcu, host), timeout=5)
                assert host.slot_phase(Slot.TONE) == "clean"
                link.command(Tone(440, 100))  # a fresh one on a live link plays
                await mcu.wait_until(lambda: bool(mcu.tones), timeout=5)
        assert mcu.tones == [Tone(440, 100)]
        assert host.counters.oneshots_expired == 1

    run(main())


def test_an_unplug_is_logged_once(run: Run, caplog: pytest.LogCaptureFixture) -> None:
    # the reason a session ended was logged twice ("down: X" and then "X"), one after the other
    async def main() -> None:
        statuses = Statuses()
        async with SimulatedMcu() as mcu:
            host = HostProtocol()
            async with SerialLink(str(mcu.path), 115200, host, on_status=statuses) as link:
                await link.wait_up(timeout=5)
                mcu.unplug()
                # the link notes why the session ended in the same step as it reports it down
                await statuses.wait(up=False)
                assert link.last_error.endswith("closed (unplugged?)")

    with caplog.at_level(logging.WARNING, logger="firmware_bridge.link"):
        run(main())
    closed = [r for r in caplog.records if "closed (unplugged?)" in r.getMessage()]
    assert len(closed) == 1, [r.getMessage() for r in caplog.records]
