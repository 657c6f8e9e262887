"""Runners turn shards (Batch API input lines) into output and error lines in the same format.

One results parser reads what any runner writes, so the pipeline does not care which one ran:
it hands the runner the job's ``JobStore`` and the runner ``drive``s every shard to "loaded".
Runners that compute a shard in process implement ``run_shard`` and reuse ``drive_shards``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import StorageError
from ..events import EventHandler, Progress
from ..ledger import Shard
from ..store import LOAD_LINES, JobStore

__all__ = ["Runner", "drive_shards"]


class Runner(Protocol):
    """Takes every shard of a job to "loaded", retries included."""

    name: str

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Run until no shard of the job is left to send (or raise; the ledger keeps what is done)."""
        ...

    def close(self) -> None:
        """Let go of connections and threads."""
        ...


class ShardRunner(Protocol):
    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None: ...


def drive_shards(runner: ShardRunner, store: JobStore, on_event: EventHandler) -> None:
    """Drive an in-process runner: each shard in turn, its files written atomically, and loaded
    together with others (see ``JobStore.load``) once ``LOAD_LINES`` lines are computed, and at the end.

    A shard whose output and error files both exist was computed before a crash and is only loaded.
    Loading can add retry shards; the loop runs until none is left.
    """
    while True:
        shards = store.shards()
        pending = [s for s in shards if s.status != "loaded"]
        progress = _Counter(on_event, total=sum(s.lines for s in shards))
        progress.advance(progress.total - sum(s.lines for s in pending))
        if not pending:
            return
        computed: list[Shard] = []
        for shard in pending:
            output, errors = store.outputs(shard)
            if output.exists() and errors.exists():
                progress.advance(shard.lines)
            else:
                try:
                    runner.run_shard(store.path(shard), output, errors, on_lines=progress.advance)
                except OSError as e:
                    raise StorageError.writing("result files", store.directory, e) from e
            computed.append(shard)
            if sum(s.lines for s in computed) >= LOAD_LINES:
                store.load(computed)
                computed = []
        store.load(computed)


class _Counter:
    """Texts done of ``total``, reported as ``Progress`` events."""

    def __init__(self, on_event: EventHandler, *, total: int) -> None:
        self.on_event = on_event
        self.total = total
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        self.on_event(Progress("embed", self.done, self.total))
