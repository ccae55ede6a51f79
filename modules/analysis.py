"""AnalysisEngine: features per window and the focus-state classifier.

Placeholder: registers with the bus and says so; the real module lands with its issue.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus import ModuleId
from modules.base import Module


@dataclass(frozen=True)
class AnalysisConfig:
    pass


class AnalysisEngine(Module):
    name = ModuleId.ANALYSIS
    placeholder = True

    def __init__(self, config: AnalysisConfig | None = None) -> None:
        super().__init__()
        self.config = config or AnalysisConfig()
