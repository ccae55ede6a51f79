"""Sans-I/O core of the figurine protocol: bytes in, events out; time is passed in, never read.

``framing`` (COBS + CRC-32 frames), ``messages`` (one dataclass per message, byte layout) and
``protocol`` (the host and MCU state machines).  docs/PROTOCOL.md is the wire-format contract.
"""
