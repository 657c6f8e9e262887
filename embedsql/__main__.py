"""The ``embedsql`` command as a process: the console script and ``python -m embedsql``.

Before the command line runs, Python imports DuckDB, pyarrow, numpy and click, which takes a moment: a
Ctrl-C then is the same one line and exit status 130 as one while the command works, never a traceback.
So this module imports nothing heavy before it handles Ctrl-C itself (the package's ``__init__`` imports
nothing heavy either), and ignores a Ctrl-C that comes once the command has finished.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import NoReturn

__all__ = ["BEFORE_START", "main"]

BEFORE_START = "Interrupted: the command stopped before it started."
# Set once the command has done what it does: a Ctrl-C then changes nothing.
_finished = False


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    if not _finished:
        raise KeyboardInterrupt


def main() -> NoReturn:
    """Run ``embedsql`` with the process's arguments, and exit with its status."""
    global _finished
    signal.signal(signal.SIGINT, _on_interrupt)
    stopped = BEFORE_START
    try:
        from .cli import STOPPED  # the imports that take a moment
        from .cli import main as command

        stopped = STOPPED
        code = command()
    except KeyboardInterrupt:  # during the imports, or while the command line wrote its last words
        sys.stderr.write(f"\n{stopped}\n")
        code = 130
    # No call between the end of the command and this: Python looks for a signal only at calls and loops.
    _finished = True
    # Ignored by the system itself from here, also while Python shuts down (it resets its own handler then).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    main()
