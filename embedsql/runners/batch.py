"""The ``batch`` runner: shards through the OpenAI Batch API, followed to the end.

Each remote step is bracketed by ledger writes (DESIGN.md, "Crash safety"):

    written --upload--> uploaded --create--> submitted --poll..--> (terminal) --download--> downloaded
        --load--> loaded

A file id is recorded as soon as the upload returns; before a batch is created the shard is marked
``creating``, so that after a crash the batch is looked up by its metadata (job, shard, submission)
and adopted instead of created twice. The scheduler keeps the tokens of batches in flight under the
enqueued-token budget, and treats ``token_limit_exceeded`` as "wait and resubmit". A job's plan
estimates its shards' tokens (``embedsql.token_estimate``): each shard is counted exactly from its
file before it is first sent, and the ledger keeps that count, which the scheduler uses.

While batches run, the API failing (connection, timeout, 429, 5xx on a poll, a list or a download) is
waited out with capped exponential backoff, said on the status line, for up to a batch's own 24-hour
window on the runner's clock; an error that waiting cannot fix (401, 403, 404) stops at once. Either
way the job keeps its place.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from ..errors import DatabaseError, RemoteError
from ..events import BatchProgress, EventHandler, Notice, Outage
from ..failpoints import failpoint
from ..jobs import ShardTotals
from ..ledger import Shard, ShardStatus
from ..load import load_shards
from ..models import recorded_choice
from ..store import JobStore
from ..tokens import count_tokens
from .lines import read_requests
from .openai import BatchInfo, OpenAIClient

__all__ = ["BatchRunner"]

# Shards that still have to reach the Batch API.
_TO_SUBMIT = (ShardStatus.WRITTEN, ShardStatus.UPLOADING, ShardStatus.UPLOADED, ShardStatus.CREATING)
# Seconds to wait before resubmitting a shard refused for the enqueued-token limit.
_TOKEN_LIMIT_WAIT = 60.0
# An outage while batches run: the first wait, and the most between two tries (seconds).
_OUTAGE_FIRST_WAIT = 1.0
_OUTAGE_MAX_WAIT = 300.0
# Outages are waited out this long: a batch's completion window (24 h), after which it has ended anyway.
_OUTAGE_LIMIT = 24 * 3600.0


class BatchRunner:
    """Submits, follows, downloads and loads every shard of a job."""

    def __init__(
        self,
        api: OpenAIClient,
        *,
        budget: int,
        poll_interval: float,
        max_poll_interval: float,
        wait: bool = True,
        submit: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.budget = budget
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.wait = wait
        self.submit = submit
        self.sleep = sleep
        self.clock = clock
        self._not_before: dict[int, float] = {}
        # Shards counted exactly by this process (a count survives in the ledger; counting again
        # after a restart costs seconds, beside uploads and batches of hours).
        self._counted: set[int] = set()
        # When the API began failing (runner's clock), and the next wait; None while it answers.
        self._outage_since: float | None = None
        self._outage_wait = _OUTAGE_FIRST_WAIT

    def close(self) -> None:
        """Close the API's connections."""
        self.api.close()

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Run until every shard is loaded; with ``wait=False``, return once what fits is submitted."""
        started = self.clock()
        self._baseline: int | None = None
        interval = self.poll_interval
        while True:
            try:
                shards = store.shards()
                changed = self._load_downloaded(store, shards)
                if self.submit:
                    changed |= self._submit_what_fits(store, store.shards() if changed else shards, on_event)
                if changed:
                    shards = store.shards()
            except DatabaseError as e:
                if not e.locked:
                    raise
                # Someone else is writing the warehouse; every step is safe to repeat, so wait a round.
                on_event(Notice(f"{e} Trying again in {interval:g} s."))
                self.sleep(interval)
                continue
            self._report(shards, on_event, started)
            if all(s.status == ShardStatus.LOADED for s in shards):
                return
            in_flight = [s for s in shards if s.status == ShardStatus.SUBMITTED]
            if not self.wait or (not in_flight and not self.submit):
                return
            self.sleep(interval)
            try:
                for shard in in_flight:
                    changed |= self._poll_through_outages(store, shard, on_event)
            except DatabaseError as e:
                if not e.locked:
                    raise
                on_event(Notice(f"{e} Trying again in {interval:g} s."))
            interval = self.poll_interval if changed else min(interval * 1.5, self.max_poll_interval)

    def _load_downloaded(self, store: JobStore, shards: list[Shard]) -> bool:
        downloaded = [s for s in shards if s.status == ShardStatus.DOWNLOADED]
        if not downloaded:
            return False
        load_shards(store, downloaded)
        return True

    def _submit_what_fits(self, store: JobStore, shards: list[Shard], on_event: EventHandler) -> bool:
        in_flight = sum(s.tokens for s in shards if s.status == ShardStatus.SUBMITTED)
        busy = any(s.status == ShardStatus.SUBMITTED for s in shards)
        submitted = False
        now = self.clock()
        for shard in shards:
            if shard.status not in _TO_SUBMIT:
                continue
            if self._not_before.get(shard.shard, 0.0) > now:
                continue
            if shard.status == ShardStatus.WRITTEN and shard.shard not in self._counted:
                shard = self._count(store, shard, on_event)
            if busy and in_flight + shard.tokens > self.budget:
                break  # keep shard order: the next one waits for room
            if not self._submit(store, shard, on_event):
                break
            in_flight += shard.tokens
            busy = submitted = True
        return submitted

    def _count(self, store: JobStore, shard: Shard, on_event: EventHandler) -> Shard:
        """``shard`` with its tokens counted exactly from its file, as the ledger now records them."""
        model = recorded_choice(store.job.model, store.job.dimensions).model
        tokens = 0
        for chunk in read_requests(store.path(shard), 10_000):
            tokens += int(
                count_tokens(model, [request["body"]["input"] for _, request in chunk if "body" in request]).sum()
            )
        self._counted.add(shard.shard)
        if tokens > self.budget:
            on_event(
                Notice(
                    f"Shard {shard.shard} holds {tokens:,} tokens, more than the {self.budget:,} of "
                    "--max-enqueued-tokens; it is sent alone, once no other batch runs."
                )
            )
        if tokens == shard.tokens:
            return shard
        store.update(shard, tokens=tokens)
        return _with(shard, tokens=tokens)

    def _submit(self, store: JobStore, shard: Shard, on_event: EventHandler) -> bool:
        job = store.job
        if shard.status in (ShardStatus.WRITTEN, ShardStatus.UPLOADING):
            name = f"embedsql-{job.job_id}-{shard.path}"
            uploaded = self.api.find_file(name) if shard.status == ShardStatus.UPLOADING else None
            if uploaded is None:
                store.update(shard, status=ShardStatus.UPLOADING)
                uploaded = self.api.upload(store.path(shard), name)
                failpoint("after-upload")
            else:
                # An upload finished before an interruption: use that file rather than leave it behind.
                on_event(Notice(f"Adopted file {uploaded.id} of shard {shard.shard}, uploaded before an interruption."))
            store.update(shard, status=ShardStatus.UPLOADED, input_file_id=uploaded.id, message=None)
            shard = _with(shard, status=ShardStatus.UPLOADED, input_file_id=uploaded.id)
        submission = shard.submissions + 1
        metadata = {
            "embedsql_job": job.job_id,
            "embedsql_shard": str(shard.shard),
            "embedsql_attempt": str(shard.attempt),
            "embedsql_submission": str(submission),
        }
        info = None
        if shard.status == ShardStatus.CREATING:
            # A create may have happened before a crash: adopt that batch instead of paying twice.
            info = self.api.find(metadata, since=0)
            if info is not None:
                on_event(Notice(f"Adopted batch {info.id} of shard {shard.shard}, created before an interruption."))
        if info is None:
            store.update(shard, status=ShardStatus.CREATING)
            try:
                info = self.api.create(shard.input_file_id or "", metadata)
                failpoint("after-create")
            except RemoteError as e:
                if not e.retryable:
                    store.update(shard, status=ShardStatus.UPLOADED)
                    raise
                # The batch may exist all the same; stay "creating", so the next round looks it up first.
                on_event(Notice(f"Creating the batch of shard {shard.shard} failed for now ({e}); trying again."))
                return False
        store.update(
            shard,
            status=ShardStatus.SUBMITTED,
            batch_id=info.id,
            batch_status=info.status,
            submissions=submission,
            remote_completed=info.completed,
            remote_failed=info.failed,
        )
        return True

    def _poll_through_outages(self, store: JobStore, shard: Shard, on_event: EventHandler) -> bool:
        """Poll ``shard`` (and download its results once done), waiting out an outage of the API."""
        while True:
            try:
                changed = self._poll(store, shard, on_event)
            except RemoteError as e:
                self._wait_out(e, on_event)
                continue
            self._outage_since, self._outage_wait = None, _OUTAGE_FIRST_WAIT
            return changed

    def _wait_out(self, error: RemoteError, on_event: EventHandler) -> None:
        """Wait before asking again after ``error``; raise it if waiting cannot help or has lasted too long."""
        if not error.retryable:
            raise error
        now = self.clock()
        if self._outage_since is None:
            self._outage_since, self._outage_wait = now, _OUTAGE_FIRST_WAIT
        down = now - self._outage_since
        wait = min(max(self._outage_wait, error.retry_after or 0.0), _OUTAGE_MAX_WAIT)
        if down + wait > _OUTAGE_LIMIT:
            raise RemoteError(
                f"{error} It kept failing for {down / 3600:.0f} hours while the job waited on its batches, "
                "beyond a batch's 24-hour window.",
                retryable=True,
                status=error.status,
                request=error.request,
            ) from error
        answer = (
            f"{error.status or 'no answer'} on {error.request}" if error.request else str(error.status or "no answer")
        )
        on_event(Outage(answer, wait, down))
        self.sleep(wait)
        self._outage_wait = min(wait * 2, _OUTAGE_MAX_WAIT)

    def _poll(self, store: JobStore, shard: Shard, on_event: EventHandler) -> bool:
        assert shard.batch_id is not None
        info = self.api.retrieve(shard.batch_id)
        failpoint("poll")
        changed = (info.status, info.completed, info.failed) != (
            shard.batch_status,
            shard.remote_completed,
            shard.remote_failed,
        )
        if not info.terminal:
            if changed:
                store.update(
                    shard, batch_status=info.status, remote_completed=info.completed, remote_failed=info.failed
                )
            return changed
        if info.status == "failed":
            self._failed(store, shard, info, on_event)
            return True
        self._download(store, shard, info)
        return True

    def _failed(self, store: JobStore, shard: Shard, info: BatchInfo, on_event: EventHandler) -> None:
        """A batch that failed as a whole: over the enqueued-token limit, it is submitted again later;
        refused in validation (its model, the key's access, the file), the job stops with the server's
        reason and the shard goes back to "uploaded".

        Validation says nothing about the texts, and nothing of the batch ran or was billed: failing
        each text "for good" would finish the job with none of them written and send the user to fix
        texts that are fine. Stopping keeps the job's place, and a resume once the cause is fixed
        submits the same file again (an attempt of no text is used).
        """
        codes = [code for code, _ in info.errors]
        if "token_limit_exceeded" in codes:
            on_event(
                Notice(
                    f"Batch {info.id} (shard {shard.shard}) went over the organisation's enqueued-token limit; "
                    "it will be submitted again once running batches finish. Lower --max-enqueued-tokens to "
                    "match your tier."
                )
            )
            self._not_before[shard.shard] = self.clock() + _TOKEN_LIMIT_WAIT
            store.update(shard, status=ShardStatus.UPLOADED, batch_status="failed", batch_id=None, message=None)
            return
        # The same reason for every line is said once.
        reasons = dict.fromkeys(f"{code}: {str(text).rstrip('.')}" for code, text in info.errors)
        message = "; ".join(reasons) or "the batch failed with no reason given"
        store.update(shard, status=ShardStatus.UPLOADED, batch_status="failed", batch_id=None, message=message)
        raise RemoteError(
            f"batch {info.id} (shard {shard.shard}) failed validation: {message}. Nothing of it ran; "
            "fix the cause (the model, the key's access to it), then continue."
        )

    def _download(self, store: JobStore, shard: Shard, info: BatchInfo) -> None:
        output, errors = store.outputs(shard)
        for file_id, path, expected in (
            (info.output_file_id, output, info.completed),
            (info.error_file_id, errors, None),
        ):
            if file_id is None:
                path.write_bytes(b"")  # a batch whose lines all failed has no output file, and vice versa
            else:
                self.api.download(file_id, path, expected_lines=expected)
        store.update(
            shard,
            status=ShardStatus.DOWNLOADED,
            batch_status=info.status,
            remote_completed=info.completed,
            remote_failed=info.failed,
            output_file_id=info.output_file_id,
            error_file_id=info.error_file_id,
        )

    def _report(self, shards: list[Shard], on_event: EventHandler, started: float) -> None:
        statuses = Counter(
            s.batch_status or "not submitted" if s.status == ShardStatus.SUBMITTED else _done_status(s) for s in shards
        )
        totals = ShardTotals.of(shards)
        completed, failed, total = totals.done, totals.failed + totals.remote_failed, totals.lines
        elapsed = self.clock() - started
        if self._baseline is None:
            self._baseline = completed  # done before this process started (a resumed job) sets no pace
        eta = None
        pace = (completed - self._baseline) / elapsed if elapsed > 0 else 0.0
        if pace > 0 and completed < total:
            eta = (total - completed) / pace
        on_event(BatchProgress(dict(sorted(statuses.items())), completed, failed, total, elapsed, eta))


def _done_status(shard: Shard) -> str:
    return str(shard.status) if shard.status in (ShardStatus.LOADED, ShardStatus.DOWNLOADED) else "waiting"


def _with(shard: Shard, **fields: object) -> Shard:
    from dataclasses import replace

    return replace(shard, **fields)  # type: ignore[arg-type]
