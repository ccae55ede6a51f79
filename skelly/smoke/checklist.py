"""The checklist: one item per check, PASS / FAIL / SKIP, a hint per failure (docs/SMOKE.md §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

EXIT_PASSED = 0
EXIT_FAILED = 1


class Status(Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass
class Item:
    name: str
    status: Status
    detail: str
    hint: str = ""

    def __post_init__(self) -> None:
        if self.status is Status.FAIL and not self.hint:
            raise ValueError(f"smoke item {self.name!r} failed without a hint")

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "hint": self.hint,
        }


@dataclass
class Checklist:
    items: list[Item] = field(default_factory=list)

    def add(self, item: Item) -> Item:
        self.items.append(item)
        return item

    def passed(self, name: str, detail: str) -> Item:
        return self.add(Item(name, Status.PASS, detail))

    def failed(self, name: str, detail: str, hint: str) -> Item:
        return self.add(Item(name, Status.FAIL, detail, hint))

    def skipped(self, name: str, reason: str) -> Item:
        return self.add(Item(name, Status.SKIP, reason))

    def get(self, name: str) -> Item | None:
        for item in self.items:
            if item.name == name:
                return item
        return None

    def count(self, status: Status) -> int:
        return sum(1 for i in self.items if i.status is status)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed (skipped items do not fail the run), 1 otherwise."""
        return EXIT_FAILED if self.count(Status.FAIL) else EXIT_PASSED

    def summary(self) -> str:
        return (
            f"summary: {self.count(Status.PASS)} passed, {self.count(Status.FAIL)} failed, "
            f"{self.count(Status.SKIP)} skipped"
        )

    def render(self) -> list[str]:
        width = max((len(i.name) for i in self.items), default=0)
        out = ["skelly smoke: checklist"]
        for item in self.items:
            out.append(f"  {item.status.value}  {item.name:<{width}}  {item.detail}")
            if item.hint:
                out.append(f"        hint: {item.hint}")
        out.append(self.summary())
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": [i.as_dict() for i in self.items],
            "passed": self.count(Status.PASS),
            "failed": self.count(Status.FAIL),
            "skipped": self.count(Status.SKIP),
            "exit": self.exit_code,
        }
