"""The local stack's moving parts in-process: gateway (routes, v2 events, CORS, static), runtime, SQS event
shape and batch-failure rules, schedules."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime

import boto3
import pytest
from starlette.testclient import TestClient

from infra.local.gateway import Gateway, Router, http_response_from_result
from infra.local.pollers import failed_ids, sqs_event
from infra.local.provision import Route
from infra.local.runtime import Runtime
from infra.local.scheduler import Cron, ScheduleError, Scheduler, rate_seconds


@pytest.fixture
def runtime(aws_env):
    return Runtime(aws_env)


@pytest.fixture
def gateway(aws_env, runtime, tmp_path):
    (tmp_path / "widget").mkdir()
    (tmp_path / "widget" / "index.html").write_text("<h1>widget</h1>")
    (tmp_path / "console").mkdir()
    (tmp_path / "secret.txt").write_text("no")
    fired: list[str] = []
    gw = Gateway(
        aws_env,
        runtime,
        static_dirs={"widget": tmp_path / "widget", "console": tmp_path / "console"},
        fire=lambda schedule_id: fired.append(schedule_id) or {"fired": schedule_id},
    )
    return gw


def _capture(runtime: Runtime, function: str, result: object = None):
    events: list[dict] = []

    def handler(event, context):
        events.append({"event": event, "function_name": context.function_name})
        if isinstance(result, Exception):
            raise result
        return result

    runtime.register(function, handler)
    return events


# -- routing -----------------------------------------------------------------------------------------
def test_router_prefers_literal_paths_then_exact_methods():
    router = Router(
        [
            Route("ANY", "/admin/{proxy+}", "Admin", "Api"),
            Route("GET", "/admin/health", "Health", "Api"),
            Route("ANY", "/items/{id}", "Any", "Api"),
            Route("GET", "/items/{id}", "Get", "Api"),
            Route("ANY", "$default", "Fallback", "Api"),
        ]
    )

    assert router.match("GET", "/admin/health")[0].function == "Health"
    assert router.match("POST", "/admin/health")[0].function == "Admin"
    assert router.match("GET", "/admin/a/b")[1] == {"proxy": "a/b"}
    assert router.match("GET", "/items/x%20y") == (Route("GET", "/items/{id}", "Get", "Api"), {"id": "x y"})
    assert router.match("DELETE", "/items/1")[0].function == "Any"
    assert router.match("GET", "/elsewhere")[0].function == "Fallback"


def test_gateway_unknown_route_is_a_json_404(gateway):
    with TestClient(gateway) as client:
        response = client.get("/no/such/route")

    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Not found", "code": "not_found", "status": 404}}


# -- lambda routes: API Gateway v2 events ------------------------------------------------------------
def test_gateway_invokes_lambda_routes_with_an_http_api_v2_event(gateway, runtime, aws_env):
    events = _capture(
        runtime,
        "WebhookFunction",
        {"statusCode": 202, "headers": {"X-Reply": "1"}, "cookies": ["seen=1; Path=/"], "body": "accepted"},
    )

    with TestClient(gateway) as client:
        response = client.post(
            "/webhooks/openai?x=1&x=2&y=",
            content=b'{"a": 1}',
            headers={"Content-Type": "application/json", "Cookie": "a=1; b=2", "X-Multi": "v"},
        )

    assert response.status_code == 202
    assert response.text == "accepted"
    assert response.headers["x-reply"] == "1"
    assert response.headers["set-cookie"] == "seen=1; Path=/"
    (call,) = events
    event = call["event"]
    assert call["function_name"] == aws_env.functions["WebhookFunction"].name
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /webhooks/openai"
    assert event["rawPath"] == "/webhooks/openai"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"] and event["headers"]["x-multi"] == "v"
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/webhooks/openai",
        "protocol": "HTTP/1.1",
        "sourceIp": "testclient",
        "userAgent": "testclient",
    }
    assert ctx["routeKey"] == "POST /webhooks/openai" and ctx["stage"] == "$default"
    assert ctx["accountId"] == aws_env.account_id and ctx["apiId"] == aws_env.physical_id("HttpApi")
    assert ctx["requestId"] and abs(ctx["timeEpoch"] / 1000 - time.time()) < 60


def test_gateway_sends_binary_bodies_base64_encoded(gateway, runtime):
    events = _capture(
        runtime,
        "WebhookFunction",
        {"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b"\x00\x01").decode()},
    )

    with TestClient(gateway) as client:
        response = client.post("/webhooks/openai", content=b"\xff\xfe", headers={"Content-Type": "image/png"})

    assert response.content == b"\x00\x01"
    assert events[0]["event"]["isBase64Encoded"] is True
    assert base64.b64decode(events[0]["event"]["body"]) == b"\xff\xfe"


def test_gateway_turns_a_handler_error_into_api_gateways_500(gateway, runtime):
    _capture(runtime, "WebhookFunction", RuntimeError("boom"))

    with TestClient(gateway) as client:
        response = client.post("/webhooks/openai", json={})

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


def test_http_response_without_status_code_is_json_200():
    assert http_response_from_result({"ok": True}) == (
        200,
        [(b"content-type", b"application/json")],
        b'{"ok": true}',
    )
    status, _, body = http_response_from_result({"statusCode": 204})
    assert (status, body) == (204, b"")


# -- ASGI routes -------------------------------------------------------------------------------------
def test_gateway_mounts_asgi_apps_with_the_lambda_event_in_the_scope(gateway, runtime, monkeypatch):
    seen: dict = {}

    async def app(scope, receive, send):
        seen.update(event=scope["aws.event"], context=scope["aws.context"], client=scope["client"])
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for chunk in (b"a", b"b"):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    monkeypatch.setattr(runtime, "asgi_app", lambda function: app if function == "ChatFunction" else None)

    with TestClient(gateway) as client:
        response = client.post("/chat", json={"message": "hi"}, headers={"Origin": "https://site.example"})

    assert response.text == "ab"
    assert response.headers["access-control-allow-origin"] == "*"
    assert seen["event"]["routeKey"] == "POST /chat"
    assert seen["event"]["requestContext"]["http"]["sourceIp"] == seen["client"][0]
    assert seen["context"].function_name.endswith("-chat")
    assert seen["context"].get_remaining_time_in_millis() > 0


def test_gateway_answers_cors_preflights_like_api_gateway(gateway):
    with TestClient(gateway) as client:
        response = client.options(
            "/chat",
            headers={
                "Origin": "https://site.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )

    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "content-type" in response.headers["access-control-allow-headers"]
    assert response.headers["access-control-max-age"] == "600"


# -- static pages and local helpers -----------------------------------------------------------------
def test_gateway_serves_the_static_pages(gateway):
    with TestClient(gateway, follow_redirects=False) as client:
        root = client.get("/")
        bare = client.get("/widget")
        page = client.get("/widget/")
        escape = client.get("/widget/%2e%2e/secret.txt")
        missing = client.get("/console/")

    assert (root.status_code, root.headers["location"]) == (302, "/widget/")
    assert (bare.status_code, bare.headers["location"]) == (302, "/widget/")
    assert page.status_code == 200 and page.text == "<h1>widget</h1>"
    assert page.headers["content-type"].startswith("text/html")
    assert escape.status_code == 404
    assert missing.status_code == 404


def test_gateway_lambda_invoke_api_reports_results_and_errors(gateway, runtime):
    _capture(runtime, "MetricsPushFunction", {"status": "ok"})
    _capture(runtime, "BackupFunction", ValueError("bad"))

    with TestClient(gateway) as client:
        ok = client.post("/2015-03-31/functions/MetricsPushFunction/invocations", json={"a": 1})
        failed = client.post("/2015-03-31/functions/BackupFunction/invocations", json={})
        unknown = client.post("/2015-03-31/functions/Nope/invocations", json={})
        fired = client.post("/_local/schedules/MetricsPushFunctionEveryMinute/fire")

    assert ok.json() == {"status": "ok"}
    assert failed.headers["x-amz-function-error"] == "Unhandled"
    assert failed.json()["errorType"] == "ValueError" and failed.json()["errorMessage"] == "bad"
    assert unknown.status_code == 404 and unknown.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    assert fired.json() == {"data": {"fired": "MetricsPushFunctionEveryMinute"}}


def test_runtime_imports_handlers_by_module_name(runtime):
    import functions.metrics_push.app as direct

    assert runtime.module("MetricsPushFunction") is direct
    assert runtime.handler("MetricsPushFunction") is direct.handler


# -- SQS event source mapping rules -----------------------------------------------------------------
def test_sqs_event_has_lambdas_record_shape():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": '{"job_id": "j"}',
        "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {"kind": {"StringValue": "x", "DataType": "String"}},
    }

    (record,) = sqs_event([message], "arn:aws:sqs:us-east-1:1:q", "us-east-1")["Records"]

    assert record == {
        "messageId": "m1",
        "receiptHandle": "rh",
        "body": '{"job_id": "j"}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "messageAttributes": {
            "kind": {"stringValue": "x", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
        },
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
        "awsRegion": "us-east-1",
    }


@pytest.mark.parametrize(
    ("result", "report", "kept"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, True, {"b"}),
        ({"batchItemFailures": []}, True, set()),
        (None, True, set()),
        ({}, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, True, {"a", "b"}),
        ("not a dict", True, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, False, set()),
    ],
)
def test_failed_ids_follow_report_batch_item_failures(result, report, kept):
    assert failed_ids(result, ["a", "b"], report) == kept


# -- schedules ---------------------------------------------------------------------------------------
def test_rate_expressions_in_seconds():
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86400
    assert rate_seconds("cron(0 3 * * ? *)") is None


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("cron(0 3 * * ? *)", "2024-01-01T05:00", "2024-01-02T03:00"),
        ("cron(0/15 * * * ? *)", "2024-01-01T05:07", "2024-01-01T05:15"),
        ("cron(0 12 ? * MON-FRI *)", "2024-01-05T13:00", "2024-01-08T12:00"),
        ("cron(0 0 L * ? *)", "2024-02-10T00:00", "2024-02-29T00:00"),
        ("cron(30 9 ? * 2#1 *)", "2024-01-02T00:00", "2024-02-05T09:30"),
        ("cron(0 8 1 JAN ? 2025)", "2024-06-01T00:00", "2025-01-01T08:00"),
    ],
)
def test_cron_next_after(expression, after, expected):
    start = datetime.fromisoformat(after).replace(tzinfo=UTC)

    assert Cron(expression).next_after(start) == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_cron_rejects_malformed_expressions():
    with pytest.raises(ScheduleError):
        Cron("cron(0 3 * *)")
    with pytest.raises(ScheduleError):
        Cron("cron(61 3 * * ? *)")


def test_scheduler_fires_on_a_scaled_clock_with_a_scheduled_event(aws_env):
    calls: list[tuple[str, dict]] = []
    fired = threading.Event()

    def invoke(function, event):
        calls.append((function, event))
        fired.set()

    # 3600x: rate(1 minute) comes every 1/60 s; rate(1 day) not within the test.
    scheduler = Scheduler(aws_env, invoke, scale=3600, enabled=True)
    scheduler.start()
    try:
        assert fired.wait(5)
    finally:
        scheduler.stop()

    function, event = calls[0]
    schedule = next(s for s in aws_env.schedules if s.function == function)
    assert schedule.expression == "rate(1 minute)"
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["resources"] == [schedule.arn] and event["detail"] == {}
    assert event["account"] == aws_env.account_id and event["region"] == aws_env.region
    assert json.dumps(event)  # JSON-serialisable, like the real one


def test_scheduler_fire_runs_one_schedule_now(aws_env):
    calls: list[str] = []
    scheduler = Scheduler(aws_env, lambda function, event: calls.append(function) or "done", enabled=False)

    assert scheduler.fire("BackupFunction") == "done"
    assert calls == ["BackupFunction"]
    with pytest.raises(KeyError):
        scheduler.fire("NoSuchSchedule")


def test_scheduler_runs_a_secret_rotation_through_the_rotation_function(aws_env):
    # Given the template's admin token rotation schedule and the real rotation function
    runtime = Runtime(aws_env)
    scheduler = Scheduler(aws_env, runtime.invoke, enabled=False)
    (rotation,) = aws_env.rotations
    sm = boto3.client("secretsmanager")
    before = sm.get_secret_value(SecretId=rotation.secret_arn, VersionStage="AWSCURRENT")["SecretString"]

    # When it fires
    result = scheduler.fire(rotation.logical_id)

    # Then the four steps ran and the new version is current
    after = sm.get_secret_value(SecretId=rotation.secret_arn, VersionStage="AWSCURRENT")
    assert after["VersionId"] == result["version_id"]
    assert after["SecretString"] != before
    assert rotation.function == "RotationFunction"
    assert scheduler.schedules[rotation.logical_id].expression == "rate(30 days)"
