"""What the benchmarks share: Markdown tables, the summary row, and measuring in a child process."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Goal",
    "StageResult",
    "fmt_bytes",
    "fmt_n",
    "fmt_ratio",
    "fmt_s",
    "isolated",
    "markdown",
    "peak_rss",
    "ratio",
]

GiB = 1 << 30


@dataclass(frozen=True)
class Goal:
    """One line of the summary table: a figure of embedsql, its reference, and the goal it is held to."""

    stage: str
    figure: str
    reference: str
    # figure / reference (the goal says which way is better); None when there is no reference.
    ratio: float | None
    goal: str
    # None: no goal was set for this figure, it is only reported.
    met: bool | None


@dataclass
class StageResult:
    """A stage's own table (Markdown lines, printed as soon as the stage ends) and its summary lines."""

    title: str
    lines: list[str] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([f"### {self.title}", "", *self.lines, ""])


def markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table: numbers right-aligned, everything else as given."""
    cells = [[str(c) for c in row] for row in rows]
    align = ["---:" if rows and all(_numeric(r[i]) for r in rows) else "---" for i in range(len(header))]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(align) + "|",
        *("| " + " | ".join(row) + " |" for row in cells),
    ]


def _numeric(value: object) -> bool:
    text = str(value).replace(",", "").replace("/s", "").replace("x", "").replace(" ", "")
    for unit in ("ms", "s", "GiB", "MiB", "KiB"):
        text = text.removesuffix(unit)
    try:
        float(text)
    except ValueError:
        return False
    return True


def fmt_n(value: float) -> str:
    """1234567.8 -> '1,234,568'."""
    return f"{value:,.0f}"


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / (1 << 20):.0f} MiB"


def ratio(value: float, reference: float) -> float | None:
    return value / reference if reference else None


def fmt_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def peak_rss() -> int:
    """This process's peak resident set so far, in bytes.

    ``VmHWM`` of /proc/self/status where there is one: ``ru_maxrss`` of a process started by fork and
    exec also counts the parent's resident set at the fork (Linux keeps the high-water mark of the
    memory an exec replaces), so a child of a big parent would seem big from its first instruction.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux, bytes on macOS


def _in_child(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, int, int]:
    # DuckDB draws a progress bar on stdout for queries over 2 s; the tables go there, the child's
    # result comes back through the pool.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    before = peak_rss()
    result = fn(*args, **kwargs)
    return result, before, peak_rss()


def isolated(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int, int]:
    """``fn(*args, **kwargs)`` in a fresh Python process: (its result, peak RSS before the call (the
    interpreter and imports), peak RSS of the whole process). ``fn`` must be a module-level function.

    A fresh process (spawn, not fork) so that neither the parent's memory nor an earlier measurement's
    high-water mark counts.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_in_child, fn, args, kwargs).result()
