"""Jobs: a DynamoDB record (the truth about a job) plus an SQS message carrying its id (the trigger).

Status machine (every arrow is a conditional write in `chatbot.dal.jobs`):

    queued ──claim──▶ running ──▶ completed
      ▲                 │
      └── retry (backoff) ┤
                        └── last attempt ──▶ dead ──requeue / retry──▶ queued
    queued ──cancel──▶ cancelled          dead ──native SQS redrive──▶ running (attempts restart)

`seq` numbers the messages sent for a job: a message carries the `seq` it was sent with, and only the
newest one may claim the job, so leftovers of earlier dispatches are acknowledged without running anything.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

JobStatus = Literal["queued", "running", "completed", "dead", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "completed", "dead", "cancelled")
FINISHED_STATUSES: frozenset[str] = frozenset({"completed", "dead", "cancelled"})

JobId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
JobTypeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

# Bounded so a job that fails forever cannot grow its item towards DynamoDB's 400 KB limit.
MAX_ERROR_HISTORY = 20
MAX_ERROR_LENGTH = 1000


class JobError(BaseModel):
    attempt: int
    error: str
    at: str


class Job(BaseModel):
    """A job as stored (without key attributes) and as services see it."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: str
    payload: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus
    attempts: int = 0
    max_attempts: int = 3
    last_error: str | None = None
    errors: list[JobError] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    created_at: str
    updated_at: str
    available_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    lease_until: float | None = None
    claim_id: str | None = None
    seq: int = 1
    message_id: str | None = None
    claim_receive_count: int | None = None
    dead_message_id: str | None = None
    requeued_from_dlq: int = 0
    dlq_deleted: bool = False
    deleted_at: str | None = None
    handler_completions: int = 0
    version: int = 1

    def public(self) -> JobPublic:
        return JobPublic.model_validate(self.model_dump())

    def errors_with(self, error: str, *, at: str) -> list[dict[str, Any]]:
        """The stored error history with this attempt's `error` added, oldest dropped past the bound."""
        history = [e.model_dump() for e in self.errors]
        history.append({"attempt": self.attempts, "error": error, "at": at})
        return history[-MAX_ERROR_HISTORY:]


class JobPublic(BaseModel):
    """What the admin API shows of a job (no claim tokens or message ids)."""

    id: str
    type: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    last_error: str | None = None
    errors: list[JobError] = Field(default_factory=list)
    result: dict[str, Any] | None = None
    created_at: str
    updated_at: str
    available_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    requeued_from_dlq: int = 0
    handler_completions: int = 0
    version: int


class JobCreate(BaseModel):
    """An enqueue request (the admin API accepts `diagnostic` jobs only)."""

    model_config = ConfigDict(extra="forbid")

    type: JobTypeName
    payload: dict[str, Any] = Field(default_factory=dict)
    max_attempts: int | None = Field(None, ge=1, le=20)
    delay_seconds: int = Field(0, ge=0, le=900, description="SQS caps a message delay at 15 minutes")


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: JobStatus | None = None
    type: JobTypeName | None = None
    created_after: str | None = Field(None, description="ISO-8601; jobs created at or after this time")
    created_before: str | None = Field(None, description="ISO-8601; jobs created before this time")
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class JobList(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None = None


class JobRetry(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reset_attempts: bool = False


class JobStats(BaseModel):
    """Counts per status from `Select=COUNT` queries; `pending`/`failed` repeat `queued`/`dead` under the
    original's names for its scripts."""

    queued: int
    running: int
    completed: int
    dead: int
    cancelled: int
    total: int
    pending: int
    failed: int
    by_type: dict[str, dict[str, int]] | None = None


class WorkerHeartbeat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    last_job_at: str | None = None
    last_success_at: str | None = None


# -- dead-letter queue ----------------------------------------------------------------------------------
class DlqEntry(JobPublic):
    """A dead job (or, with include_requeued, one that was requeued from the DLQ) and its DLQ presence."""

    in_dlq: bool = False
    dlq_message_count: int = 0


class DlqList(BaseModel):
    items: list[DlqEntry]
    next_cursor: str | None = None


class DlqListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: JobTypeName | None = None
    include_requeued: bool = False
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class DlqRequeue(BaseModel):
    model_config = ConfigDict(extra="ignore")

    reset_attempts: bool = True


RedriveMode = Literal["native", "manual"]
RedriveStatus = Literal["running", "completed", "incomplete", "failed", "cancelled"]


class RedriveTask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    mode: RedriveMode
    status: RedriveStatus
    task_handle: str | None = None
    messages_moved: int = 0
    messages_to_move: int | None = None
    failure_reason: str | None = None
    started_by: str | None = None
    created_at: str
    updated_at: str


class RedriveTaskList(BaseModel):
    items: list[RedriveTask]


class ReconcileReport(BaseModel):
    """What one pass of the DLQ reconciler saw and did."""

    examined: int = 0
    marked_dead: list[str] = Field(default_factory=list)
    already_dead: int = 0
    stale_deleted: int = 0
    orphans_deleted: int = 0
    skipped_running: int = 0
