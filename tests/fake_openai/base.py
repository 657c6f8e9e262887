"""The state every part of the server shares: the key it accepts, its lock, its fake clock and its ids."""

from __future__ import annotations

import random
import threading
from typing import Any

API_KEY = "sk-test-fake-0123456789abcdef"
EPOCH = 1_790_000_000.0


class ServerBase:
    """The base of the server's parts (faults, files, embeddings, batches), which :class:`FakeOpenAI` joins.

    Each part keeps its own state, set in its ``__init__``; they all pass the keyword arguments on.
    Everything runs under ``_lock``, taken once per request by the server and by each public method.
    """

    def __init__(self, *, api_key: str | None = API_KEY, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api_key = api_key
        self._lock = threading.RLock()
        self._clock = EPOCH
        self._ids = random.Random(f"ids-{seed}")

    def now(self) -> float:
        """The server's clock in epoch seconds; starts at EPOCH and moves only by advance()."""
        with self._lock:
            return self._clock

    def advance(self, seconds: float) -> None:
        """Move the clock forward (usable as a client's ``sleep``)."""
        if seconds < 0:
            raise ValueError(f"cannot move the clock back ({seconds} s)")
        with self._lock:
            self._clock += seconds

    def _new_id(self, prefix: str, alphabet: str, length: int) -> str:
        return prefix + "".join(self._ids.choice(alphabet) for _ in range(length))
