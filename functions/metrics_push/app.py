"""Metrics push (EventBridge, every minute): gauges as CloudWatch EMF from the Powertools Metrics flush."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatbot.observability import get_logger, get_metrics, log_event
from chatbot.services.dlq import reconcile_dlq

logger = get_logger("metrics_push")
metrics = get_metrics("metrics_push")


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    # Jobs whose worker died on their last attempt sit in the DLQ with a stale record: mark them dead
    # every minute so list_dlq shows them within a minute.
    reconciled = reconcile_dlq()
    # The gauges (jobs, queues, agents, users, ...) are added here by the metrics-push service.
    duration = time.perf_counter() - started
    metrics.add_metric(name="chatbot_metrics_push_duration_seconds", unit=MetricUnit.Seconds, value=duration)
    log_event(logger, "metrics_pushed", metrics=1, duration_ms=round(duration * 1000, 1))
    return {"status": "ok", "metrics": 1, "reconciled": reconciled.model_dump()}
