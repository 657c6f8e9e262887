"""Files that appear whole or not at all: written aside, flushed to disk, then renamed into place.

Every file a job writes (shards, result files, downloads, the example warehouse) goes through here,
so that a crash or a full disk at any instant leaves either the complete file or none, never a
truncated one that a resumed job would trust. A file's presence is what the ledger and the runners
read as "this step is done".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["AtomicFile", "atomic_write", "commit_file", "part_path"]


def part_path(path: Path) -> Path:
    """Where ``path`` is written before it is complete."""
    return path.with_name(path.name + ".part")


def commit_file(part: Path, path: Path) -> None:
    """Flush the finished ``part`` to disk and rename it to ``path`` (replacing any older file)."""
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, path)


class AtomicFile:
    """One file being written aside: ``commit`` puts it in place, ``abort`` throws it away."""

    def __init__(self, path: Path, mode: str = "wb", *, encoding: str | None = None) -> None:
        self.path = path
        self.part = part_path(path)
        self.file: IO[Any] = open(self.part, mode, encoding=encoding)  # noqa: SIM115  (closed by commit/abort)

    def commit(self) -> None:
        """Flush the file to disk, close it and rename it into place."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.part, self.path)

    def abort(self) -> None:
        """Close the file and delete what was written (a full disk may fail the close: ignored)."""
        with contextlib.suppress(OSError):
            self.file.close()
        self.part.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """A file open for writing that appears at ``path`` only if the block completes."""
    atomic = AtomicFile(path, mode, encoding=encoding)
    try:
        yield atomic.file
    except BaseException:
        atomic.abort()
        raise
    try:
        atomic.commit()
    except BaseException:
        atomic.abort()
        raise
