"""Work done every few seconds on a thread of its own while a block of code runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

__all__ = ["every"]


@contextlib.contextmanager
def every(seconds: float, action: Callable[[], None], *, name: str) -> Iterator[None]:
    """Call ``action`` every ``seconds`` on a daemon thread named ``name`` while the block runs (first
    after ``seconds``: a shorter block never calls it). The thread ends with the block, which waits
    for a call in progress to return."""
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
