"""AI: turns intervention requests into short kind messages and animation cues.

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class AIConfig:
    pass


class AI(Module):
    name = ModuleId.AI
    placeholder = True

    def __init__(self, config: AIConfig | None = None) -> None:
        super().__init__()
        self.config = config or AIConfig()
