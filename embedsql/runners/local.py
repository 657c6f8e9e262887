"""The ``local`` runner: the bundled offline model, in process, speaking the Batch API's format.

It reads request lines like the Batch API does, answers each with an output line (or an error line
with the HTTP status the API would give), and so lets a new user see the whole pipeline work with
no key and no network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..events import EventHandler
from ..failpoints import failpoint
from ..files import atomic_write
from ..local_model import DIMENSIONS, MODEL_NAME, load_local_model
from ..source import blank
from ..store import JobStore
from .inprocess import drive_shards
from .lines import error_line, output_line, read_requests, write_line

__all__ = ["LocalRunner"]

# Texts embedded per model call: large enough for length-sorted batching to pay off, small enough
# to report progress often.
_CHUNK = 1024


class LocalRunner:
    """Embeds shards with all-MiniLM-L6-v2 through onnxruntime."""

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Embed every shard of the job in turn."""
        drive_shards(self, store, on_event)

    def close(self) -> None:
        """Nothing to let go of: the model stays loaded for the process."""

    def run_shard(self, shard: Path, output: Path, errors: Path, *, on_lines: Callable[[int], None]) -> None:
        """Write ``output`` and ``errors`` for every request line of ``shard``."""
        model = load_local_model()
        # The error file lands first: both files present is what marks a shard computed.
        with atomic_write(output, "w", encoding="utf-8") as out, atomic_write(errors, "w", encoding="utf-8") as err:
            for chunk in read_requests(shard, _CHUNK):
                good = []
                for line_no, request in chunk:
                    problem = _problem(request)
                    if problem:
                        write_line(err, error_line(request, line_no, *problem))
                    else:
                        good.append(request)
                if good:
                    vectors = model.embed([r["body"]["input"] for r in good])
                    tokens = model.count_tokens([r["body"]["input"] for r in good])
                    for request, vector, used in zip(good, vectors, tokens, strict=True):
                        write_line(out, output_line(request, vector, int(used), MODEL_NAME))
                on_lines(len(chunk))
                failpoint("local-embed")


def _problem(request: Any) -> tuple[int, str, str] | None:
    """(HTTP status, code, message) the API would answer for a bad request line, or None."""
    if not isinstance(request, dict) or request.get("_invalid"):
        return 400, "invalid_json_line", "This line is not valid JSON."
    body = request.get("body")
    if request.get("url") != "/v1/embeddings" or not isinstance(body, dict):
        return 400, "invalid_url", "Only /v1/embeddings request lines are supported."
    if body.get("model") != MODEL_NAME:
        return 404, "model_not_found", f"The model `{body.get('model')}` does not exist; this runner has {MODEL_NAME}."
    text = body.get("input")
    if blank(text):
        return 400, "invalid_input", "'input' must be a non-empty string."
    if body.get("dimensions") not in (None, DIMENSIONS):
        return 400, "invalid_dimensions", f"{MODEL_NAME} only returns {DIMENSIONS} dimensions."
    return None
