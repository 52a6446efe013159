"""Jobs: enqueue, read, list, stats, retry and cancel (the producer and operator side).

A job is a DynamoDB record plus an SQS message `{"job_id", "seq"}`. Enqueue writes the record first and then
sends the message; when the send fails the record is deleted again and the caller gets an error, so there is
never a job without its message nor a message without its job (a message whose job is missing is
acknowledged by the worker). Retrying or requeueing a job bumps its `seq` and sends a new message; older
messages still in flight are then stale and acknowledged without running anything.

The consumer side (claim, run, complete, fail) is `chatbot.services.job_runner`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from chatbot import aws, clock
from chatbot.config import Settings, get_settings
from chatbot.dal.base import ttl_after
from chatbot.dal.jobs import JobRepository
from chatbot.errors import BadRequest, Conflict, NotFound, ServiceUnavailable, ValidationFailed
from chatbot.models.jobs import (
    FINISHED_STATUSES,
    JOB_STATUSES,
    Job,
    JobCreate,
    JobList,
    JobListQuery,
    JobStats,
    WorkerHeartbeat,
)
from chatbot.observability import get_logger, log_event
from chatbot.services.job_types import REGISTRY, get_job_type

logger = get_logger("jobs")

# Fields cleared when a finished job is sent round again.
_RUN_STATE = ("finished_at", "ttl", "claim_id", "lease_until", "dead_message_id", "deleted_at")


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex}"


def message_body(job_id: str, seq: int) -> str:
    return json.dumps({"job_id": job_id, "seq": seq}, separators=(",", ":"))


class JobService:
    def __init__(
        self,
        repo: JobRepository | None = None,
        *,
        sqs: Any = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.repo = repo or JobRepository(self.settings.jobs_table)
        self._sqs = sqs

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    # -- enqueue -----------------------------------------------------------------------------------------
    def enqueue(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        max_attempts: int | None = None,
        delay_seconds: int = 0,
        job_id: str | None = None,
    ) -> Job:
        """Create a job and send its message; Conflict when `job_id` is taken."""
        job = self._new_job(
            job_type, payload, max_attempts=max_attempts, delay_seconds=delay_seconds, job_id=job_id
        )
        self.repo.create_job(_new_item(job))
        try:
            self._send(job.id, job.seq, job.type, delay_seconds)
        except ServiceUnavailable:
            self.repo.delete_job(job.id)
            raise
        log_event(logger, "job_enqueued", job_id=job.id, job_type=job.type, delay_seconds=delay_seconds)
        return job

    def enqueue_many(self, requests: Sequence[JobCreate]) -> list[Job]:
        """Enqueue many jobs with batched writes (25 records, then 10 messages per call), in the same order
        as `enqueue`: records first, then messages; records whose message could not be sent are deleted
        again and the call fails naming the jobs that were enqueued."""
        jobs = [
            self._new_job(r.type, r.payload, max_attempts=r.max_attempts, delay_seconds=r.delay_seconds)
            for r in requests
        ]
        self.repo.create_jobs([_new_item(job) for job in jobs])
        sent: list[Job] = []
        unsent: list[Job] = []
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            ok = self._send_batch(chunk)
            sent += [job for job in chunk if job.id in ok]
            unsent += [job for job in chunk if job.id not in ok]
        if unsent:
            self.repo.delete_jobs([job.id for job in unsent])
            raise ServiceUnavailable(
                f"{len(unsent)} of {len(jobs)} jobs could not be enqueued",
                code="queue_unavailable",
                details={"enqueued": [job.id for job in sent]},
            )
        for job in sent:
            log_event(logger, "job_enqueued", job_id=job.id, job_type=job.type, delay_seconds=_delay_of(job))
        return sent

    def _new_job(
        self,
        job_type: str,
        payload: dict[str, Any] | None,
        *,
        max_attempts: int | None,
        delay_seconds: int,
        job_id: str | None = None,
    ) -> Job:
        spec = get_job_type(job_type)
        try:
            parsed = spec.parse(payload or {})
        except ValidationError as exc:
            raise ValidationFailed(
                f"Invalid payload for job type {job_type}", details=exc.errors(include_url=False)
            ) from None
        limit = self.settings.job_max_attempts
        if max_attempts is not None and not 1 <= max_attempts <= limit:
            # More attempts than the queue's maxReceiveCount would be cut short by SQS dead-lettering.
            raise ValidationFailed(f"max_attempts must be between 1 and {limit}")
        if not 0 <= delay_seconds <= 900:
            raise ValidationFailed("delay_seconds must be between 0 and 900")
        now = clock.iso()
        return Job(
            id=job_id or new_job_id(),
            type=job_type,
            # What the caller set (validated); defaults are applied again whenever the payload is parsed.
            payload=parsed.model_dump(mode="json", exclude_none=True, exclude_unset=True),
            status="queued",
            attempts=0,
            max_attempts=max_attempts or limit,
            created_at=now,
            updated_at=now,
            available_at=clock.iso(_after(delay_seconds)) if delay_seconds else now,
            seq=1,
        )

    def enqueue_once(
        self,
        job_type: str,
        payload: dict[str, Any],
        *,
        job_id: str,
        delay_seconds: int = 0,
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """Enqueue under a deterministic id; an existing job with that id is returned (created=False)."""
        try:
            return (
                self.enqueue(
                    job_type, payload, job_id=job_id, delay_seconds=delay_seconds, max_attempts=max_attempts
                ),
                True,
            )
        except Conflict:
            existing = self.repo.get_job(job_id)
            if existing is None:  # deleted by a failed enqueue's compensation in between
                raise
            return Job.model_validate(existing), False

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        item = self.repo.get_job(job_id)
        if item is None:
            raise NotFound("Job not found", code="job_not_found")
        return Job.model_validate(item)

    def list(self, query: JobListQuery) -> JobList:
        after = _iso_bound(query.created_after, "created_after")
        before = _iso_bound(query.created_before, "created_before")
        if after and before and after >= before:
            return JobList(items=[])
        page = self.repo.list_jobs(
            status=query.status,
            job_type=query.type,
            created_after=after,
            created_before=before,
            limit=query.limit,
            cursor=query.cursor,
        )
        return JobList(
            items=[Job.model_validate(item).public() for item in page.items], next_cursor=page.next_cursor
        )

    def stats(self, *, by_type: bool = False) -> JobStats:
        counts = {status: self.repo.count_status(status) for status in JOB_STATUSES}
        per_type = None
        if by_type:
            per_type = {
                name: {status: self.repo.count_status(status, job_type=name) for status in JOB_STATUSES}
                for name in REGISTRY
            }
        return JobStats(
            **counts,
            total=sum(counts.values()),
            pending=counts["queued"],
            failed=counts["dead"],
            by_type=per_type,
        )

    def heartbeat(self) -> WorkerHeartbeat:
        return WorkerHeartbeat.model_validate(self.repo.get_heartbeat() or {})

    # -- operator actions ----------------------------------------------------------------------------------
    def retry(self, job_id: str, *, reset_attempts: bool = False) -> Job:
        """Send a queued (waiting out a backoff), dead or cancelled job round again, now."""
        return self.redispatch(job_id, allowed=("queued", "dead", "cancelled"), reset_attempts=reset_attempts)

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job; its message is acknowledged unrun when it arrives. Running → 409."""
        now = clock.iso()
        result = self.repo.transition(
            job_id,
            condition=Attr("status").eq("queued"),
            sets={
                "status": "cancelled",
                "finished_at": now,
                "updated_at": now,
                "last_error": "Job cancelled by admin",
                "ttl": self.finished_ttl(),
            },
        )
        if not result.ok:
            if result.item is None:
                raise NotFound("Job not found", code="job_not_found")
            raise Conflict(
                f"Only queued jobs can be cancelled; this job is {result.item['status']}",
                code="job_not_queued",
            )
        job = Job.model_validate(result.item)
        log_event(logger, "job_cancelled", job_id=job.id, job_type=job.type, attempt=job.attempts)
        return job

    def redispatch(
        self,
        job_id: str,
        *,
        allowed: tuple[str, ...],
        reset_attempts: bool,
        expected_version: int | None = None,
    ) -> Job:
        """Put a job back to `queued` with a new message (conditional on its status and version); if the
        message cannot be sent, the job is put back as it was and the caller gets an error."""
        job = self.get(job_id)
        if job.status not in allowed:
            raise Conflict(f"A {job.status} job cannot be sent again", code=f"job_{job.status}")
        if expected_version is not None and job.version != expected_version:
            raise Conflict("Job was changed concurrently", details={"current_version": job.version})
        now = clock.iso()
        sets: dict[str, Any] = {
            "status": "queued",
            "seq": job.seq + 1,
            "updated_at": now,
            "available_at": now,
            "dlq_deleted": False,
        }
        if reset_attempts:
            sets["attempts"] = 0
        elif job.attempts >= job.max_attempts:
            sets["max_attempts"] = job.attempts + 1  # one more attempt than it already had
        adds = {"requeued_from_dlq": 1} if job.status == "dead" else {}
        result = self.repo.transition(
            job_id,
            condition=Attr("version").eq(job.version) & Attr("status").eq(job.status),
            sets=sets,
            adds=adds,
            removes=_RUN_STATE,
        )
        if not result.ok:
            raise Conflict("Job was changed concurrently", code="job_changed")
        updated = Job.model_validate(result.item)
        try:
            self._send(updated.id, updated.seq, updated.type, 0)
        except ServiceUnavailable:
            self._restore(job, updated)
            raise
        log_event(
            logger,
            "job_requeued",
            job_id=updated.id,
            job_type=updated.type,
            attempt=updated.attempts,
            from_status=job.status,
            reset_attempts=reset_attempts,
        )
        return updated

    def send_again(self, job_id: str) -> Job:
        """Heal a queued job whose message may have been lost (e.g. a crash between its put and its send)."""
        return self.redispatch(job_id, allowed=("queued",), reset_attempts=False)

    # -- helpers -------------------------------------------------------------------------------------------
    def follow_up(
        self,
        job_type: str,
        payload: dict[str, Any],
        *,
        delay_seconds: int = 0,
        job_id: str | None = None,
        max_attempts: int | None = None,
    ) -> tuple[Job, bool]:
        """What job types use to enqueue further jobs (see `JobContext.enqueue`)."""
        if job_id is None:
            return self.enqueue(
                job_type, payload, delay_seconds=delay_seconds, max_attempts=max_attempts
            ), True
        return self.enqueue_once(
            job_type, payload, job_id=job_id, delay_seconds=delay_seconds, max_attempts=max_attempts
        )

    def _send(self, job_id: str, seq: int, job_type: str, delay_seconds: int) -> str:
        try:
            resp = self.sqs.send_message(
                QueueUrl=self.settings.jobs_queue_url,
                MessageBody=message_body(job_id, seq),
                DelaySeconds=int(delay_seconds),
                MessageAttributes={"job_type": {"DataType": "String", "StringValue": job_type}},
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("job message not sent", extra={"job_id": job_id, "error": type(exc).__name__})
            raise ServiceUnavailable("The job queue is unavailable", code="queue_unavailable") from exc
        return str(resp.get("MessageId", ""))

    def _send_batch(self, jobs: Sequence[Job]) -> set[str]:
        """Send the jobs' messages in one call; the ids of the jobs whose message was accepted."""
        entries = [
            {
                "Id": str(i),
                "MessageBody": message_body(job.id, job.seq),
                "DelaySeconds": _delay_of(job),
                "MessageAttributes": {"job_type": {"DataType": "String", "StringValue": job.type}},
            }
            for i, job in enumerate(jobs)
        ]
        try:
            resp = self.sqs.send_message_batch(QueueUrl=self.settings.jobs_queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning(
                "job messages not sent", extra={"count": len(entries), "error": type(exc).__name__}
            )
            return set()
        return {jobs[int(e["Id"])].id for e in resp.get("Successful", [])}

    def _restore(self, before: Job, after: Job) -> None:
        """Compensate a redispatch whose message was not sent: the job goes back to what it was."""
        stored = _storable(before)
        sets = {
            k: stored[k] for k in ("status", "seq", "attempts", "max_attempts", "updated_at", "dlq_deleted")
        }
        for name in (*_RUN_STATE, "available_at"):
            if stored.get(name) is not None:
                sets[name] = stored[name]
        if before.status in FINISHED_STATUSES:
            sets["ttl"] = self.finished_ttl()
        result = self.repo.transition(
            before.id,
            condition=Attr("version").eq(after.version),
            sets=sets,
            adds={"requeued_from_dlq": -1} if before.status == "dead" else {},
        )
        if not result.ok:
            logger.warning("job changed before its redispatch could be undone", extra={"job_id": before.id})

    def finished_ttl(self) -> int:
        """The `ttl` of a job that has finished (completed, dead or cancelled)."""
        return ttl_after(self.settings.job_retention_days * 86400)


def _new_item(job: Job) -> dict[str, Any]:
    """A new job's item: fields at their defaults are left out (counters start with ADD, flags when set),
    except the ones every reader relies on."""
    item = job.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    item.update(attempts=job.attempts, max_attempts=job.max_attempts, seq=job.seq, payload=job.payload)
    return item


def _storable(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json", exclude_none=True)


def _after(seconds: float) -> Any:
    from datetime import timedelta

    return clock.now() + timedelta(seconds=seconds)


def _delay_of(job: Job) -> int:
    if not job.available_at:
        return 0
    seconds = (clock.parse_iso(job.available_at) - clock.parse_iso(job.created_at)).total_seconds()
    return max(0, min(900, round(seconds)))


def _iso_bound(value: str | None, name: str) -> str | None:
    if not value:
        return None
    try:
        return clock.iso(clock.parse_iso(value))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO-8601 timestamp", code="invalid_timestamp") from None


@cache
def get_job_service() -> JobService:
    """The process-wide service (handlers reuse it across warm invocations)."""
    return JobService()


aws.on_reset(get_job_service.cache_clear)
