"""``skelly capture``: the host-side capture agent (docs/CAPTURE.md).

Layers, each testable on its own:

* :mod:`skelly.capture.taps` — the callbacks the input library (pynput) calls on its listener
  threads.  A key is reduced to *(time, is-correction)* inside the callback; nothing else about
  it goes further.
* :mod:`skelly.capture.summariser` — a pure core (no clock, no I/O, no threads): input facts in,
  INGEST events (docs/INGEST.md §4) out.
* :mod:`skelly.capture.categories` — application id → category and opaque app id (keyed hash).
* :mod:`skelly.capture.focus` — the focused application per platform.
* :mod:`skelly.capture.agent` — the asyncio side: drains the summariser into the existing
  :class:`modules.ingest.client.IngestClient` (spool, resume, TLS), serves the control socket.
"""
