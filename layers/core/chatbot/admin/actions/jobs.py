"""Jobs and the dead-letter queue: list, inspect, retry, cancel, enqueue, requeue, delete, redrive.

Reading jobs needs `read`; every change, and everything about the DLQ (as in the original), needs
`manage_jobs` (admin and super-admin). Routes that would collide with `/{id}` (`/admin/jobs/stats`,
`/admin/dlq/redrive-tasks`) are declared before it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from chatbot.admin.framework import ActionContext, Paged, actions, requires
from chatbot.errors import ValidationFailed
from chatbot.models.acks import Ack
from chatbot.models.jobs import (
    DlqEntry,
    DlqListQuery,
    JobCreate,
    JobListQuery,
    JobPublic,
    JobStats,
    RedriveTask,
)
from chatbot.services.dlq import DlqService
from chatbot.services.jobs import JobService

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
# Operators may enqueue only the job type made for them; the others are enqueued by the platform itself.
OPERATOR_JOB_TYPES = frozenset({"diagnostic"})


class JobIdParam(BaseModel):
    id: Id


class RetryParams(BaseModel):
    id: Id
    reset_attempts: bool = False


class RequeueParams(BaseModel):
    id: Id
    reset_attempts: bool = True


class StatsParams(BaseModel):
    by_type: bool = False


class RedriveTasksParams(BaseModel):
    limit: int = Field(20, ge=1, le=100)


class JobAck(Ack):
    job_id: str
    job: JobPublic


def _jobs(ctx: ActionContext) -> JobService:
    return JobService(settings=ctx.settings)


def _dlq(ctx: ActionContext) -> DlqService:
    return DlqService(_jobs(ctx))


# -- jobs ------------------------------------------------------------------------------------------------
@actions.action(
    "list_jobs",
    "GET",
    "/admin/jobs",
    access=requires("read"),
    resource="job",
    params=JobListQuery,
    response=JobPublic,
    paged=True,
    errors=(400,),
)
def list_jobs(ctx: ActionContext, params: JobListQuery, body: None) -> Paged[JobPublic]:
    """List jobs newest first, by status, type and creation time (ISO-8601 bounds); cursor pagination."""
    page = _jobs(ctx).list(params)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "job_stats",
    "GET",
    "/admin/jobs/stats",
    access=requires("read"),
    resource="job",
    params=StatsParams,
    response=JobStats,
)
def job_stats(ctx: ActionContext, params: StatsParams, body: None) -> JobStats:
    """Jobs per status (per type too with `by_type=true`); `pending`/`failed` repeat queued/dead for old
    scripts."""
    return _jobs(ctx).stats(by_type=params.by_type)


@actions.action(
    "get_job",
    "GET",
    "/admin/jobs/{id}",
    access=requires("read"),
    resource="job",
    params=JobIdParam,
    response=JobPublic,
)
def get_job(ctx: ActionContext, params: JobIdParam, body: None) -> JobPublic:
    """One job with its attempts, error history and result."""
    return _jobs(ctx).get(params.id).public()


@actions.action(
    "enqueue_job",
    "POST",
    "/admin/jobs",
    access=requires("manage_jobs"),
    resource="job",
    body=JobCreate,
    response=JobPublic,
    status_code=201,
    audit="job.enqueue",
    errors=(503,),
)
def enqueue_job(ctx: ActionContext, params: None, body: JobCreate) -> JobPublic:
    """Enqueue a `diagnostic` job (payload `sleep_ms`, `fail_times`, `fail_permanently`, `fail_until`) to test
    the pipeline end to end."""
    if body.type not in OPERATOR_JOB_TYPES:
        raise ValidationFailed(
            "Only diagnostic jobs can be enqueued through the admin API",
            details=[
                {"loc": ["body", "type"], "msg": "Input should be 'diagnostic'", "type": "literal_error"}
            ],
        )
    job = _jobs(ctx).enqueue(
        body.type, body.payload, max_attempts=body.max_attempts, delay_seconds=body.delay_seconds
    )
    return job.public()


@actions.action(
    "retry_job",
    "POST",
    "/admin/jobs/{id}/retry",
    access=requires("manage_jobs"),
    resource="job",
    params=RetryParams,
    response=JobAck,
    audit="job.retry",
    errors=(409, 503),
)
def retry_job(ctx: ActionContext, params: RetryParams, body: None) -> JobAck:
    """Send a queued (backing off), dead or cancelled job again now; `reset_attempts=true` restarts its count.
    A running or completed job gives 409."""
    job = _jobs(ctx).retry(params.id, reset_attempts=params.reset_attempts)
    return JobAck(message="Job retried", job_id=job.id, job=job.public())


@actions.action(
    "cancel_job",
    "POST",
    "/admin/jobs/{id}/cancel",
    access=requires("manage_jobs"),
    resource="job",
    params=JobIdParam,
    response=JobAck,
    audit="job.cancel",
    errors=(409,),
)
def cancel_job(ctx: ActionContext, params: JobIdParam, body: None) -> JobAck:
    """Cancel a queued job (its message is then skipped); any other status gives 409."""
    job = _jobs(ctx).cancel(params.id)
    return JobAck(message="Job cancelled", job_id=job.id, job=job.public())


# -- dead-letter queue -----------------------------------------------------------------------------------
@actions.action(
    "list_dlq",
    "GET",
    "/admin/dlq",
    access=requires("manage_jobs"),
    resource="job",
    params=DlqListQuery,
    response=DlqEntry,
    paged=True,
    errors=(400, 503),
)
def list_dlq(ctx: ActionContext, params: DlqListQuery, body: None) -> Paged[DlqEntry]:
    """Dead jobs (newest first), by type; `include_requeued=true` adds jobs requeued from the DLQ. Each entry
    says whether its message is in the DLQ."""
    page = _dlq(ctx).list(params)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "list_redrive_tasks",
    "GET",
    "/admin/dlq/redrive-tasks",
    access=requires("manage_jobs"),
    resource="job",
    params=RedriveTasksParams,
    response=RedriveTask,
    paged=True,
)
def list_redrive_tasks(ctx: ActionContext, params: RedriveTasksParams, body: None) -> Paged[RedriveTask]:
    """Bulk redrive tasks, newest first, with their progress (refreshed from SQS for native move tasks)."""
    return Paged(_dlq(ctx).list_redrive_tasks(limit=params.limit).items)


@actions.action(
    "get_dlq_entry",
    "GET",
    "/admin/dlq/{id}",
    access=requires("manage_jobs"),
    resource="job",
    params=JobIdParam,
    response=DlqEntry,
    errors=(503,),
)
def get_dlq_entry(ctx: ActionContext, params: JobIdParam, body: None) -> DlqEntry:
    """A dead job: attempts, error history, and whether its message is in the DLQ."""
    return _dlq(ctx).get(params.id)


@actions.action(
    "requeue_dlq",
    "POST",
    "/admin/dlq/{id}/requeue",
    access=requires("manage_jobs"),
    resource="job",
    params=RequeueParams,
    response=JobAck,
    audit="dlq.requeue",
    errors=(409, 503),
)
def requeue_dlq(ctx: ActionContext, params: RequeueParams, body: None) -> JobAck:
    """Run a dead job again (`reset_attempts`, default true) and remove its message from the DLQ."""
    job = _dlq(ctx).requeue(params.id, reset_attempts=params.reset_attempts)
    return JobAck(message="Job requeued from DLQ", job_id=job.id, job=job.public())


@actions.action(
    "delete_dlq_entry",
    "DELETE",
    "/admin/dlq/{id}",
    access=requires("manage_jobs"),
    resource="job",
    params=JobIdParam,
    response=Ack,
    audit="dlq.delete",
    errors=(409, 503),
    legacy_methods=("POST",),
)
def delete_dlq_entry(ctx: ActionContext, params: JobIdParam, body: None) -> Ack:
    """Delete a dead job's message from the DLQ; the job stays `dead`, hidden from `list_dlq`."""
    _dlq(ctx).delete(params.id)
    return Ack(message="DLQ entry deleted")


@actions.action(
    "redrive_dlq",
    "POST",
    "/admin/dlq/redrive",
    access=requires("manage_jobs"),
    resource="job",
    response=RedriveTask,
    audit="dlq.redrive",
    errors=(409, 503),
)
def redrive_dlq(ctx: ActionContext, params: None, body: None) -> RedriveTask:
    """Move every DLQ message back to the jobs queue (SQS StartMessageMoveTask where available, else moved
    here); poll the task with `list_redrive_tasks`."""
    return _dlq(ctx).redrive(started_by=ctx.principal.email)
