"""Every metric filter in template.yaml matches the log line the code really writes, and publishes what the
alarms and the dashboard expect.

Each filter has a driver: a request or job on the local stack (or, where the stack cannot be made to fail,
the handler in this process) that makes the code write its line. The test takes that line as written, applies
the filter's pattern and transformation (`infra.local.metric_filters`), and checks the metric, its value and
its dimensions, and that the filter watches the log group of the function that wrote the line. A filter added
to the template without a driver here fails `test_every_metric_filter_has_a_driver`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.local.metric_filters import MetricFilter, filters_of
from infra.local.template import load_template
from tests.conftest import TEMPLATE
from tests.log_capture import json_lines, powertools_output

Line = dict[str, Any]


@dataclass(frozen=True)
class Case:
    driver: str  # a key of DRIVERS
    event: str  # the line's `event`
    function: str  # whose log group the filter must watch
    value: Callable[[Line], float] = lambda line: 1.0
    dimensions: dict[str, str] = field(default_factory=dict)


STACK_CASES = {
    "JobsProcessedByTypeMetricFilter": Case(
        "job_completed", "job_completed", "WorkerFunction", dimensions={"job_type": "diagnostic"}
    ),
    "JobsProcessedMetricFilter": Case("job_completed", "job_completed", "WorkerFunction"),
    "JobsFailedByTypeMetricFilter": Case(
        "job_failed", "job_failed", "WorkerFunction", dimensions={"job_type": "diagnostic"}
    ),
    "JobsFailedMetricFilter": Case("job_failed", "job_failed", "WorkerFunction"),
    "JobsDeadMetricFilter": Case("job_dead", "job_dead", "WorkerFunction"),
    "AdminRequestsByStatusMetricFilter": Case(
        "admin_ok", "admin_request", "AdminFunction", dimensions={"resource": "agent", "status_class": "2xx"}
    ),
    "AdminRequestsMetricFilter": Case("admin_ok", "admin_request", "AdminFunction"),
    "AdminErrorsMetricFilter": Case("admin_upstream_5xx", "admin_request", "AdminFunction"),
    "UpstreamErrorsAdminMetricFilter": Case("admin_upstream_5xx", "upstream_error", "AdminFunction"),
    "WebhookEventsMetricFilter": Case(
        "webhook_rejected", "webhook_received", "WebhookFunction", dimensions={"status": "rejected"}
    ),
    "ChatCompletedMetricFilter": Case("chat_ok", "chat_completed", "ChatFunction"),
    "ChatLatencyMetricFilter": Case(
        "chat_ok", "chat_completed", "ChatFunction", value=lambda line: float(line["duration_ms"])
    ),
    "ChatTtftMetricFilter": Case(
        "chat_ok", "chat_completed", "ChatFunction", value=lambda line: float(line["ttft_ms"])
    ),
    "ChatTokensMetricFilter": Case(
        "chat_ok", "chat_completed", "ChatFunction", value=lambda line: float(line["total_tokens"])
    ),
    "ChatFailedMetricFilter": Case("chat_upstream_500", "chat_failed", "ChatFunction"),
    "ChatErrorsMetricFilter": Case("chat_upstream_500", "chat_failed", "ChatFunction"),
    "UpstreamErrorsChatMetricFilter": Case("chat_upstream_500", "upstream_error", "ChatFunction"),
    "UpstreamErrorsWorkerMetricFilter": Case("worker_upstream_500", "upstream_error", "WorkerFunction"),
}
IN_PROCESS_CASES = {
    "MetricsPushFailuresMetricFilter": Case(
        "metrics_push_fails", "metrics_push_failed", "MetricsPushFunction"
    ),
    "BackupFailuresMetricFilter": Case("backup_fails", "backup_failed", "BackupFunction"),
}
# Filters whose code path does not exist yet, with the reason; each one still needs a driver to pass.
PENDING: dict[str, str] = {}


def template_filters() -> dict[str, dict[str, Any]]:
    """The metric filters declared in template.yaml."""
    resources = load_template(TEMPLATE)["Resources"]
    return {lid: r for lid, r in resources.items() if r.get("Type") == "AWS::Logs::MetricFilter"}


def test_every_metric_filter_has_a_driver():
    declared = set(template_filters())
    driven = set(STACK_CASES) | set(IN_PROCESS_CASES) | set(PENDING)
    assert declared - driven == set(), "metric filters without a driver in this test"
    assert driven - declared == set(), "drivers for filters the template no longer has"


def check(flt: MetricFilter, case: Case, line: Line, log_group: str) -> None:
    assert flt.log_group == log_group, f"{flt.name} watches {flt.log_group}, the line is in {log_group}"
    points = flt.apply(line)
    (transformation,) = flt.transformations
    assert len(points) == 1, f"{flt.name} pattern {flt.pattern.text} does not match {line}"
    (point,) = points
    assert point.namespace == "Chatbot" == transformation["MetricNamespace"]
    assert point.name == transformation["MetricName"]
    assert point.value == case.value(line) and point.value >= 0
    assert dict(point.dimensions) == case.dimensions


# --- drivers on the local stack ---------------------------------------------------------------------------
_driven: dict[str, list[Line]] = {}


def _wait_line(
    stack: Any, since: int, event: str, match: Callable[[Line], bool], timeout: float = 30
) -> None:
    stack.wait_for_log(lambda e: e.get("event") == event and match(e), since=since, timeout=timeout)


def _diagnostic(stack: Any, event: str, max_attempts: int | None = None, **payload: Any) -> None:
    from chatbot.services.jobs import JobService

    mark = stack.mark()
    job = JobService().enqueue(
        "diagnostic", {"note": "metric filter test", **payload}, max_attempts=max_attempts
    )
    _wait_line(stack, mark, event, lambda e: e.get("job_id") == job.id)


def drive_job_completed(stack: Any) -> None:
    _diagnostic(stack, "job_completed")


def drive_job_failed(stack: Any) -> None:
    _diagnostic(stack, "job_failed", fail_times=1)


def drive_job_dead(stack: Any) -> None:
    _diagnostic(stack, "job_dead", max_attempts=1, fail_permanently=True)


def drive_admin_ok(stack: Any) -> None:
    mark = stack.mark()
    with stack.http(headers=stack.admin_headers) as http:
        assert http.get("/admin/agents").status_code == 200
    _wait_line(stack, mark, "admin_request", lambda e: e.get("action") == "list_agents")


def drive_admin_upstream_5xx(stack: Any) -> None:
    fake = stack.fake_openai
    fake.queue_faults("500", "500", "500", path="/v1/vector_stores")
    try:
        mark = stack.mark()
        with stack.http(headers=stack.admin_headers) as http:
            response = http.post("/admin/vector-stores", json={"name": f"mf-{uuid.uuid4().hex[:8]}"})
        assert response.status_code == 502, response.text
        _wait_line(stack, mark, "admin_request", lambda e: e.get("status_class") == "5xx")
    finally:
        fake.clear_faults()


def drive_webhook_rejected(stack: Any) -> None:
    import json

    from infra.local.fake_openai import build_event, new_webhook_secret, sign_webhook

    event = build_event("vector_store.file.completed", {"id": "file-mf", "vector_store_id": "vs_mf"})
    body = json.dumps(event).encode()
    headers = {
        **sign_webhook(new_webhook_secret(), body, msg_id=event["id"]),
        "content-type": "application/json",
    }
    mark = stack.mark()
    with stack.http() as http:
        assert http.post("/webhooks/openai", content=body, headers=headers).status_code == 401
    _wait_line(stack, mark, "webhook_received", lambda e: e.get("status") == "rejected")


def _chat(stack: Any, message: str, event: str) -> None:
    conversation = f"conv_{uuid.uuid4().hex[:12]}"
    mark = stack.mark()
    with (
        stack.http() as http,
        http.stream("POST", "/chat", json={"message": message, "conversation_id": conversation}) as response,
    ):
        assert response.status_code == 200
        response.read()
    _wait_line(stack, mark, event, lambda e: e.get("conversation_id") == conversation)


def drive_chat_ok(stack: Any) -> None:
    _chat(stack, "hello from the metric filter test", "chat_completed")


def drive_chat_upstream_500(stack: Any) -> None:
    _chat(stack, "fail please [[fault:500]]", "chat_failed")


def drive_worker_upstream_500(stack: Any) -> None:
    import openai

    from chatbot import clock
    from chatbot.dal.vector_stores import VectorStoreRepository
    from chatbot.services.jobs import JobService

    fake = stack.fake_openai
    upstream = openai.OpenAI(api_key="sk-test", base_url=fake.api_base).vector_stores.create(name="mf")
    store_id, file_id, now = f"vs_{uuid.uuid4().hex[:8]}", f"f_{uuid.uuid4().hex[:8]}", clock.iso()
    repo = VectorStoreRepository()
    repo.create_store(
        {"id": store_id, "name": "mf", "openai_store_id": upstream.id, "status": "ingesting"}
        | {"created_at": now, "updated_at": now}
    )
    repo.create_file(
        {"id": file_id, "vector_store_id": store_id, "name": "mf.txt", "mime_type": "text/plain"}
        | {"status": "pending", "created_at": now, "updated_at": now}
    )
    # More 500s than the SDK's own retries absorb: the first attempt's upload fails (the retry succeeds).
    fake.queue_faults("500", "500", "500", path="/v1/files")
    try:
        mark = stack.mark()
        JobService().enqueue(
            "file_ingest",
            {"vector_store_id": store_id, "file_id": file_id, "file_data": base64.b64encode(b"x").decode()},
        )
        _wait_line(stack, mark, "job_failed", lambda e: e.get("job_type") == "file_ingest")
    finally:
        fake.clear_faults()


DRIVERS: dict[str, Callable[[Any], None]] = {
    name.removeprefix("drive_"): fn for name, fn in globals().items() if name.startswith("drive_")
}


def _lines(stack: Any, driver: str) -> list[Line]:
    """The log lines written while `driver` ran (each driver runs once per stack)."""
    if driver not in _driven:
        mark = stack.mark()
        DRIVERS[driver](stack)
        _driven[driver] = stack.logs(mark)
    return _driven[driver]


@pytest.mark.parametrize("filter_id", sorted(STACK_CASES))
def test_filter_matches_the_line_the_stack_writes(local_stack, filter_id):
    case = STACK_CASES[filter_id]
    resource = local_stack.stack.resources[filter_id]
    flt = MetricFilter.from_properties(filter_id, resource.properties)
    lines = [line for line in _lines(local_stack, case.driver) if line.get("event") == case.event]
    assert lines, f"driver {case.driver} wrote no {case.event} line"

    check(flt, case, lines[-1], local_stack.stack.functions[case.function].log_group_name)


# --- drivers in this process --------------------------------------------------------------------------------
def test_metrics_push_failure_matches_its_filter(aws_env_full, monkeypatch):
    from botocore.exceptions import ClientError

    from chatbot import aws
    from chatbot.config import get_settings
    from chatbot.errors import ChatbotError
    from functions.metrics_push import app
    from infra.local.runtime import LambdaContext

    filters = {
        f.name: f
        for f in filters_of((lid, r.type, r.properties) for lid, r in aws_env_full.resources.items())
    }
    spec = aws_env_full.functions["MetricsPushFunction"]
    monkeypatch.setenv("JOBS_TABLE", "no-such-table")
    get_settings.cache_clear()
    aws.reset()
    context = LambdaContext(spec.name, spec.arn, 128, 60.0, spec.log_group_name)

    with powertools_output() as output, pytest.raises((ChatbotError, ClientError)):
        app.handler({}, context)

    lines = [line for line in json_lines(output()) if line.get("event") == "metrics_push_failed"]
    assert len(lines) == 1 and lines[0]["service"] == "metrics_push"
    case = IN_PROCESS_CASES["MetricsPushFailuresMetricFilter"]
    check(filters["MetricsPushFailuresMetricFilter"], case, lines[0], spec.log_group_name)


def test_backup_failure_matches_its_filter(aws_env_full, monkeypatch):
    from chatbot import aws
    from chatbot.config import get_settings
    from functions.backup import app
    from infra.local.runtime import LambdaContext

    filters = {
        f.name: f
        for f in filters_of((lid, r.type, r.properties) for lid, r in aws_env_full.resources.items())
    }
    spec = aws_env_full.functions["BackupFunction"]
    monkeypatch.setenv("BACKUP_BUCKET", "no-such-bucket")
    get_settings.cache_clear()
    aws.reset()
    context = LambdaContext(spec.name, spec.arn, 128, 60.0, spec.log_group_name)

    with powertools_output() as output, pytest.raises(Exception):  # noqa: B017 - any failure must be logged
        app.handler({}, context)

    lines = [line for line in json_lines(output()) if line.get("event") == "backup_failed"]
    assert len(lines) == 1 and lines[0]["service"] == "backup"
    case = IN_PROCESS_CASES["BackupFailuresMetricFilter"]
    check(filters["BackupFailuresMetricFilter"], case, lines[0], spec.log_group_name)
