"""The host ingest protocol (docs/INGEST.md), both ends' shared parts and the reference client.

Theory of operation
-------------------
A host streams newline-delimited JSON to the Pi: one hello line (host, session, token, protocol
version), then events, each with a sequence number; the Pi answers with a welcome carrying the
resume point and then cumulative ``{"ack": N}`` lines once the events are durably stored.  The
server is :class:`modules.data_capture.DataCapture` (the connection state machine, sequence order,
limits, the group commit through Storage); this package holds the rest:

* ``framing`` — :class:`~modules.ingest.framing.LineSplitter`, line framing with a hard length
  limit that never buffers an overlong line (sans-I/O).
* ``validate`` — pure validation of one line: bytes in, a ``RawEvent`` (or a hello) or an
  ``IngestError`` out; no I/O, no clock, no state.  Also the protocol constants and categories.
* ``token`` — the pre-shared token: created once with mode 0600, compared in constant time.
* ``client`` — :class:`~modules.ingest.client.IngestClient`, the host side: connect, hello, send,
  track acks, resume after a reconnect, with an optional locked :class:`Spool` (``skelly send``,
  ``skelly capture`` and the simulated host use it).

Nothing is re-exported: callers import from the part they use, so the pure parts (``validate``,
``framing``) stay as light to import as they are.
"""
