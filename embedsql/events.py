"""What the library tells its caller while it works. It never prints: the CLI renders these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["BatchProgress", "Event", "EventHandler", "Notice", "Outage", "Progress", "ignore"]


@dataclass(frozen=True)
class Notice:
    """A sentence for the user, said once (which model, which job)."""

    message: str


@dataclass(frozen=True)
class Progress:
    """``done`` of ``total`` units of ``stage`` are finished: "embed" and "shards" count texts, "plan"
    the percent of the statement of planning's ``step`` (100 of 100, with no step, when planning ends);
    "map" numbers the steps of making a map as they start (``total`` 0: how many is not known ahead)."""

    stage: str
    done: int
    total: int
    step: str = ""


@dataclass(frozen=True)
class BatchProgress:
    """Where a job's batches stand: batches by status, and request lines done of ``total``."""

    statuses: dict[str, int]
    completed: int
    failed: int
    total: int
    elapsed: float
    # Seconds until all requests are done, from the pace so far; None until there is a pace.
    eta: float | None


@dataclass(frozen=True)
class Outage:
    """The API failed while a job waits on its batches (``answer``: "503 on GET /v1/batches/b1", or
    "no connection to ..."); it is asked again in ``retry_in`` seconds. It has failed for ``since`` seconds;
    the next ``BatchProgress`` means it answers again."""

    answer: str
    retry_in: float
    since: float


Event = Notice | Progress | BatchProgress | Outage
EventHandler = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The handler used when the caller passes none."""
