"""Errors of the firmware-bridge core.  Each mixes in the built-in it behaves like (gpiozero style),
so callers can catch ``ValueError`` without knowing the project's hierarchy."""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every firmware-bridge error."""


class FramingError(BridgeError, ValueError):
    """A payload cannot be framed (too long).  Received garbage never raises: it is counted."""


class MessageError(BridgeError, ValueError):
    """A message was built with a field out of range; the text says which field and what fits."""


class DecodeError(BridgeError, ValueError):
    """A received payload is not a valid message.

    ``reason`` is the NACK reason code (``NackReason``) the receiver should answer with;
    ``msg_type``, ``flags`` and ``seq`` are the header fields when the header could be read (else
    ``None``/0), so a receiver can NACK the frame.
    """

    def __init__(
        self,
        message: str,
        reason: int,
        msg_type: int | None = None,
        flags: int = 0,
        seq: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.msg_type = msg_type
        self.flags = flags
        self.seq = seq


class ProtocolStateError(BridgeError, RuntimeError):
    """A local call is not allowed in the protocol's current state (a bug in the caller)."""


class BaudRateError(BridgeError, ValueError):
    """A baud rate that is not a positive whole number of bits per second."""
