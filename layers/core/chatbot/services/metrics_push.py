"""The gauges metrics-push publishes every minute (CloudWatch EMF via Powertools Metrics, namespace Chatbot).

Names follow the original's Prometheus metrics. Counting stays cheap (`chatbot.dal.gauges`): the jobs index
is read once (per status partition, only the type and times), configuration tables are counted with
`Select=COUNT` scans, table sizes come from DescribeTable and queue depths from SQS.

Gauges the alarms read (`chatbot_worker_healthy`, `chatbot_agents_default`, `chatbot_database_size_bytes`,
`chatbot_webhook_events_pending`, `chatbot_ingestion_stuck_total`, ...) carry only the `service` dimension
Powertools adds; breakdowns (by status, type, role, table) are separate single metrics with one more
dimension. A gauge is published even when it is 0, so a value that drops is seen to drop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from boto3.dynamodb.conditions import Attr

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal import gauges
from chatbot.dal.agents import AgentRepository
from chatbot.dal.jobs import JobRepository
from chatbot.dal.prompts import PromptRepository
from chatbot.dal.users import UsersRepository
from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.models.auth import ROLES
from chatbot.models.jobs import JOB_STATUSES, WorkerHeartbeat
from chatbot.observability import NAMESPACE
from chatbot.services.health import assess_worker
from chatbot.services.job_types import REGISTRY

ACTIVE_STATUSES = ("queued", "running")
INGESTION_JOB_TYPES = ("file_ingest", "vector_store_file_poll")
INGESTION_STUCK_SECONDS = 30 * 60
WEBHOOK_JOB_TYPE = "webhook_event"


@dataclass(frozen=True)
class Gauge:
    name: str
    value: float
    unit: MetricUnit = MetricUnit.Count
    dimensions: dict[str, str] = field(default_factory=dict)


def collect(settings: Settings, now: datetime | None = None) -> list[Gauge]:
    """Every gauge, read now."""
    now = now or clock.now()
    jobs = JobRepository(settings.jobs_table)
    summaries = {
        status: gauges.summarize_jobs(jobs, status, with_times=status in ACTIVE_STATUSES)
        for status in JOB_STATUSES
    }
    out = [Gauge("chatbot_jobs_total", s.total, dimensions={"status": s.status}) for s in summaries.values()]
    for job_type in sorted(set(REGISTRY).union(*(s.by_type for s in summaries.values()))):
        out += [
            Gauge("chatbot_jobs_by_type", s.by_type[job_type], dimensions={"type": job_type, "status": st})
            for st, s in summaries.items()
        ]
    out.append(Gauge("chatbot_jobs_queue_depth", gauges.queue_depth(settings.jobs_queue_url)))
    out.append(Gauge("chatbot_jobs_dlq_depth", gauges.queue_depth(settings.jobs_dlq_url)))
    active = [summaries[status] for status in ACTIVE_STATUSES]
    out.append(Gauge("chatbot_webhook_events_pending", sum(s.by_type[WEBHOOK_JOB_TYPE] for s in active)))
    out.append(Gauge("chatbot_ingestion_stuck_total", _stuck_ingestions(active, now)))

    heartbeat = WorkerHeartbeat.model_validate(jobs.get_heartbeat() or {})
    worker = assess_worker(heartbeat, summaries["queued"], now)
    out.append(Gauge("chatbot_worker_healthy", 0 if worker.status == "unhealthy" else 1))
    if worker.last_job_at is not None:
        age = max(0.0, (now - clock.parse_iso(worker.last_job_at)).total_seconds())
        out.append(Gauge("chatbot_worker_last_job_seconds", round(age, 3), MetricUnit.Seconds))

    agents = AgentRepository(settings.agents_table)
    out.append(
        Gauge(
            "chatbot_agents_total",
            gauges.count_items(agents, Attr("sk").eq("AGENT") & Attr("pk").begins_with("AGENT#")),
        )
    )
    out.append(Gauge("chatbot_agents_default", 1 if agents.get_default_agent() is not None else 0))
    out.append(
        Gauge(
            "chatbot_prompts_total",
            gauges.count_items(
                PromptRepository(settings.prompts_table),
                Attr("sk").eq("PROMPT") & Attr("pk").begins_with("PROMPT#"),
            ),
        )
    )
    out.append(
        Gauge(
            "chatbot_vector_stores_total",
            gauges.count_items(VectorStoreRepository(settings.vector_stores_table), Attr("sk").eq("STORE")),
        )
    )
    users = gauges.active_users(UsersRepository(settings.users_table))
    out += [Gauge("chatbot_admin_users_total", users[role], dimensions={"role": role}) for role in ROLES]

    sizes = gauges.table_sizes(_table_names(settings))
    out.append(Gauge("chatbot_database_size_bytes", sum(sizes.values()), MetricUnit.Bytes))
    out += [
        Gauge("chatbot_database_size_bytes", size, MetricUnit.Bytes, {"table": name})
        for name, size in sizes.items()
    ]
    return out


def publish(metrics: Metrics, values: Iterable[Gauge], service: str) -> int:
    """Add the gauges to `metrics` (flushed by `log_metrics`); dimensioned ones are flushed one by one now."""
    count = 0
    for gauge in values:
        count += 1
        if not gauge.dimensions:
            metrics.add_metric(name=gauge.name, unit=gauge.unit, value=gauge.value)
            continue
        with single_metric(
            name=gauge.name,
            unit=gauge.unit,
            value=gauge.value,
            namespace=NAMESPACE,
            default_dimensions={"service": service, **gauge.dimensions},
        ):
            pass
    return count


def _stuck_ingestions(active: list[gauges.JobSummary], now: datetime) -> int:
    """File ingestion jobs still queued or running 30 minutes after they were created."""
    cutoff = clock.iso(now - timedelta(seconds=INGESTION_STUCK_SECONDS))
    return sum(
        1
        for summary in active
        for job_type, created_at, _ in summary.times
        if job_type in INGESTION_JOB_TYPES and created_at and created_at <= cutoff
    )


def _table_names(settings: Settings) -> list[str]:
    return [
        settings.agents_table,
        settings.prompts_table,
        settings.vector_stores_table,
        settings.conversations_table,
        settings.jobs_table,
        settings.audit_table,
        settings.users_table,
        settings.api_keys_table,
        settings.webhook_events_table,
        settings.rate_limits_table,
        settings.usage_table,
    ]
