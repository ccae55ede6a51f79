"""Storage: durable SQLite store of events and aggregates.

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class StorageConfig:
    pass


class Storage(Module):
    name = ModuleId.STORAGE
    placeholder = True

    def __init__(self, config: StorageConfig | None = None) -> None:
        super().__init__()
        self.config = config or StorageConfig()
