"""Runners turn a shard (Batch API input lines) into output and error lines in the same format.

One results parser reads what any runner writes, so the pipeline does not care which one ran.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["Runner", "output_paths"]


class Runner(Protocol):
    """Turns one shard into an output file (successes) and an error file (failures)."""

    name: str

    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None:
        """Process every line of ``shard``; call ``on_lines(n)`` as n more lines are done.

        Both files must appear atomically (written aside, then renamed), so that a file that
        exists is complete.
        """
        ...


def output_paths(shard: Path) -> tuple[Path, Path]:
    """Where a shard's output and error files live: beside it, named after it."""
    stem = shard.name.removesuffix(".jsonl")
    return shard.with_name(f"{stem}.output.jsonl"), shard.with_name(f"{stem}.errors.jsonl")
