"""Runners turn shards (Batch API input lines) into output and error lines in the same format.

One results parser reads what any runner writes, so the pipeline does not care which one ran: it
asks ``create_runner`` for the job's runner, hands it the job's ``JobStore``, and the runner
``drive``s every shard to "loaded". Which runner a job uses, and how it is built from the settings,
is decided here and nowhere else:

- ``local``: the bundled offline model, in process (``runners.local``);
- ``batch``: the OpenAI Batch API (``runners.batch``);
- ``sync``: ``/v1/embeddings`` of OpenAI or any compatible server (``runners.sync``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Protocol

from ..config import Settings
from ..errors import ConfigError
from ..events import EventHandler
from ..models import LOCAL_MODEL, ModelChoice
from ..store import JobStore

__all__ = ["Runner", "create_runner", "discover_dimensions", "enqueued_budget", "runner_name"]


class Runner(Protocol):
    """Takes every shard of a job to "loaded", retries included."""

    def drive(self, store: JobStore, on_event: EventHandler) -> None:
        """Run until no shard of the job is left to send (or raise; the ledger keeps what is done)."""
        ...

    def close(self) -> None:
        """Let go of connections and threads."""
        ...


def runner_name(choice: ModelChoice, settings: Settings) -> str:
    """The runner a job uses: as configured, else the local model's own or the Batch API."""
    local = choice.model.provider == "local"
    name = settings.runner or ("local" if local else "batch")
    if name == "local" and not local:
        raise ConfigError(
            f"the local runner cannot run model {choice.model.name}: it runs only {LOCAL_MODEL.name}. "
            "Fix --runner / EMBEDSQL_RUNNER or --model."
        )
    # Any model runs on a compatible server (sync), the bundled one included when a server serves it.
    if name == "batch" and choice.model.provider != "openai":
        raise ConfigError(
            f"model {choice.model.name} is not an OpenAI model, so the Batch API cannot run it; "
            + ("use --runner local, or " if local else "use ")
            + "--runner sync with --base-url pointing at its server."
        )
    return name


def enqueued_budget(choice: ModelChoice, settings: Settings) -> int:
    """Tokens a job may have enqueued at the Batch API at once."""
    return settings.max_enqueued_tokens or choice.model.enqueued_tokens


def discover_dimensions(choice: ModelChoice, settings: Settings) -> ModelChoice:
    """The size of an unknown model's vectors, from its server's answer to one short request."""
    from .openai import OpenAIClient

    with OpenAIClient(settings) as api:
        answer = api.embed_request(["dimension probe"], model=choice.model.name, dimensions=None)
    size = len(answer.vectors[0])
    return ModelChoice(dataclasses.replace(choice.model, dimensions=size), size, choice.reason)


def create_runner(
    choice: ModelChoice,
    settings: Settings,
    name: str,
    *,
    wait: bool = True,
    submit: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Runner:
    """The runner ``name`` for a job of ``choice``, built from ``settings``.

    ``wait=False`` makes the batch runner return once what fits is submitted; ``submit=False``
    makes it only follow batches already submitted (for cancelling). ``sleep`` and ``clock`` are how
    runners wait and tell time (tests pass their own). Runners that talk to an API need its key
    here, so a missing key stops a job before anything is planned.
    """
    if name == "local":
        from .local import LocalRunner

        return LocalRunner()
    from .openai import OpenAIClient

    if name == "sync":
        from .sync import SyncRunner

        return SyncRunner(
            OpenAIClient(settings, sleep=sleep),
            choice.model,
            dimensions=choice.dimensions if choice.dimensions != choice.model.dimensions else None,
            concurrency=settings.concurrency,
            max_inputs=settings.max_inputs_per_request,
            sleep=sleep,
            clock=clock,
        )
    from .batch import BatchRunner

    return BatchRunner(
        OpenAIClient(settings, sleep=sleep),
        budget=enqueued_budget(choice, settings) if submit else 0,
        poll_interval=settings.poll_interval,
        max_poll_interval=settings.max_poll_interval,
        wait=wait,
        submit=submit,
        sleep=sleep,
        clock=clock,
    )
