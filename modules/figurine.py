"""CuteFigurine: mood, melt and glow of the figurine, driven over GPIO and the MCU link.

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class FigurineConfig:
    pass


class CuteFigurine(Module):
    name = ModuleId.FIGURINE
    placeholder = True

    def __init__(self, config: FigurineConfig | None = None) -> None:
        super().__init__()
        self.config = config or FigurineConfig()
