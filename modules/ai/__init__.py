"""AI: turns intervention requests into short kind messages and animation cues, offline.

``templates`` (the bank and the cues), ``filter`` (the tone filter every message passes),
``writer`` (choice, variables, no repeats), ``llm`` (the optional OpenAI-compatible LAN endpoint
with its timeout and circuit breaker), ``module`` (the bus shell), ``config`` (``[ai]``).
Rules and numbers: docs/COMPANION.md.
"""

from modules.ai.config import AIConfig
from modules.ai.module import AI

__all__ = ["AI", "AIConfig"]
