"""How a batch moves on: ``validating -> in_progress -> finalizing -> completed`` (or ``failed``,
``expired``, ``cancelling -> cancelled``), and the output and error files it ends with.

Nothing runs in the background: every request first calls :meth:`BatchLifecycle._sync`, which replays in
time order the transitions of all batches that fell due, so a batch validated later sees the enqueued
tokens of the others as they were at that moment.
"""

from __future__ import annotations

from .batch_input import LineRequest
from .batches import ENQUEUED, HEX, BatchesAPI, BatchRecord
from .embeddings import texts_of
from .faults import default_error
from .wire import ORGANIZATION, ApiError, dumps, error_body

# The error-file line of a request a batch never ran, by the batch's terminal status.
NEVER_RAN = {
    "expired": ("batch_expired", "This request could not be executed before the completion window expired."),
    "cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
}


def succeeded(result: dict) -> bool:
    """Whether a result line belongs in the output file (else in the error file)."""
    response = result["response"]
    return result["error"] is None and response is not None and 200 <= response["status_code"] < 300


class BatchLifecycle(BatchesAPI):
    """The Batch API's state machine, on the fake clock."""

    def _sync(self) -> None:
        """Apply, in time order, every batch transition due by now (ties: older batch first)."""
        while True:
            due: tuple[float, BatchRecord] | None = None
            for batch in self._batches.values():
                when = batch.next_event()
                if when is not None and when <= self._clock and (due is None or when < due[0]):
                    due = (when, batch)
            if due is None:
                break
            self._step(due[1], due[0])
        self._process_uploads()

    def _step(self, batch: BatchRecord, when: float) -> None:
        status = batch.status
        if status in ("validating", "in_progress") and when == batch.expires and when < batch.phase_end():
            self._expire(batch)
        elif status == "validating":
            self._validate(batch, when)
        elif status == "in_progress":
            batch.results = [self._run_line(batch, request) for request in batch.parsed.requests]
            self._count(batch, batch.results)
            batch.status = "finalizing"
            batch.finalizing_at = when
        elif status == "finalizing":
            assert batch.results is not None
            self._finish(batch, "completed", when, batch.results)
        elif status == "cancelling":
            self._finish_partial(batch, "cancelled", when, batch.cancel_done)

    def _validate(self, batch: BatchRecord, when: float) -> None:
        parsed = batch.parsed
        errors = parsed.errors
        if not errors and self.enqueued_token_limit is not None:
            enqueued = sum(
                other.tokens
                for other in self._batches.values()
                if other is not batch and other.status in ENQUEUED and other.model == parsed.model
            )
            if enqueued + parsed.tokens > self.enqueued_token_limit:
                errors = [
                    {
                        "code": "token_limit_exceeded",
                        "message": (
                            f"Enqueued token limit reached for {parsed.model} in organization {ORGANIZATION}. "
                            f"Limit: {self.enqueued_token_limit:,} enqueued tokens. Please try again once some "
                            "in_progress batches have been completed."
                        ),
                        "param": None,
                        "line": None,
                    }
                ]
        if errors:
            batch.status, batch.ended_at, batch.errors = "failed", when, errors
            return
        batch.total = len(parsed.requests)
        batch.status, batch.in_progress_at = "in_progress", when

    def _expire(self, batch: BatchRecord) -> None:
        when = batch.expires
        done = 0 if batch.status == "validating" else batch.lines_done(when)
        self._finish_partial(batch, "expired", when, done)

    def _finish_partial(self, batch: BatchRecord, status: str, when: float, done: int) -> None:
        """End a batch cut short: its first ``done`` lines ran, the others land in the error file."""
        requests = batch.parsed.requests
        results = batch.results
        if results is None:  # the lines had not run yet
            results = [self._run_line(batch, request) for request in requests[:done]]
            self._count(batch, results)
        code, message = NEVER_RAN[status]
        never_ran = [
            {
                "id": self._request_id(),
                "custom_id": r.custom_id,
                "response": None,
                "error": {"code": code, "message": message},
            }
            for r in requests[len(results) :]
        ]
        batch.total = len(requests)
        batch.failed += len(never_ran)
        self._finish(batch, status, when, results + never_ran)

    def _finish(self, batch: BatchRecord, status: str, when: float, results: list[dict]) -> None:
        """Write the output and error files of a batch and give it its terminal status."""
        successes = [r for r in results if succeeded(r)]
        failures = [r for r in results if not succeeded(r)]
        if status == "completed" and successes and self._take_omission():
            successes = []
        corrupt = self._take_corruption(len(successes)) if status == "completed" else None
        batch.status = status
        batch.output_file_id = self._write_results(f"batch_{batch.id}_output.jsonl", successes, corrupt=corrupt)
        batch.error_file_id = self._write_results(f"batch_{batch.id}_error.jsonl", failures)
        batch.ended_at = when

    def _write_results(self, filename: str, lines: list[dict], *, corrupt: int | None = None) -> str | None:
        """Write a results file (shuffled); line ``corrupt`` (1-based) becomes the first half of its JSON."""
        if not lines:
            return None
        if self.shuffle_output:
            lines = lines.copy()
            self._shuffle.shuffle(lines)
        texts = self._rewritten_output(lines) if filename.endswith("_output.jsonl") else [dumps(x) for x in lines]
        if corrupt is not None:
            text = texts[corrupt - 1]
            texts[corrupt - 1] = text[: len(text) // 2]
        content = "".join(text + "\n" for text in texts).encode()
        return self._add_file(filename, "batch_output", content).id

    def _count(self, batch: BatchRecord, results: list[dict]) -> None:
        for result in results:
            if succeeded(result):
                batch.completed += 1
                batch.billed_tokens += result["response"]["body"]["usage"]["prompt_tokens"]
            else:
                batch.failed += 1

    def _request_id(self) -> str:
        return self._new_id("batch_req_", HEX, 32)

    def _run_line(self, batch: BatchRecord, request: LineRequest) -> dict:
        """One batch line through the embeddings endpoint: its output or error-file line."""
        status, body = 200, None
        try:
            texts = texts_of(request.body.get("input"))
            fault = self._take_line_fault(texts)
            if fault is not None:
                status = fault.status
                type_ = default_error(fault.status, "")[0]
                body = {"error": error_body(fault.message, type_, None, fault.code)}
            else:
                body = self._embed(request.body, texts)
        except ApiError as e:
            status, body = e.status, e.body
        return {
            "id": self._request_id(),
            "custom_id": request.custom_id,
            "response": {"status_code": status, "request_id": self._new_id("", HEX, 32), "body": body},
            "error": None,
        }
