"""The Batches API's records and endpoints: create, retrieve, list and cancel.

How a batch moves on once created is :mod:`.batch_lifecycle`'s job.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from .batch_input import ParsedInput, check_metadata, parse_input
from .embeddings import EmbeddingsAPI
from .files import FilesAPI
from .wire import ApiError, ApiObject, Response, json_body, json_response, page

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
# States whose tokens count against the enqueued-token limit (validated, not yet terminal).
ENQUEUED = frozenset({"in_progress", "finalizing", "cancelling"})
HEX = "0123456789abcdef"


def usage(tokens: int) -> dict:
    """The ``usage`` object of a batch that billed ``tokens``."""
    return {
        "input_tokens": tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": tokens,
    }


def lines_done(total: int, elapsed: float, duration: float) -> int:
    """Lines of ``total`` finished ``elapsed`` seconds into an in_progress phase of ``duration``."""
    if duration <= 0:
        return total
    return min(total, math.floor(total * max(elapsed, 0.0) / duration + 1e-9))


@dataclass
class BatchRecord(ApiObject):
    """A batch. Times are fake epoch seconds as floats (the API shows them as ints); durations are read
    from the server's knobs when the batch is created (``cancelling_s`` when it is cancelled)."""

    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str] | None
    parsed: ParsedInput  # the input file as validation will find it
    seq: int  # position in creation order, for listing
    created: float
    expires: float  # when the completion window closes
    validating_s: float
    in_progress_s: float  # time for every line to run (they finish evenly over it)
    finalizing_s: float
    status: str = "validating"
    errors: list[dict] | None = None  # why validation failed
    output_file_id: str | None = None
    error_file_id: str | None = None
    in_progress_at: float | None = None
    finalizing_at: float | None = None
    cancelling_at: float | None = None
    cancelling_s: float = 0.0
    ended_at: float | None = None  # when it took its terminal status (the API's ``<status>_at``)
    cancel_done: int = 0  # lines that had run when it was cancelled
    results: list[dict] | None = None  # a result line per line run, once the in_progress phase is over
    total: int = 0  # request_counts
    completed: int = 0
    failed: int = 0
    billed_tokens: int = 0  # usage.input_tokens: prompt tokens of the lines that succeeded

    @property
    def model(self) -> str | None:
        return self.parsed.model

    @property
    def tokens(self) -> int:
        """The cl100k_base tokens of every input (what counts against the enqueued limit)."""
        return self.parsed.tokens

    def next_event(self) -> float | None:
        """When the batch moves on by itself next (None: it waits for nothing)."""
        if self.status in ("validating", "in_progress"):
            return min(self.phase_end(), self.expires)
        if self.status == "finalizing":
            assert self.finalizing_at is not None
            return self.finalizing_at + self.finalizing_s
        if self.status == "cancelling":
            assert self.cancelling_at is not None
            return self.cancelling_at + self.cancelling_s
        return None

    def phase_end(self) -> float:
        """When the validating or in_progress phase ends."""
        if self.status == "validating":
            return self.created + self.validating_s
        assert self.in_progress_at is not None
        return self.in_progress_at + self.in_progress_s

    def lines_done(self, when: float) -> int:
        """Lines finished by ``when``, in the in_progress phase."""
        assert self.in_progress_at is not None
        return lines_done(len(self.parsed.requests), when - self.in_progress_at, self.in_progress_s)

    def view(self) -> dict:
        """The batch object as the API answers it."""
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": None if self.errors is None else {"object": "list", "data": [dict(e) for e in self.errors]},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created),
            "in_progress_at": _seconds(self.in_progress_at),
            "expires_at": int(self.expires),
            "finalizing_at": _seconds(self.finalizing_at),
            "completed_at": self._ended("completed"),
            "failed_at": self._ended("failed"),
            "expired_at": self._ended("expired"),
            "cancelling_at": _seconds(self.cancelling_at),
            "cancelled_at": self._ended("cancelled"),
            "request_counts": {"total": self.total, "completed": self.completed, "failed": self.failed},
            "metadata": None if self.metadata is None else dict(self.metadata),
            "usage": usage(self.billed_tokens),
        }

    def _ended(self, status: str) -> int | None:
        return _seconds(self.ended_at) if self.status == status else None


