"""DataCapture: the host ingest server (docs/INGEST.md).

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class IngestConfig:
    pass


class DataCapture(Module):
    name = ModuleId.DATA_CAPTURE
    placeholder = True

    def __init__(self, config: IngestConfig | None = None) -> None:
        super().__init__()
        self.config = config or IngestConfig()
