"""The dead-letter queue: reconcile, inspect, requeue, delete and redrive.

A DLQ entry is a `dead` job (its record holds the attempts and error history) whose message SQS moved to
the DLQ. The two normally agree: the worker marks a job dead on its last attempt and SQS then dead-letters
the message. When a worker crashed or timed out on the last attempt, the message reaches the DLQ while the
record still says queued/running; `reconcile_dlq` (run every minute by the metrics-push schedule) finds
those and marks them dead, and removes DLQ messages that are stale (the job finished or was sent again).

To see which jobs have messages in the DLQ, the DLQ is read with a short visibility timeout and every
message is made visible again right after ("peek"); a concurrent peek may briefly miss messages, so
`in_dlq` is informative, and the reconciler's next pass corrects any miss.

Bulk redrive uses SQS `StartMessageMoveTask` where the endpoint supports it; elsewhere (the emulator) the
same action moves the messages itself (receive, send, delete). Either way the moved messages are new
messages for dead jobs, which the worker claims `dead → running` with their attempts restarted.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from boto3.dynamodb.conditions import Attr
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chatbot import aws, clock
from chatbot.config import Settings
from chatbot.dal.base import ttl_after
from chatbot.errors import Conflict, NotFound, ServiceUnavailable
from chatbot.models.jobs import (
    DlqEntry,
    DlqList,
    DlqListQuery,
    Job,
    ReconcileReport,
    RedriveTask,
    RedriveTaskList,
)
from chatbot.observability import get_logger, log_event
from chatbot.services.jobs import JobService, get_job_service

logger = get_logger("jobs")

PEEK_VISIBILITY_SECONDS = 10
MAX_PEEK_MESSAGES = 2000
MANUAL_REDRIVE_BUDGET_SECONDS = 20.0
REDRIVE_TASK_TTL_DAYS = 30
# How an endpoint without StartMessageMoveTask answers (moto: NotImplementedError in-process, a bare 500
# over HTTP); AWS's own errors (access denied, a task already running) are not among these.
_UNSUPPORTED_CODES = frozenset({"500", "501", "InvalidAction", "UnknownOperationException", "NotImplemented"})
_NATIVE_STATUS = {
    "RUNNING": "running",
    "COMPLETED": "completed",
    "CANCELLING": "running",
    "CANCELLED": "cancelled",
    "FAILED": "failed",
}


@dataclass(frozen=True)
class DlqMessage:
    job_id: str | None
    seq: int | None
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]


class Peek:
    """Messages read from the DLQ, grouped by job; `release()` makes the untouched ones visible again."""

    def __init__(self, service: DlqService, messages: list[DlqMessage]) -> None:
        self._service = service
        self.messages = messages
        self.by_job: dict[str | None, list[DlqMessage]] = defaultdict(list)
        for message in messages:
            self.by_job[message.job_id].append(message)
        self._done: set[str] = set()

    def delete(self, messages: Iterable[DlqMessage]) -> int:
        batch = [m for m in messages if m.receipt_handle not in self._done]
        deleted = self._service._delete_messages(batch)
        self._done.update(m.receipt_handle for m in batch)
        return deleted

    def release(self) -> None:
        self._service._release([m for m in self.messages if m.receipt_handle not in self._done])
        self._done.update(m.receipt_handle for m in self.messages)

    def __enter__(self) -> Peek:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class DlqService:
    def __init__(self, jobs: JobService | None = None, *, sqs: Any = None, control_sqs: Any = None) -> None:
        self.jobs = jobs or get_job_service()
        self.repo = self.jobs.repo
        self.settings: Settings = self.jobs.settings
        self._sqs = sqs
        self._control_sqs = control_sqs
        self._dlq_arn: str | None = None

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    @property
    def control_sqs(self) -> Any:
        """A client without retries for the move-task APIs: an emulator that lacks them answers 500, and
        retrying that only delays the fallback."""
        return self._control_sqs or self._sqs or _no_retry_sqs()

    # -- reconcile -----------------------------------------------------------------------------------------
    def reconcile(self, *, max_messages: int = MAX_PEEK_MESSAGES) -> ReconcileReport:
        report = ReconcileReport()
        with self.peek(max_messages=max_messages) as peek:
            report.examined = len(peek.messages)
            for job_id, messages in peek.by_job.items():
                self._reconcile_job(peek, job_id, messages, report)
        if report.marked_dead or report.stale_deleted or report.orphans_deleted:
            logger.info("dlq reconciled", extra={"report": report.model_dump()})
        return report

    def _reconcile_job(
        self, peek: Peek, job_id: str | None, messages: list[DlqMessage], report: ReconcileReport
    ) -> None:
        item = self.repo.get_job(job_id) if job_id else None
        if item is None:
            report.orphans_deleted += peek.delete(messages)
            return
        job = Job.model_validate(item)
        stale = [m for m in messages if m.seq is not None and m.seq < job.seq]
        current = [m for m in messages if m not in stale]
        if stale:
            report.stale_deleted += peek.delete(stale)
        if not current:
            return
        if job.status == "dead":
            if job.dlq_deleted:
                report.stale_deleted += peek.delete(current)
            else:
                report.already_dead += 1
            return
        if job.status in ("completed", "cancelled"):
            report.stale_deleted += peek.delete(current)
            return
        if job.status == "running" and job.lease_until is not None and job.lease_until > time.time():
            report.skipped_running += 1
            return
        if self._mark_dead(job, current[0]):
            report.marked_dead.append(job.id)

    def _mark_dead(self, job: Job, message: DlqMessage) -> bool:
        receives = message.attributes.get("ApproximateReceiveCount", "?")
        error = (
            f"Message moved to the dead-letter queue after {receives} receives while the job was "
            f"{job.status} (the worker crashed or timed out)"
        )
        now = clock.iso()
        result = self.repo.transition(
            job.id,
            condition=Attr("version").eq(job.version) & Attr("status").eq(job.status),
            sets={
                "status": "dead",
                "last_error": error,
                "errors": job.errors_with(error, at=now),
                "finished_at": now,
                "updated_at": now,
                "dead_message_id": message.message_id,
                "ttl": self.jobs.finished_ttl(),
            },
            removes=("lease_until", "claim_id"),
        )
        if result.ok:
            log_event(
                logger,
                "job_dead",
                level="error",
                job_id=job.id,
                job_type=job.type,
                attempt=job.attempts,
                error=error,
                source="reconciler",
            )
        return result.ok

    # -- inspect -------------------------------------------------------------------------------------------
    def list(self, query: DlqListQuery) -> DlqList:
        not_deleted = Attr("dlq_deleted").ne(True)
        if query.include_requeued:
            page = self.repo.list_jobs(
                job_type=query.type,
                limit=query.limit,
                cursor=query.cursor,
                filter_expression=not_deleted & (Attr("status").eq("dead") | Attr("requeued_from_dlq").gt(0)),
            )
        else:
            page = self.repo.list_jobs(
                status="dead",
                job_type=query.type,
                limit=query.limit,
                cursor=query.cursor,
                filter_expression=not_deleted,
            )
        counts: dict[str | None, int] = {}
        if page.items:
            with self.peek() as peek:
                counts = {job_id: len(msgs) for job_id, msgs in peek.by_job.items()}
        items = [self._entry(Job.model_validate(item), counts.get(item["id"], 0)) for item in page.items]
        return DlqList(items=items, next_cursor=page.next_cursor)

    def get(self, job_id: str) -> DlqEntry:
        job = self._require_entry(job_id)
        with self.peek() as peek:
            count = len(peek.by_job.get(job_id, []))
        return self._entry(job, count)

    # -- act -----------------------------------------------------------------------------------------------
    def requeue(self, job_id: str, *, reset_attempts: bool = True) -> Job:
        """Send a dead job round again (attempts reset by default) and remove its DLQ message(s)."""
        job = self._require_entry(job_id)
        if job.status != "dead":
            raise Conflict(f"Job was already requeued (it is {job.status})", code="dlq_already_requeued")
        with self.peek() as peek:
            requeued = self.jobs.redispatch(
                job_id, allowed=("dead",), reset_attempts=reset_attempts, expected_version=job.version
            )
            peek.delete(peek.by_job.get(job_id, []))
        return requeued

    def delete(self, job_id: str) -> DlqEntry:
        """Remove a dead job's message(s) from the DLQ; the job stays `dead`, marked deleted and hidden."""
        job = self._require_entry(job_id)
        if job.status != "dead":
            raise Conflict(
                f"Only dead jobs can be deleted from the DLQ (it is {job.status})", code="job_not_dead"
            )
        now = clock.iso()
        result = self.repo.transition(
            job_id,
            condition=Attr("status").eq("dead") & Attr("version").eq(job.version),
            sets={"dlq_deleted": True, "deleted_at": now, "updated_at": now},
        )
        if not result.ok:
            raise Conflict("Job was changed concurrently", code="job_changed")
        with self.peek() as peek:
            peek.delete(peek.by_job.get(job_id, []))
        log_event(logger, "dlq_entry_deleted", job_id=job_id, job_type=job.type, attempt=job.attempts)
        return self._entry(Job.model_validate(result.item), 0)

    def redrive(self, *, started_by: str | None = None) -> RedriveTask:
        """Move every DLQ message back to the jobs queue; returns a task to poll with `list_redrive_tasks`."""
        now = clock.iso()
        task = {
            "id": f"redrive_{uuid.uuid4().hex[:16]}",
            "status": "running",
            "messages_moved": 0,
            "started_by": started_by,
            "created_at": now,
            "updated_at": now,
        }
        handle = self._start_native_move()
        ttl = ttl_after(REDRIVE_TASK_TTL_DAYS * 86400)
        if handle is not None:
            stored = self.repo.create_redrive_task({**task, "mode": "native", "task_handle": handle}, ttl=ttl)
            log_event(logger, "dlq_redrive_started", task_id=task["id"], mode="native")
            return RedriveTask.model_validate(stored)
        self.repo.create_redrive_task({**task, "mode": "manual"}, ttl=ttl)
        log_event(logger, "dlq_redrive_started", task_id=task["id"], mode="manual")
        return self._manual_move(task["id"])

    def list_redrive_tasks(self, *, limit: int = 20) -> RedriveTaskList:
        tasks = [RedriveTask.model_validate(item) for item in self.repo.list_redrive_tasks(limit=limit)]
        if any(t.mode == "native" and t.status == "running" for t in tasks):
            native = self._native_tasks()
            for i, task in enumerate(tasks):
                info = native.get(task.task_handle or "")
                if task.mode != "native" or task.status != "running" or info is None:
                    continue
                changes = {
                    "status": _NATIVE_STATUS.get(str(info.get("Status")), "running"),
                    "messages_moved": int(info.get("ApproximateNumberOfMessagesMoved", 0)),
                    "messages_to_move": info.get("ApproximateNumberOfMessagesToMove"),
                    "failure_reason": info.get("FailureReason"),
                    "updated_at": clock.iso(),
                }
                tasks[i] = RedriveTask.model_validate(self.repo.update_redrive_task(task.id, changes))
        return RedriveTaskList(items=tasks)

    # -- peek / move ---------------------------------------------------------------------------------------
    def peek(self, *, max_messages: int = MAX_PEEK_MESSAGES) -> Peek:
        messages: list[DlqMessage] = []
        seen: set[str] = set()
        while len(messages) < max_messages:
            batch = self._receive(self.settings.jobs_dlq_url, PEEK_VISIBILITY_SECONDS)
            fresh = [m for m in batch if m.message_id not in seen]
            if not fresh:
                break
            seen.update(m.message_id for m in fresh)
            messages.extend(fresh)
        return Peek(self, messages)

    def _receive(self, queue_url: str, visibility: int) -> list[DlqMessage]:
        try:
            resp = self.sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable(
                "The dead-letter queue is unavailable", code="queue_unavailable"
            ) from exc
        return [_dlq_message(raw) for raw in resp.get("Messages", [])]

    def _delete_messages(self, messages: list[DlqMessage], queue_url: str | None = None) -> int:
        deleted = 0
        for chunk in _chunks(messages, 10):
            entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)]
            try:
                resp = self.sqs.delete_message_batch(
                    QueueUrl=queue_url or self.settings.jobs_dlq_url, Entries=entries
                )
            except (ClientError, BotoCoreError) as exc:
                raise ServiceUnavailable(
                    "The dead-letter queue is unavailable", code="queue_unavailable"
                ) from exc
            deleted += len(resp.get("Successful", []))
        return deleted

    def _release(self, messages: list[DlqMessage]) -> None:
        for chunk in _chunks(messages, 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.settings.jobs_dlq_url, Entries=entries)
            except (ClientError, BotoCoreError):
                # They become visible by themselves after PEEK_VISIBILITY_SECONDS.
                logger.warning("DLQ messages not released after a peek", extra={"count": len(entries)})

    def dlq_arn(self) -> str:
        if self._dlq_arn is None:
            try:
                attrs = self.sqs.get_queue_attributes(
                    QueueUrl=self.settings.jobs_dlq_url, AttributeNames=["QueueArn"]
                )["Attributes"]
            except (ClientError, BotoCoreError) as exc:
                raise ServiceUnavailable(
                    "The dead-letter queue is unavailable", code="queue_unavailable"
                ) from exc
            self._dlq_arn = str(attrs["QueueArn"])
        return self._dlq_arn

    def _start_native_move(self) -> str | None:
        """The task handle of a StartMessageMoveTask, or None where the endpoint has no such API."""
        if _native_unsupported():
            return None
        try:
            # No DestinationArn: SQS moves each message back to the queue it was dead-lettered from.
            resp = self.control_sqs.start_message_move_task(SourceArn=self.dlq_arn())
        except NotImplementedError:
            _remember_unsupported()
            return None
        except ClientError as exc:
            if _is_unsupported(exc):
                _remember_unsupported()
                return None
            message = exc.response.get("Error", {}).get("Message") or "SQS refused the move task"
            raise Conflict(f"Redrive could not start: {message}", code="redrive_refused") from None
        except BotoCoreError as exc:
            raise ServiceUnavailable(
                "The dead-letter queue is unavailable", code="queue_unavailable"
            ) from exc
        return str(resp["TaskHandle"])

    def _native_tasks(self) -> dict[str, dict[str, Any]]:
        if _native_unsupported():
            return {}
        try:
            resp = self.control_sqs.list_message_move_tasks(SourceArn=self.dlq_arn(), MaxResults=10)
        except NotImplementedError:
            return {}
        except (ClientError, BotoCoreError):
            logger.warning("could not list SQS message move tasks")
            return {}
        return {str(t.get("TaskHandle")): t for t in resp.get("Results", []) if t.get("TaskHandle")}

    def _manual_move(self, task_id: str) -> RedriveTask:
        """Receive from the DLQ, send to the jobs queue, delete from the DLQ; progress is stored per batch.
        Bounded in time so the admin request returns; an `incomplete` task is continued by redriving again."""
        deadline = time.monotonic() + MANUAL_REDRIVE_BUDGET_SECONDS
        moved, status, failure = 0, "completed", None
        while True:
            if time.monotonic() > deadline:
                status = "incomplete"
                break
            batch = self._receive(self.settings.jobs_dlq_url, 60)
            if not batch:
                break
            try:
                sent = self._send_batch(batch)
            except ServiceUnavailable as exc:
                self._release(batch)
                status, failure = "failed", exc.message
                break
            self._release([m for m in batch if m not in sent])
            moved += self._delete_messages(sent)
            self.repo.update_redrive_task(task_id, {"messages_moved": moved, "updated_at": clock.iso()})
        stored = self.repo.update_redrive_task(
            task_id,
            {"status": status, "messages_moved": moved, "failure_reason": failure, "updated_at": clock.iso()},
        )
        log_event(logger, "dlq_redrive_finished", task_id=task_id, mode="manual", status=status, moved=moved)
        return RedriveTask.model_validate(stored)

    def _send_batch(self, batch: list[DlqMessage]) -> list[DlqMessage]:
        entries = []
        for i, m in enumerate(batch):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": m.body}
            if m.attributes.get("_message_attributes"):
                entry["MessageAttributes"] = m.attributes["_message_attributes"]
            entries.append(entry)
        try:
            resp = self.sqs.send_message_batch(QueueUrl=self.settings.jobs_queue_url, Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            raise ServiceUnavailable("The jobs queue is unavailable", code="queue_unavailable") from exc
        ok = {int(e["Id"]) for e in resp.get("Successful", [])}
        return [m for i, m in enumerate(batch) if i in ok]

    # -- helpers -------------------------------------------------------------------------------------------
    def _require_entry(self, job_id: str) -> Job:
        item = self.repo.get_job(job_id)
        if item is None:
            raise NotFound("DLQ entry not found", code="dlq_entry_not_found")
        job = Job.model_validate(item)
        if job.dlq_deleted or not (job.status == "dead" or job.requeued_from_dlq > 0):
            raise NotFound("DLQ entry not found", code="dlq_entry_not_found")
        return job

    @staticmethod
    def _entry(job: Job, message_count: int) -> DlqEntry:
        return DlqEntry.model_validate(
            {**job.public().model_dump(), "in_dlq": message_count > 0, "dlq_message_count": message_count}
        )


def _dlq_message(raw: dict[str, Any]) -> DlqMessage:
    body = raw.get("Body", "")
    job_id, seq = None, None
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("job_id"), str):
            job_id = parsed["job_id"]
        if isinstance(parsed.get("seq"), int) and not isinstance(parsed.get("seq"), bool):
            seq = parsed["seq"]
    attributes = dict(raw.get("Attributes") or {})
    if raw.get("MessageAttributes"):
        attributes["_message_attributes"] = raw["MessageAttributes"]
    return DlqMessage(
        job_id=job_id,
        seq=seq,
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=body,
        attributes=attributes,
    )


def _chunks(items: list[DlqMessage], size: int) -> Iterable[list[DlqMessage]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _is_unsupported(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _UNSUPPORTED_CODES or (status in (500, 501) and not code.isalpha())


_unsupported: dict[str, bool] = {}


def _native_unsupported() -> bool:
    return _unsupported.get("native", False)


def _remember_unsupported() -> None:
    # Per process: asking an endpoint again that lacked the API a moment ago only adds latency.
    _unsupported["native"] = True


@cache
def _no_retry_sqs() -> Any:
    return aws.session().client(
        "sqs",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=10),
    )


def _reset() -> None:
    _no_retry_sqs.cache_clear()
    _unsupported.clear()
    get_dlq_service.cache_clear()


@cache
def get_dlq_service() -> DlqService:
    return DlqService()


def reconcile_dlq() -> ReconcileReport:
    """One reconciler pass (the metrics-push schedule calls this every minute)."""
    return get_dlq_service().reconcile()


aws.on_reset(_reset)
