"""Health checks: each a small function of the settings, run concurrently, combined into one report.

A check returns `CheckResult(status=healthy|warning|unhealthy|unknown, message)`. The overall status is
`unhealthy` when a critical check is unhealthy (the admin action then answers 503), `degraded` when any other
check is unhealthy or warns, else `ok`. Extend with `register(HealthCheck(name, run, critical))`; a check that
raises is reported unhealthy with a generic message (and logged), never with the exception text.

Checks: database (critical), secrets, openai (a models list, cached 60 s; warning when no key is configured),
worker (unhealthy only when a job has been waiting over 5 minutes and no job started in those 5 minutes;
unknown when it never ran), queue (warning above 100 waiting), dlq (warning when not empty), failed_jobs
(warning when a job died in the last 24 hours). The worker rule is shared with the `chatbot_worker_healthy`
gauge of metrics-push (`assess_worker`).
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from chatbot import aws, clock, secrets
from chatbot.config import Settings
from chatbot.dal import gauges
from chatbot.dal.jobs import JobRepository
from chatbot.dal.users import UsersRepository
from chatbot.errors import ServiceUnavailable
from chatbot.models.jobs import WorkerHeartbeat
from chatbot.observability import get_logger

WORKER_STALL_SECONDS = 300
QUEUE_WARNING_DEPTH = 100
OPENAI_CACHE_SECONDS = 60.0
OPENAI_TIMEOUT_SECONDS = 5.0

CheckStatus = Literal["healthy", "warning", "unhealthy", "unknown"]
OverallStatus = Literal["ok", "degraded", "unhealthy"]


class CheckResult(BaseModel):
    status: CheckStatus
    message: str
    latency_ms: float | None = None
    details: dict[str, Any] | None = None


class HealthReport(BaseModel):
    status: OverallStatus
    timestamp: str
    checks: dict[str, CheckResult]
    metrics: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    name: str
    run: Callable[[Settings], CheckResult]
    critical: bool = False


def check_database(settings: Settings) -> CheckResult:
    # One strongly consistent read of a key that never exists: proves the endpoint, credentials and table.
    UsersRepository(settings.users_table).get("HEALTH#probe", "HEALTH", consistent=True)
    return CheckResult(status="healthy", message="DynamoDB reachable")


def check_secrets(settings: Settings) -> CheckResult:
    version = secrets.get_secret(settings.admin_token_secret_id, max_age=settings.admin_token_cache_seconds)
    if version is None or not version.value:
        return CheckResult(status="unhealthy", message="Admin token secret has no current value")
    return CheckResult(status="healthy", message="Secrets readable")


@dataclass(frozen=True)
class WorkerAssessment:
    status: Literal["healthy", "unhealthy", "unknown"]
    message: str
    last_job_at: str | None
    waiting_since: str | None  # when the job that has waited longest became runnable


def assess_worker(
    heartbeat: WorkerHeartbeat, queued: gauges.JobSummary, now: datetime | None = None
) -> WorkerAssessment:
    """Unhealthy only when work has waited over 5 minutes with no job started in those 5 minutes; an idle
    worker with nothing to do is healthy (the original called that a dead worker); unknown before its first
    job. A queued job waits from its `available_at` (the end of its retry back-off) or its creation."""
    now = now or clock.now()
    stalled_before = now - timedelta(seconds=WORKER_STALL_SECONDS)
    waiting = min((available or created for _, created, available in queued.times), default=None)
    last = heartbeat.last_job_at
    progressed = last is not None and clock.parse_iso(last) >= stalled_before
    if waiting is not None and clock.parse_iso(waiting) <= stalled_before and not progressed:
        minutes = int((now - clock.parse_iso(waiting)).total_seconds() // 60)
        return WorkerAssessment(
            "unhealthy", f"Jobs waiting for {minutes} minutes and no job started", last, waiting
        )
    if last is None:
        return WorkerAssessment("unknown", "No worker activity recorded", last, waiting)
    return WorkerAssessment("healthy", "Worker active", last, waiting)


def check_worker(settings: Settings) -> CheckResult:
    repo = JobRepository(settings.jobs_table)
    heartbeat = WorkerHeartbeat.model_validate(repo.get_heartbeat() or {})
    assessment = assess_worker(heartbeat, gauges.summarize_jobs(repo, "queued", with_times=True))
    return CheckResult(
        status=assessment.status,
        message=assessment.message,
        details={"last_job_at": assessment.last_job_at, "waiting_since": assessment.waiting_since},
    )


def check_queue(settings: Settings) -> CheckResult:
    depth = gauges.queue_depth(settings.jobs_queue_url)
    if depth > QUEUE_WARNING_DEPTH:
        return CheckResult(status="warning", message=f"High queue depth: {depth}", details={"depth": depth})
    return CheckResult(status="healthy", message="Queue depth normal", details={"depth": depth})


def check_dlq(settings: Settings) -> CheckResult:
    depth = gauges.queue_depth(settings.jobs_dlq_url)
    if depth:
        return CheckResult(
            status="warning", message=f"{depth} message(s) in the dead-letter queue", details={"depth": depth}
        )
    return CheckResult(status="healthy", message="Dead-letter queue empty", details={"depth": 0})


def check_failed_jobs(settings: Settings) -> CheckResult:
    since = clock.iso(clock.now() - timedelta(days=1))
    failed = gauges.count_jobs_created_since(JobRepository(settings.jobs_table), "dead", since)
    if failed:
        return CheckResult(
            status="warning",
            message=f"{failed} job(s) failed in the last 24 hours",
            details={"count": failed},
        )
    return CheckResult(status="healthy", message="No failed jobs in the last 24 hours", details={"count": 0})


_openai_lock = threading.Lock()
_openai_cached: tuple[float, CheckResult] | None = None


def check_openai(settings: Settings) -> CheckResult:
    """One models list, remembered for 60 s so a health poller never costs an upstream call per request."""
    global _openai_cached
    with _openai_lock:
        if _openai_cached is not None and time.monotonic() - _openai_cached[0] < OPENAI_CACHE_SECONDS:
            return _openai_cached[1]
        result = _probe_openai()
        _openai_cached = (time.monotonic(), result)
        return result


def _probe_openai() -> CheckResult:
    from chatbot.upstream.openai_client import get_openai_client

    try:
        client = get_openai_client()
    except ServiceUnavailable:
        return CheckResult(status="warning", message="OpenAI API key is not configured")
    try:
        client.with_options(timeout=OPENAI_TIMEOUT_SECONDS, max_retries=0).models.list()
    except Exception as exc:  # noqa: BLE001 - any upstream failure is this check's result
        status = getattr(exc, "status_code", None)
        message = f"OpenAI API error (HTTP {status})" if status else "OpenAI API unreachable"
        return CheckResult(status="unhealthy", message=message)
    return CheckResult(status="healthy", message="OpenAI API accessible")


@aws.on_reset
def forget_openai_check() -> None:
    global _openai_cached
    with _openai_lock:
        _openai_cached = None


CHECKS: list[HealthCheck] = [
    HealthCheck("database", check_database, critical=True),
    HealthCheck("secrets", check_secrets),
    HealthCheck("openai", check_openai),
    HealthCheck("worker", check_worker),
    HealthCheck("queue", check_queue),
    HealthCheck("dlq", check_dlq),
    HealthCheck("failed_jobs", check_failed_jobs),
]


def register(check: HealthCheck) -> None:
    """Add a check, or replace the one with the same name."""
    CHECKS[:] = [c for c in CHECKS if c.name != check.name] + [check]


def run_health(settings: Settings, checks: list[HealthCheck] | None = None) -> HealthReport:
    checks = list(CHECKS if checks is None else checks)
    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        # Each check runs in a copy of this context, so its log lines keep the request id.
        futures = [pool.submit(contextvars.copy_context().run, _run_one, c, settings) for c in checks]
        results = [f.result() for f in futures]
    by_name = {c.name: r for c, r in zip(checks, results, strict=True)}
    if any(c.critical and by_name[c.name].status == "unhealthy" for c in checks):
        status: OverallStatus = "unhealthy"
    elif any(r.status in ("unhealthy", "warning") for r in results):
        status = "degraded"
    else:
        status = "ok"
    return HealthReport(status=status, timestamp=clock.iso(), checks=by_name, metrics=_metrics(by_name))


def _metrics(results: dict[str, CheckResult]) -> dict[str, Any]:
    """The original's `metrics` block, from the checks' details."""

    def detail(check: str, key: str) -> Any:
        result = results.get(check)
        return (result.details or {}).get(key) if result is not None else None

    return {
        "queue_depth": detail("queue", "depth"),
        "dlq_depth": detail("dlq", "depth"),
        "worker_last_seen": detail("worker", "last_job_at"),
        "failed_jobs_24h": detail("failed_jobs", "count"),
    }


def _run_one(check: HealthCheck, settings: Settings) -> CheckResult:
    started = time.perf_counter()
    try:
        result = check.run(settings)
    except Exception:  # noqa: BLE001 - a failing dependency is a health result, not an error of this request
        get_logger("chatbot").exception(
            "health check failed", extra={"event": "health_check_failed", "check": check.name}
        )
        result = CheckResult(status="unhealthy", message=f"{check.name} check failed")
    if result.latency_ms is None:
        result = result.model_copy(update={"latency_ms": round((time.perf_counter() - started) * 1000, 1)})
    return result
