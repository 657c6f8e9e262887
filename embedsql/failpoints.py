"""Named points where a test can kill, interrupt or starve the process, to prove that every step
can be resumed and every failure is reported.

``EMBEDSQL_FAILPOINT=name[:N][:action]`` makes ``failpoint(name)`` act the N-th time the point is
reached (the first by default) and every time after. The action is one of:

- ``kill`` (the default): SIGKILL to its own process on the spot: no cleanup, no flush, as a power
  cut or ``kill -9`` would;
- ``int``: SIGINT, as Ctrl-C would (a ``KeyboardInterrupt`` raised right there);
- ``enospc``: an ``OSError`` "No space left on device", as the write it stands beside would raise
  on a full disk; any other errno's name (``eacces``, ``erofs``, ``edquot``, ...) raises that error.

This is a test hook, so unlike every other setting it is read here, when a point is reached, not
through ``config``; unset, a failpoint costs one environment lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

__all__ = ["ACTIONS", "POINTS", "failpoint"]

# Every failpoint in the code, in the order a job (then a map) reaches them.
POINTS = (
    "shard-write",  # a shard file half written, its plan not committed
    "local-embed",  # the local runner half way through a shard's output
    "computed",  # an in-process runner's shard computed (its result files in place), not loaded
    "after-upload",  # a file uploaded, its id not recorded
    "after-create",  # a batch created, its id not recorded
    "poll",  # a batch's status read, not recorded
    "download",  # a result file downloaded aside, not yet in place
    "load",  # results in the cache, the transaction not committed
    "materialise",  # the target written, the transaction not committed
    "map-layout",  # embedsql map: UMAP about to lay the points out
    "map-place",  # embedsql map: a block of points placed among the laid-out ones
)
# Besides these, the lower-case name of any errno (see ``enospc``).
ACTIONS = ("kill", "int", "enospc")
_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Act here if ``EMBEDSQL_FAILPOINT`` names this point (and its count is reached)."""
    wanted = os.environ.get("EMBEDSQL_FAILPOINT")
    if not wanted:
        return
    point, _, rest = wanted.partition(":")
    if point != name:
        return
    nth, _, action = rest.partition(":")
    if not nth.isdigit():  # name:action
        nth, action = "", nth
    _hits[name] += 1
    if _hits[name] < int(nth or 1):
        return
    if action == "int":
        os.kill(os.getpid(), signal.SIGINT)
    elif action.startswith("e") and isinstance(getattr(errno, action.upper(), None), int):
        code = getattr(errno, action.upper())
        raise OSError(code, os.strerror(code))
    else:
        os.kill(os.getpid(), signal.SIGKILL)
