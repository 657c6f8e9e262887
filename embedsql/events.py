"""What the library tells its caller while it works. It never prints: the CLI renders these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Event", "EventHandler", "Notice", "Progress", "ignore"]


@dataclass(frozen=True)
class Notice:
    """A sentence for the user, said once (which model, which job)."""

    message: str


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``stage`` are finished ("embed": texts)."""

    stage: str
    done: int
    total: int


Event = Notice | Progress
EventHandler = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The handler used when the caller passes none."""
