"""Whose failure is it: the text's, or the service's. Decided here, for the runners that send requests.

- A **content** failure belongs to one text: a 400/413/422 about the request's input (found by splitting
  the request until one input is left, and checked with a probe request of one short text), or a vector
  the server cannot give for that text (zero, not finite, of another length than its neighbours'). It is
  recorded per key as an error line, and the rest of the job is written.
- A **service** failure belongs to the job: the server could not be reached or did not answer in time,
  refused the key (401/403), has no such endpoint or model (404/405), kept answering 429/5xx beyond the
  retries, answered in a form that is not an embeddings list, or refused even the probe. The runner stops
  sending (requests already on the wire may finish), writes the vectors it got and marks every input it
  did not send ``NOT_SENT``; the load stores the vectors (never paid for twice) and sends those inputs
  again in the next round without using up an attempt; then the job stops with the service's
  ``RemoteError``: it is never marked complete, its target is never touched, and ``embedsql resume JOB``
  goes on from there.

Retryable service failures (connection errors, timeouts, 429, 5xx) are first retried with capped
exponential backoff that honours ``retry-after``; the others stop at once.
"""

from __future__ import annotations

import re

from ..errors import RemoteError

__all__ = ["CONTENT_STATUSES", "NOT_SENT", "is_content", "learned_token_limit", "long_input_advice"]

# The code of an error line for an input that was never sent because the service failed: a transient
# failure that does not use up an attempt (load.py reads it).
NOT_SENT = "not_sent"

# Statuses with which a server refuses what a request holds, not the request as such.
CONTENT_STATUSES = frozenset({400, 413, 422})

# How servers say an input is too long: OpenAI and vLLM ("maximum context length is 8192 tokens"),
# TEI ("must have less than 512 tokens"). Only words that name a token limit: a number in other words
# (characters, bytes) is not one.
_LIMIT_PATTERNS = (
    re.compile(r"maximum context length is (\d+) tokens"),
    re.compile(r"must have less than (\d+) tokens"),
)


def is_content(error: RemoteError) -> bool:
    """Whether ``error`` may be about the inputs of the request (to be narrowed down by splitting it)."""
    return error.status in CONTENT_STATUSES


def learned_token_limit(message: str) -> int | None:
    """The token limit per input that a server's refusal states, if it states one."""
    for pattern in _LIMIT_PATTERNS:
        found = pattern.search(message)
        if found:
            return int(found.group(1))
    return None


def long_input_advice(limit: int) -> str:
    """What to do about texts over a server's limit of ``limit`` tokens per input."""
    return (
        f"The server takes at most {limit} tokens per input: pass --max-input-tokens {limit} --on-long truncate "
        f"(or EMBEDSQL_MAX_INPUT_TOKENS={limit}) to cut such texts, or shorten them."
    )
