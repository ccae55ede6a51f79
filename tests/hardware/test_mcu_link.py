"""On-device check of the real figurine MCU (opt-in: SKELLY_HARDWARE=1 on a Pi with the MCU on
SKELLY_MCU_URL, default /dev/serial/by-id/usb-skelly-figurine-if00).  Not run in CI: without the
variable every test here is reported as skipped, never as passed."""

from __future__ import annotations

import asyncio
import os

import pytest

from firmware_bridge.core.protocol import HostProtocol, Timing
from firmware_bridge.link import SerialLink, SerialLinkConfig

pytestmark = pytest.mark.hardware

URL = os.environ.get("SKELLY_MCU_URL", SerialLinkConfig().url)
BAUD = int(os.environ.get("SKELLY_MCU_BAUD", "115200"))


def test_real_mcu_handshakes_and_takes_the_full_state() -> None:
    async def main() -> None:
        protocol = HostProtocol(Timing.for_baud(BAUD))
        async with SerialLink(URL, BAUD, protocol) as link:
            await link.wait_up(timeout=10)
            protocol.set_glow(0, 190, 170, 0.6, pulse_s=6.0, pulse_depth=0.3)
            protocol.set_pose(0.2, ease_s=1.0)
            protocol.show_text("hello from the Pi")
            link.wakeup()
            for _ in range(100):
                if protocol.in_sync:
                    break
                await asyncio.sleep(0.05)
            assert protocol.in_sync, link.stats()
            assert link.stats()["crc_errors"] == 0

    asyncio.run(main())
