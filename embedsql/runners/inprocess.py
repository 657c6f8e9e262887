"""The loop shared by the runners that compute shards in this process (local, sync).

They implement ``run_shard`` (a shard's request lines in, its output and error files out) and let
``drive_shards`` take every shard of the job to "loaded", retry shards included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ..errors import RemoteError, StorageError
from ..events import EventHandler, Progress
from ..failpoints import failpoint
from ..ledger import Shard, ShardStatus
from ..load import LOAD_LINES, load_shards
from ..store import JobStore

__all__ = ["ShardRunner", "drive_shards"]


class ShardRunner(Protocol):
    """A runner that computes one shard at a time in this process."""

    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None: ...


def drive_shards(runner: ShardRunner, store: JobStore, on_event: EventHandler) -> None:
    """Drive an in-process runner: each shard in turn, its files written atomically, and loaded
    together with others (see ``load_shards``) once ``LOAD_LINES`` lines are computed, and at the end.

    A shard whose output and error files both exist was computed before a crash and is only loaded.
    Loading can add retry shards; the loop runs until none is left. A runner that raises ``RemoteError``
    (the service failed) may have written its files first: what they hold is loaded, then the error goes on.
    """
    shards = store.shards()
    while True:
        pending = [s for s in shards if s.status != ShardStatus.LOADED]
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
                except RemoteError:
                    # The service failed: keep what it computed (paid for) before the job stops.
                    load_shards(store, [*computed, shard] if output.exists() and errors.exists() else computed)
                    raise
                failpoint("computed")
            computed.append(shard)
            if sum(s.lines for s in computed) >= LOAD_LINES:
                load_shards(store, computed)
                computed = []
        shards = load_shards(store, computed)


class _Counter:
    """Texts done of ``total``, reported as ``Progress`` events."""

    def __init__(self, on_event: EventHandler, *, total: int) -> None:
        self.on_event = on_event
        self.total = total
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        self.on_event(Progress("embed", self.done, self.total))
