"""Metrics push (EventBridge, every minute): the gauges as CloudWatch EMF through Powertools Metrics.

Thin: `chatbot.services.metrics_push` reads the gauges; this publishes them, plus its own duration, which the
MetricsPushFailing alarm expects every minute.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chatbot.config import get_settings
from chatbot.observability import get_logger, get_metrics, log_event
from chatbot.services import metrics_push
from chatbot.services.dlq import reconcile_dlq

SERVICE = "metrics_push"
logger = get_logger(SERVICE)
metrics = get_metrics(SERVICE)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        # Jobs whose worker died on their last attempt sit in the DLQ with a stale record: mark them dead
        # every minute so list_dlq shows them within a minute (and the gauges below count them).
        reconciled = reconcile_dlq()
        published = metrics_push.publish(metrics, metrics_push.collect(get_settings()), SERVICE)
    except Exception as exc:
        log_event(logger, "metrics_push_failed", "error", error_type=type(exc).__name__)
        raise
    duration = time.perf_counter() - started
    metrics.add_metric(name="chatbot_metrics_push_duration_seconds", unit=MetricUnit.Seconds, value=duration)
    log_event(logger, "metrics_pushed", metrics=published + 1, duration_ms=round(duration * 1000, 1))
    return {"status": "ok", "metrics": published + 1, "reconciled": reconciled.model_dump()}