def _seconds(when: float | None) -> int | None:
    return None if when is None else int(when)


class BatchesAPI(FilesAPI, EmbeddingsAPI):
    """``/v1/batches``, and the knobs a batch reads when it is created."""

    def __init__(self, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        # Fake seconds each phase lasts, and the limits validation applies.
        self.validating_seconds = 0.0
        self.in_progress_seconds = 0.0
        self.finalizing_seconds = 0.0
        self.cancelling_seconds = 0.0
        self.completion_window_seconds = 86_400.0
        self.enqueued_token_limit: int | None = None  # per model, over the batches in ENQUEUED states
        self.max_lines = 50_000
        self.max_inputs = 50_000
        self.shuffle_output = True
        self.batches_created = 0
        self._shuffle = random.Random(f"shuffle-{seed}")
        self._batches: dict[str, BatchRecord] = {}

    def _create_batch(self, *, body: bytes, **_: object) -> Response:
        params = json_body(body)
        for name in ("input_file_id", "endpoint", "completion_window"):
            if name not in params:
                raise ApiError(
                    400, f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter"
                )
        endpoint, window = params["endpoint"], params["completion_window"]
        if endpoint != "/v1/embeddings":
            raise ApiError(
                400,
                f"Invalid value: '{endpoint}'. This fake server supports only '/v1/embeddings'.",
                param="endpoint",
                code="invalid_value",
            )
        if window != "24h":
            raise ApiError(
                400,
                f"Invalid value: '{window}'. Supported values are: '24h'.",
                param="completion_window",
                code="invalid_value",
            )
        metadata = params.get("metadata")
        check_metadata(metadata)
        file_id = params["input_file_id"]
        file = self._files.get(file_id) if isinstance(file_id, str) else None
        if file is None or file.deleted:
            raise ApiError(400, f"No such File object: {file_id}", param="input_file_id")
        if file.purpose != "batch":
            raise ApiError(
                400, f"File {file_id} has purpose '{file.purpose}', expected 'batch'.", param="input_file_id"
            )
        if file.status != "processed":
            raise ApiError(
                400,
                f"File {file_id} is still being processed. Please try again once it is processed.",
                param="input_file_id",
            )
        batch = BatchRecord(
            id=self._new_id("batch_", HEX, 32),
            endpoint=endpoint,
            input_file_id=file_id,
            completion_window=window,
            metadata=metadata,
            parsed=parse_input(file.content, endpoint, self.models, self.max_lines, self.max_inputs),
            seq=len(self._batches),
            created=self._clock,
            expires=self._clock + self.completion_window_seconds,
            validating_s=self.validating_seconds,
            in_progress_s=self.in_progress_seconds,
            finalizing_s=self.finalizing_seconds,
        )
        self._batches[batch.id] = batch
        self.batches_created += 1
        return json_response(200, batch.view())

    def _batch(self, batch_id: str) -> BatchRecord:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return batch

    def _get_batch(self, batch_id: str, **_: object) -> Response:
        return json_response(200, self._batch(batch_id).view())

    def _list_batches(self, *, query: dict[str, str], **_: object) -> Response:
        batches = sorted(self._batches.values(), key=lambda b: b.seq, reverse=True)
        return json_response(200, page([b.view() for b in batches], query, default=20, maximum=100))

    def _cancel_batch(self, batch_id: str, **_: object) -> Response:
        batch = self._batch(batch_id)
        status = batch.status
        if status in TERMINAL:
            raise ApiError(409, f"Cannot cancel a batch with status '{status}'.")
        if status != "cancelling":
            if status == "validating":
                done = 0
            elif status == "in_progress":
                done = batch.lines_done(self._clock)
            else:  # finalizing: every line already ran
                done = len(batch.parsed.requests)
            batch.status = "cancelling"
            batch.cancelling_at = self._clock
            batch.cancelling_s = self.cancelling_seconds
            batch.cancel_done = done
        return json_response(200, batch.view())
