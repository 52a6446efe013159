"""The worker side of jobs: claim a job for one SQS record, run its type's handler, record the outcome.

Per record (`JobRunner.process`; the worker function wraps it in Powertools' BatchProcessor):

1. Claim: one conditional update `queued → running` (attempts + 1, a claim id, `lease_until`). A claim holds
   until the end of its invocation's budget: the Lambda deadline, capped by the queue's visibility timeout
   from the start of the batch (records reached after that are left for redelivery, as a stopped Lambda
   would leave them). When the claim's condition fails, the returned old item says why:
   - `completed` / `cancelled`, or a message older than the job's `seq`, or no job at all: a stale message,
     acknowledged without running anything;
   - `running` under a live lease: a duplicate delivery while another worker runs the job. The record is
     reported failed with its visibility set to the end of the lease (at most one backoff step) and comes
     back later; it is never deleted, because if it were and the first worker then crashed, the job could
     depend on this very message. When the same message comes back with a higher receive count, its
     visibility timeout ran out, so the worker that claimed with it is gone (Lambda requires the queue's
     visibility timeout to be at least the function timeout) and the job is claimed again, as it is once
     the lease has expired;
   - `dead` with a message other than the one it died with: an operator redrove it from the DLQ (SQS gives
     redriven messages a new message id; `redrive_dlq`'s fallback sends new ones too), so it runs again
     with its attempts restarted. The message it died with is made visible at once until SQS
     dead-letters it.
2. Run the handler. Success → `completed` with its result (conditional on our claim id).
3. Failure → `queued` with the error in its history and the message's visibility set to the backoff
   base·2^attempt + up to 10 % jitter, capped; the record is reported failed. On the last attempt → `dead`
   with its error history and visibility 0, so SQS moves it to the DLQ on its next receive (RedrivePolicy,
   maxReceiveCount = max attempts).

A crash or timeout mid-run acknowledges nothing: the message returns after its visibility timeout and the
job is claimed again (step 1). The failure of one record never fails the batch.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from chatbot import aws, clock
from chatbot.models.jobs import MAX_ERROR_LENGTH, Job
from chatbot.observability import get_logger, log_event, redact
from chatbot.services.job_types import REGISTRY, JobContext, JobType, get_job_type
from chatbot.services.jobs import JobService, get_job_service

logger = get_logger("worker")

MAX_VISIBILITY_SECONDS = 43_200  # SQS's limit for ChangeMessageVisibility
DEFAULT_VISIBILITY_SECONDS = 30
VISIBILITY_CACHE_SECONDS = 60.0
# No claim is started this close to the end of an invocation's budget.
LEASE_MARGIN_SECONDS = 0.5
HEARTBEAT_INTERVAL_SECONDS = 10.0


class RecordNotAcknowledged(Exception):
    """Reported as a batch item failure: SQS keeps the message (to redeliver or dead-letter it later)."""


class JobAttemptFailed(RecordNotAcknowledged):
    pass


class JobBusy(RecordNotAcknowledged):
    pass


class AwaitingDeadLetter(RecordNotAcknowledged):
    pass


class ClaimLost(RecordNotAcknowledged):
    pass


class OutOfTime(RecordNotAcknowledged):
    pass


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    seq: int | None
    message_id: str
    receipt_handle: str
    receive_count: int


ClaimKind = Literal["claimed", "stale", "missing", "busy", "awaiting_dead_letter"]


@dataclass(frozen=True)
class ClaimOutcome:
    kind: ClaimKind
    job: Job | None = None
    reason: str = ""
    retry_in: int = 0
    redriven: bool = False
    reclaimed: bool = False


def parse_record(record: dict[str, Any]) -> JobMessage | None:
    """The job reference in an SQS record (Lambda event shape), or None when the body is not one."""
    try:
        body = json.loads(record.get("body") or "")
    except ValueError:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("job_id"), str) or not body["job_id"]:
        return None
    seq = body.get("seq")
    if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
        return None
    attributes = record.get("attributes") or {}
    try:
        receive_count = int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        receive_count = 1
    return JobMessage(
        job_id=body["job_id"],
        seq=seq,
        message_id=str(record.get("messageId", "")),
        receipt_handle=str(record.get("receiptHandle", "")),
        receive_count=receive_count,
    )


def backoff_seconds(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> int:
    """base·2^attempt plus up to 10 % jitter, capped at `cap`, in whole seconds (what SQS accepts)."""
    delay = min(base * (2 ** max(0, attempt)) * (1 + 0.1 * rand()), cap)
    return min(math.ceil(delay), MAX_VISIBILITY_SECONDS)


class JobRunner:
    def __init__(
        self,
        service: JobService | None = None,
        *,
        registry: dict[str, JobType[Any]] | None = None,
        sqs: Any = None,
        context_factories: dict[str, Callable[[], Any]] | None = None,
        now: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.service = service or get_job_service()
        self.repo = self.service.repo
        self.settings = self.service.settings
        self.registry = registry if registry is not None else REGISTRY
        self._sqs = sqs
        self._factories = context_factories or {}
        self._now = now
        self._rand = rand
        self._visibility_timeout: tuple[int | None, float] = (None, 0.0)
        self._heartbeat_at = -HEARTBEAT_INTERVAL_SECONDS
        self._heartbeat_success = False

    @property
    def sqs(self) -> Any:
        return self._sqs or aws.client("sqs")

    # -- one record ------------------------------------------------------------------------------------------
    def process(self, record: dict[str, Any], *, lease_until: float | None = None) -> dict[str, Any]:
        """Handle one SQS record; returns a summary, or raises `RecordNotAcknowledged` to keep the message.

        `lease_until` is the end of this invocation's budget (`batch_lease_until`); a record reached after it
        (a slow batch) is left unclaimed for redelivery, as it would be when Lambda stopped the invocation."""
        message = parse_record(record)
        if message is None:
            log_event(logger, "job_message_invalid", level="error", message_id=record.get("messageId"))
            return {"outcome": "invalid"}
        if lease_until is None:
            lease_until = self.batch_lease_until(None)
        if self._now() > lease_until - LEASE_MARGIN_SECONDS:
            raise OutOfTime(f"job {message.job_id} left for redelivery: the invocation's time is up")
        outcome = self.claim(message, lease_until)
        if outcome.kind in ("stale", "missing"):
            log_event(
                logger,
                "job_message_skipped",
                job_id=message.job_id,
                reason=outcome.reason,
                message_id=message.message_id,
                level="warning" if outcome.kind == "missing" else "info",
            )
            return {"outcome": outcome.kind, "job_id": message.job_id, "reason": outcome.reason}
        if outcome.kind == "busy":
            self._set_visibility(message, outcome.retry_in)
            raise JobBusy(f"job {message.job_id} is running elsewhere; rechecking in {outcome.retry_in}s")
        if outcome.kind == "awaiting_dead_letter":
            self._set_visibility(message, 0)
            raise AwaitingDeadLetter(f"job {message.job_id} is dead; its message goes to the DLQ")
        assert outcome.job is not None
        return self._run(message, outcome)

    def _run(self, message: JobMessage, outcome: ClaimOutcome) -> dict[str, Any]:
        job = outcome.job
        assert job is not None
        log_event(
            logger,
            "job_started",
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            redriven=outcome.redriven,
            reclaimed=outcome.reclaimed,
        )
        started = time.perf_counter()
        try:
            spec = self._job_type(job.type)
            try:
                payload = spec.parse(job.payload)
            except ValidationError as exc:
                raise ValueError(
                    f"Invalid payload for job type {job.type}: {exc.error_count()} error(s)"
                ) from None
            result = spec.run(self._context(job), payload) or {}
        except Exception as exc:
            if _is_upstream_error(exc):  # counted with chat's and admin's in chatbot_upstream_errors_total
                log_event(
                    logger,
                    "upstream_error",
                    "warning",
                    job_id=job.id,
                    job_type=job.type,
                    status=getattr(exc, "status_code", None),
                    error_type=type(exc).__name__,
                )
            self._failed(message, job, exc, _ms_since(started))
            raise JobAttemptFailed(_error_text(exc)) from exc
        self._completed(job, result, _ms_since(started))
        return {"outcome": "completed", "job_id": job.id, "attempt": job.attempts}

    def _context(self, job: Job) -> JobContext:
        return JobContext(
            job=job,
            enqueue=self.service.follow_up,
            jobs_repo=self.repo,
            openai_factory=self._factories.get("openai"),
            vector_stores_factory=self._factories.get("vector_stores"),
            webhook_events_factory=self._factories.get("webhook_events"),
        )

    def _after_death(self, job: Job, error: str) -> None:
        try:
            spec = self._job_type(job.type)
            if spec.on_dead is not None:
                spec.on_dead(self._context(job), spec.parse(job.payload), error)
        except Exception as exc:  # noqa: BLE001 - the job is dead either way; say why its hook failed
            log_event(logger, "job_dead_hook_failed", level="error", job_id=job.id, error=_error_text(exc))

    def _job_type(self, name: str) -> JobType[Any]:
        if self.registry is REGISTRY:
            return get_job_type(name)
        from chatbot.services.job_types import UnknownJobType

        if name not in self.registry:
            raise UnknownJobType(name)
        return self.registry[name]

    # -- claim ---------------------------------------------------------------------------------------------
    def claim(self, message: JobMessage, lease_until: float) -> ClaimOutcome:
        for _ in range(5):
            now = self._now()
            sets = {
                "status": "running",
                "claim_id": uuid.uuid4().hex,
                "lease_until": round(lease_until, 3),
                "started_at": clock.iso(),
                "updated_at": clock.iso(),
                "message_id": message.message_id,
                "claim_receive_count": message.receive_count,
            }
            condition = Attr("status").eq("queued")
            if message.seq is not None:
                condition = condition & Attr("seq").eq(message.seq)
            result = self.repo.transition(
                message.job_id, condition=condition, sets=sets, adds={"attempts": 1}
            )
            if result.ok:
                return ClaimOutcome("claimed", job=Job.model_validate(result.item))
            if result.item is None:
                return ClaimOutcome("missing", reason="no such job")
            job = Job.model_validate(result.item)
            if message.seq is not None and message.seq != job.seq:
                return ClaimOutcome(
                    "stale", job=job, reason=f"superseded message (seq {message.seq} < {job.seq})"
                )
            if job.status in ("completed", "cancelled"):
                return ClaimOutcome("stale", job=job, reason=f"job already {job.status}")
            if job.status == "queued":
                continue  # changed between our write and its check; look again
            if job.status == "running":
                same_message_back = job.message_id == message.message_id and message.receive_count > (
                    job.claim_receive_count or 0
                )
                if not same_message_back and job.lease_until is not None and job.lease_until > now:
                    lease_left = math.ceil(job.lease_until - now) + 1
                    recheck = max(
                        1,
                        backoff_seconds(
                            1,
                            self.settings.job_backoff_base_seconds,
                            self.settings.job_backoff_max_seconds,
                            self._rand,
                        ),
                    )
                    return ClaimOutcome(
                        "busy",
                        job=job,
                        reason="running elsewhere",
                        retry_in=min(lease_left, recheck, MAX_VISIBILITY_SECONDS),
                    )
                taken = self.repo.transition(
                    job.id,
                    condition=Attr("status").eq("running")
                    & Attr("version").eq(job.version)
                    & Attr("claim_id").eq(job.claim_id or ""),
                    sets=sets,
                    adds={"attempts": 1},
                )
                if taken.ok:
                    log_event(
                        logger,
                        "job_reclaimed",
                        level="warning",
                        job_id=job.id,
                        job_type=job.type,
                        attempt=job.attempts + 1,
                    )
                    return ClaimOutcome("claimed", job=Job.model_validate(taken.item), reclaimed=True)
                continue
            if job.status == "dead":
                if job.dlq_deleted:
                    return ClaimOutcome("stale", job=job, reason="job dead and deleted from the DLQ")
                if job.dead_message_id == message.message_id:
                    return ClaimOutcome("awaiting_dead_letter", job=job, reason="dead; not yet dead-lettered")
                taken = self.repo.transition(
                    job.id,
                    condition=Attr("status").eq("dead") & Attr("version").eq(job.version),
                    sets={**sets, "attempts": 1},
                    adds={"requeued_from_dlq": 1},
                    removes=("finished_at", "ttl", "dead_message_id"),
                )
                if taken.ok:
                    return ClaimOutcome("claimed", job=Job.model_validate(taken.item), redriven=True)
                continue
        return ClaimOutcome("busy", reason="contended", retry_in=1)

    # -- outcomes ------------------------------------------------------------------------------------------
    def _completed(self, job: Job, result: dict[str, Any], duration_ms: int) -> None:
        now = clock.iso()
        self._end_attempt(
            job,
            {
                "status": "completed",
                "result": result,
                "finished_at": now,
                "updated_at": now,
                "ttl": self.service.finished_ttl(),
            },
            lost="before it completed here",
        )
        log_event(
            logger,
            "job_completed",
            job_id=job.id,
            job_type=job.type,
            attempt=job.attempts,
            duration_ms=duration_ms,
        )

    def _failed(self, message: JobMessage, job: Job, exc: Exception, duration_ms: int) -> None:
        error = _error_text(exc)
        now = clock.iso()
        final = job.attempts >= job.max_attempts
        sets: dict[str, Any] = {
            "last_error": error,
            "errors": job.errors_with(error, at=now),
            "updated_at": now,
        }
        if final:
            delay = 0
            sets.update(
                status="dead",
                finished_at=now,
                dead_message_id=message.message_id,
                ttl=self.service.finished_ttl(),
            )
        else:
            delay = backoff_seconds(
                job.attempts,
                self.settings.job_backoff_base_seconds,
                self.settings.job_backoff_max_seconds,
                self._rand,
            )
            sets.update(status="queued", available_at=clock.iso(clock.now() + timedelta(seconds=delay)))
        self._end_attempt(job, sets, lost="before its failure was recorded")
        if final:
            self._after_death(job, error)
            log_event(
                logger,
                "job_dead",
                level="error",
                job_id=job.id,
                job_type=job.type,
                attempt=job.attempts,
                duration_ms=duration_ms,
                error=error,
            )
        else:
            log_event(
                logger,
                "job_failed",
                level="warning",
                job_id=job.id,
                job_type=job.type,
                attempt=job.attempts,
                duration_ms=duration_ms,
                error=error,
                retry_in_seconds=delay,
            )
        self._set_visibility(message, delay)

    def _end_attempt(self, job: Job, sets: dict[str, Any], *, lost: str) -> None:
        """Record how this attempt ended, conditional on our claim; ClaimLost when another worker took the
        job meanwhile (its lease ran out), whose outcome then stands."""
        done = self.repo.transition(
            job.id,
            condition=Attr("status").eq("running") & Attr("claim_id").eq(job.claim_id or ""),
            sets=sets,
            removes=("lease_until", "claim_id"),
            returns="NONE",
        )
        if not done.ok:
            log_event(
                logger,
                "job_claim_lost",
                level="warning",
                job_id=job.id,
                job_type=job.type,
                attempt=job.attempts,
            )
            raise ClaimLost(f"job {job.id} was claimed by another worker {lost}")

    # -- SQS -----------------------------------------------------------------------------------------------
    def batch_lease_until(self, remaining_seconds: float | None) -> float:
        """When the claims of an invocation starting now expire: at its deadline, and never later than the
        queue's visibility timeout from now (when its messages may be delivered again)."""
        visibility = float(self.queue_visibility_timeout())
        if remaining_seconds is None or remaining_seconds <= 0:
            return self._now() + visibility
        return self._now() + max(1.0, min(float(remaining_seconds), visibility))

    def queue_visibility_timeout(self) -> int:
        """The jobs queue's visibility timeout, re-read every few minutes (an operator may change it)."""
        cached, read_at = self._visibility_timeout
        if cached is not None and time.monotonic() - read_at < VISIBILITY_CACHE_SECONDS:
            return cached
        try:
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=self.settings.jobs_queue_url, AttributeNames=["VisibilityTimeout"]
            )["Attributes"]
            value = int(attrs.get("VisibilityTimeout", DEFAULT_VISIBILITY_SECONDS))
        except (ClientError, BotoCoreError, KeyError, ValueError):
            return cached if cached is not None else DEFAULT_VISIBILITY_SECONDS
        self._visibility_timeout = (value, time.monotonic())
        return value

    def _set_visibility(self, message: JobMessage, seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.settings.jobs_queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=max(0, min(int(seconds), MAX_VISIBILITY_SECONDS)),
            )
        except (ClientError, BotoCoreError) as exc:
            # The message then returns after its original visibility timeout instead; nothing is lost.
            logger.warning(
                "could not change message visibility",
                extra={"job_id": message.job_id, "error": type(exc).__name__},
            )

    def touch_heartbeat(self, *, success: bool) -> None:
        """Record worker activity, at most every HEARTBEAT_INTERVAL_SECONDS per process (health only needs
        minutes), but at once for a first success after only failures."""
        now = time.monotonic()
        due = now - self._heartbeat_at >= HEARTBEAT_INTERVAL_SECONDS
        if not due and not (success and not self._heartbeat_success):
            return
        self._heartbeat_at, self._heartbeat_success = now, success
        try:
            self.repo.touch_heartbeat(at=clock.iso(), success=success)
        except Exception:
            logger.warning("worker heartbeat not written", exc_info=True)


def _is_upstream_error(exc: BaseException) -> bool:
    """An error of the openai SDK (without importing it: most jobs never load it)."""
    return type(exc).__module__.split(".")[0] == "openai"


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(redact(text))[:MAX_ERROR_LENGTH]


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


@cache
def get_job_runner() -> JobRunner:
    return JobRunner()


aws.on_reset(get_job_runner.cache_clear)
