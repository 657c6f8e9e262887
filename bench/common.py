"""What the benchmarks share: Markdown tables, the summary row, and measuring in a child process."""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Goal",
    "StageResult",
    "Stopwatch",
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


class Stopwatch:
    """Seconds spent inside chosen functions while a block runs: a profile of named sub-steps.

    ``Stopwatch({"tokenise": (embedsql.plan, "count_tokens")})`` wraps ``embedsql.plan.count_tokens`` for
    the duration of the ``with`` block and adds up the time of its calls (nested calls of the same
    function count once) and how much the process's peak RSS rose during them. A name that the module
    no longer has is skipped (it then counts as "other").
    """

    def __init__(self, targets: dict[str, tuple[Any, str]]) -> None:
        self.targets = targets
        self.seconds: dict[str, float] = dict.fromkeys(targets, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(targets, 0)
        # How far the process's peak RSS rose during the calls: which step sets the high-water mark.
        self.raised: dict[str, int] = dict.fromkeys(targets, 0)
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> Stopwatch:
        for label, (owner, name) in self.targets.items():
            original = getattr(owner, name, None)
            if original is None:
                continue
            self._saved.append((owner, name, original))
            setattr(owner, name, self._wrap(label, original))
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _wrap(self, label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(original):
            return self._wrap_generator(label, original)
        depth = [0]

        def timed(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            peak = peak_rss() if depth[0] == 1 else 0
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    self.seconds[label] += time.perf_counter() - started
                    self.calls[label] += 1
                    self.raised[label] += peak_rss() - peak

        return timed

    def _wrap_generator(self, label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        """A generator's time is the time of producing each item, not of the caller's work between items."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            items = original(*args, **kwargs)
            while True:
                peak = peak_rss()
                started = time.perf_counter()
                try:
                    item = next(items)
                except StopIteration:
                    self.calls[label] += 1
                    return
                finally:
                    self.seconds[label] += time.perf_counter() - started
                    self.raised[label] += peak_rss() - peak
                yield item

        return timed
