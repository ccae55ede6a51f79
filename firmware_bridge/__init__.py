"""Everything that touches the figurine hardware.

``firmware_bridge.core`` is the sans-I/O protocol (framing, messages, host/MCU state machines; see
docs/PROTOCOL.md); the asyncio serial shell lives in ``firmware_bridge.link``.  The names most users
need are re-exported here; importing this package does not import any I/O library.
"""

from firmware_bridge.core import (
    PROTOCOL_VERSION,
    BridgeError,
    Capabilities,
    DecodeError,
    FramingError,
    HostProtocol,
    McuProtocol,
    MessageError,
    Timing,
)

__all__ = [
    "PROTOCOL_VERSION",
    "BridgeError",
    "Capabilities",
    "DecodeError",
    "FramingError",
    "HostProtocol",
    "McuProtocol",
    "MessageError",
    "Timing",
]
