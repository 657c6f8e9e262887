"""A fake OpenAI Files / Batches / Embeddings API: a real HTTP server on 127.0.0.1 for tests.

The real ``openai`` SDK, given ``base_url=server.base_url`` and ``api_key=API_KEY``, talks to it over
loopback exactly as it would to api.openai.com for the calls embedsql makes. Nothing is mocked on the
client side. The facts it reproduces are those of ``../shared/OPENAI_BATCH.md`` (relative to the repository root).

Time is the server's own: ``now()`` starts at a fixed epoch and only ``advance()`` moves it, so a
client given ``sleep=server.advance`` polls a 24-hour batch in microseconds. Batches move through
``validating -> in_progress -> finalizing -> completed`` (or ``failed``, ``expired``,
``cancelling -> cancelled``) lazily: every request first replays, in time order, the transitions of
all batches that fell due, so a batch validated later sees the enqueued tokens of the others as they
were at that moment. The durations (``*_seconds`` knobs) and limits ``max_lines``/``max_inputs`` are
read when a batch is created (``cancelling_seconds`` when it is cancelled); ``enqueued_token_limit``
when a batch finishes validating.

``POST /v1/embeddings`` is rate limited per model when ``tokens_per_minute`` / ``requests_per_minute`` are
set (None, the default, is unlimited), as OpenAI does it: a bucket per model and limit holds up to the
limit and refills continuously at limit/60 per fake second; a request costs its input tokens and 1 request.
Every answer for a known model carries ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` for the
limits that are set (reset: the time until the bucket is full again, like ``"6ms"``, ``"1.2s"``, ``"1m3s"``).
A request costing more than a bucket holds gets a 429 (type ``requests`` or ``tokens``, code
``rate_limit_exceeded``) with ``retry-after`` in seconds (fractional, rounded up to the millisecond): after
``advance(retry_after)`` it succeeds. One asking for more tokens than the whole TPM limit gets a 429
"Request too large ..." with no ``retry-after`` (waiting never helps). Refused requests cost nothing.

Vectors are derived from ``(model, text, dimensions)`` by :func:`expected_vector`, so a test can
assert the exact vector stored for every key. Everything random (ids, output order) comes from
``seed``.

Fault switches (each for the next ``times`` occurrences; request ones match ``method`` and a regex searched
in the path without query):

- :meth:`FakeOpenAI.fail_requests`: an HTTP error with the OpenAI body (and ``retry-after``), no effect.
- :meth:`FakeOpenAI.lose_responses`: the request takes effect, then the answer is an HTTP error.
- :meth:`FakeOpenAI.drop_connections`: the request is read, then the TCP connection is closed with no
  answer and no effect (the SDK raises ``APIConnectionError``). Listed in ``requests`` with status 0.
- :meth:`FakeOpenAI.delay_responses`: the request takes effect at once, then the answer waits that many
  seconds of real time (for client timeouts); a client that hung up meanwhile is ignored, and
  ``stop()`` cuts the wait short.
- :meth:`FakeOpenAI.fail_lines`: batch lines holding a text land in the error file.
- :meth:`FakeOpenAI.cut_downloads`: a file download stops halfway (no Content-Length, then close).
- :meth:`FakeOpenAI.omit_output_file`: a ``completed`` batch with no output file.
- :meth:`FakeOpenAI.corrupt_output`: one line of a ``completed`` batch's output file is invalid JSON.
- :meth:`FakeOpenAI.rewrite_output_lines`: a completed batch's output lines as a test function makes them.
- :meth:`FakeOpenAI.rewrite_answers`: an answer as a test function makes it (malformed bodies, HTML pages).
- :meth:`FakeOpenAI.outage`: every matching request fails for some minutes of fake time.
- :meth:`FakeOpenAI.remove_endpoint`: a path the server does not serve (404/405, as FastAPI servers answer).

Other servers' limits: ``api_key=None`` takes any key or none; ``input_token_limits[model]`` refuses longer
inputs with vLLM's words.

Batches and files are typed records (:class:`BatchRecord`, :class:`FileRecord`); ``view()`` gives the
object the API answers, and ``record["status"]`` reads one of its fields.

The modules, each with one job:

- ``server``: :class:`FakeOpenAI`, its lifecycle, routing, authentication and what a test reads back.
- ``http_server``: the threaded HTTP server and request handler on 127.0.0.1.
- ``wire``: error bodies, JSON answers and request bodies, list pages.
- ``base``: the shared lock, fake clock and ids.
- ``vectors``: the deterministic vectors and token counts.
- ``faults``: the fault switches.
- ``files``: the Files API.
- ``embeddings`` and ``rate_limits``: ``POST /v1/embeddings`` and its rate limiter.
- ``batch_input``: validation of a batch's input file and metadata.
- ``batches`` and ``batch_lifecycle``: the Batch API's records, endpoints and state machine.
"""

from __future__ import annotations

from .base import API_KEY, EPOCH
from .batches import BatchRecord
from .embeddings import NATIVE_DIMENSIONS
from .files import FileRecord
from .server import FakeOpenAI, mask_key
from .vectors import expected_vector, token_count

__all__ = [
    "API_KEY",
    "EPOCH",
    "NATIVE_DIMENSIONS",
    "BatchRecord",
    "FakeOpenAI",
    "FileRecord",
    "expected_vector",
    "mask_key",
    "token_count",
]
