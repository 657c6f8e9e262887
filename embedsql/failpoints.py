"""Named points where a test can kill the process, to prove that every step can be resumed.

``EMBEDSQL_FAILPOINT=name`` (or ``name:N``, the N-th time the point is reached) makes
``failpoint(name)`` send SIGKILL to its own process on the spot: no cleanup, no flush, as a power
cut or ``kill -9`` would. This is a test hook, so unlike every other setting it is read here, when
a point is reached, not through ``config``; unset, a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

__all__ = ["POINTS", "failpoint"]

# Every failpoint in the code, in the order a job reaches them.
POINTS = (
    "shard-write",  # a shard file half written, its plan not committed
    "local-embed",  # the local runner half way through a shard's output
    "after-upload",  # a file uploaded, its id not recorded
    "after-create",  # a batch created, its id not recorded
    "poll",  # a batch's status read, not recorded
    "download",  # a result file downloaded aside, not yet in place
    "load",  # results in the cache, the transaction not committed
    "materialise",  # the target written, the transaction not committed
)
_hits: Counter[str] = Counter()


def failpoint(name: str) -> None:
    """Kill this process here if ``EMBEDSQL_FAILPOINT`` names this point (and its count is reached)."""
    wanted = os.environ.get("EMBEDSQL_FAILPOINT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
