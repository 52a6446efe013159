"""What a job type is: a name, a pydantic payload model and a `run(ctx, payload)` function.

`run` returns a small JSON-able result (stored on the job) or raises: any exception is a failed attempt that
the worker retries with backoff and, after the last attempt, dead-letters. Job types reach storage, the
upstream and follow-up jobs only through `JobContext`, so tests can give them fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from chatbot.errors import ValidationFailed
from chatbot.models.jobs import Job

if TYPE_CHECKING:
    import openai

    from chatbot.dal.jobs import JobRepository
    from chatbot.dal.vector_stores import VectorStoreRepository
    from chatbot.dal.webhook_events import WebhookEventRepository

P = TypeVar("P", bound=BaseModel)


class UnknownJobType(ValidationFailed):
    code = "unknown_job_type"

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown job type: {name}")


class JobFailed(Exception):
    """A job attempt that failed for a reason the job type understands (message is stored on the job)."""


class SimulatedCrash(BaseException):
    """Raised by diagnostic jobs to simulate a worker crash: deliberately not an `Exception`, so the batch
    processor does not catch it, the invocation fails as a whole and no message of the batch is acknowledged
    (what a Lambda timeout or out-of-memory kill does)."""


class Enqueuer(Protocol):
    def __call__(
        self,
        job_type: str,
        payload: dict[str, Any],
        *,
        delay_seconds: int = 0,
        job_id: str | None = None,
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """Enqueue a follow-up job; returns the job and False when a job with that id already existed."""
        ...


@dataclass
class JobContext:
    """One attempt of one job, with lazily built dependencies."""

    job: Job
    enqueue: Enqueuer
    jobs_repo: JobRepository
    openai_factory: Callable[[], openai.OpenAI] | None = field(default=None, repr=False)
    vector_stores_factory: Callable[[], VectorStoreRepository] | None = field(default=None, repr=False)
    webhook_events_factory: Callable[[], WebhookEventRepository] | None = field(default=None, repr=False)

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @cached_property
    def openai(self) -> openai.OpenAI:
        if self.openai_factory is None:
            from chatbot.upstream.openai_client import get_openai_client

            return get_openai_client()
        return self.openai_factory()

    @cached_property
    def vector_stores(self) -> VectorStoreRepository:
        if self.vector_stores_factory is None:
            from chatbot.dal.vector_stores import VectorStoreRepository

            return VectorStoreRepository()
        return self.vector_stores_factory()

    @cached_property
    def webhook_events(self) -> WebhookEventRepository:
        if self.webhook_events_factory is None:
            from chatbot.dal.webhook_events import WebhookEventRepository

            return WebhookEventRepository()
        return self.webhook_events_factory()

    def record_handler_completion(self) -> int:
        """Count a handler run that reached its end (an ADD on the job item, so duplicates would show)."""
        return self.jobs_repo.add_counter(self.job.id, "handler_completions", once_for=self.job.claim_id)


@dataclass(frozen=True)
class JobType(Generic[P]):
    name: str
    payload_model: type[P]
    run: Callable[[JobContext, P], dict[str, Any] | None]
    description: str = ""
    # Called once when the job dies (its last attempt failed), with the last error: lets the job type show
    # the failure where its users look, e.g. a vector store file's status.
    on_dead: Callable[[JobContext, P, str], None] | None = None

    def parse(self, payload: dict[str, Any]) -> P:
        return self.payload_model.model_validate(payload)
