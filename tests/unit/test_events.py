"""Every sample under events/ invoked with its function's handler (as the local stack and Lambda would).

The function of a sample is its folder (`events/<function>/`, the function whose CodeUri is
`functions/<function>/`); the expected result follows from the event's shape:
- API Gateway HTTP API v2 → an HTTP response with a JSON body (an event stream for SSE). `${ADMIN_TOKEN}`
  in a header is replaced by the admin token; an admin request with it must succeed (2xx), one without
  credentials must be refused (401); public routes succeed; other requests must not fail on the server
  (< 500). `EXPECTED` lists the samples made to show a specific status.
- EventBridge schedule → returns without error.
- Secrets Manager rotation step → the steps of the folder run in order up to this one, all succeed, and
  after finishSecret the new version is AWSCURRENT.
- SQS batch → a partial batch response (`batchItemFailures`).
A sample whose shape fits none of these fails, as does one its handler no longer accepts.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chatbot.config import get_settings
from infra.local.runtime import Runtime
from tests.unit.auth_support import current_admin_token

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAMPLES = sorted(EVENTS.glob("*/*.json"))
TOKEN_PLACEHOLDER = "${ADMIN_TOKEN}"
PUBLIC_PATHS = {"/health", "/admin/openapi.json"}
ADMIN_PREFIXES = ("/admin", "/admin-api.php")
# Samples that demonstrate a particular answer.
EXPECTED = {
    "admin/legacy_unknown_action.json": 400,
}


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[Any]:
    from infra.local.fake_openai.server import FakeOpenAI

    with FakeOpenAI(token_latency_ms=0) as fake:
        yield fake


@pytest.fixture
def runtime(aws_env, fake_openai, monkeypatch) -> Runtime:
    # The chat samples reach "OpenAI": the fake one, never the real service.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.api_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    get_settings.cache_clear()
    return Runtime(aws_env, root=ROOT)


def _function_for(runtime: Runtime, folder: str) -> str:
    candidates = sorted(
        spec.logical_id
        for spec in runtime.stack.functions.values()
        if spec.code_dir is not None and spec.code_dir.name == folder and spec.handler.endswith(".handler")
    )
    assert candidates, f"events/{folder}: no function in template.yaml has CodeUri functions/{folder}/"
    return candidates[0]


def _name(path: Path) -> str:
    return path.relative_to(EVENTS).as_posix()


def test_every_function_has_samples():
    folders = {p.parent.name for p in SAMPLES}
    assert {"chat", "admin", "metrics_push", "backup", "rotation"} <= folders


@pytest.mark.parametrize("sample", SAMPLES, ids=_name)
def test_sample_event_is_handled(sample: Path, runtime: Runtime):
    event = json.loads(sample.read_text())
    function = _function_for(runtime, sample.parent.name)
    if isinstance(event.get("requestContext"), dict) and "http" in event["requestContext"]:
        _check_http(sample, event, runtime, function)
    elif event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        result = runtime.invoke(function, event)
        json.dumps(result)  # a schedule's result must at least be serialisable (Lambda logs it)
    elif {"Step", "SecretId", "ClientRequestToken"} <= event.keys():
        _check_rotation(sample, runtime, function)
    elif event.get("Records") and all(r.get("eventSource") == "aws:sqs" for r in event["Records"]):
        result = runtime.invoke(function, event)
        assert isinstance(result, dict) and isinstance(result.get("batchItemFailures"), list), result
    else:
        pytest.fail(f"{_name(sample)}: unknown event shape (API v2, schedule, rotation or SQS expected)")


def _check_http(sample: Path, event: dict[str, Any], runtime: Runtime, function: str) -> None:
    headers = event.get("headers") or {}
    with_token = any(TOKEN_PLACEHOLDER in str(v) for v in headers.values())
    if with_token:
        token = current_admin_token()
        event["headers"] = {k: str(v).replace(TOKEN_PLACEHOLDER, token) for k, v in headers.items()}
    result = runtime.invoke(function, event)
    status = result["statusCode"]
    path = event["rawPath"]
    admin = path.startswith(ADMIN_PREFIXES)
    if _name(sample) in EXPECTED:
        assert status == EXPECTED[_name(sample)], result
    elif path in PUBLIC_PATHS or (admin and with_token):
        assert 200 <= status < 300, result
    elif admin and not headers.get("authorization"):
        assert status == 401, result
    else:
        assert status < 500, result
    content_type = {k.lower(): v for k, v in (result.get("headers") or {}).items()}.get("content-type", "")
    body = result.get("body") or ""
    if content_type.startswith("text/event-stream"):
        assert "event:" in body, result
    elif event["requestContext"]["http"]["method"] != "OPTIONS" and status != 204:
        assert content_type.startswith("application/json"), result
        json.loads(body)


def _check_rotation(sample: Path, runtime: Runtime, function: str) -> None:
    secret_id = os.environ["ADMIN_TOKEN_SECRET_ID"]
    version = str(uuid.uuid4())
    before = current_admin_token()
    steps = sorted(p for p in sample.parent.glob("*.json") if "Step" in json.loads(p.read_text()))
    for step in steps[: steps.index(sample) + 1]:
        event = {**json.loads(step.read_text()), "SecretId": secret_id, "ClientRequestToken": version}
        runtime.invoke(function, event)
        runtime.invoke(function, event)  # Secrets Manager may retry a step: each one is idempotent
    stages = boto3.client("secretsmanager").describe_secret(SecretId=secret_id)["VersionIdsToStages"]
    if json.loads(sample.read_text())["Step"] == "finishSecret":
        assert "AWSCURRENT" in stages[version] and current_admin_token() != before
    else:
        assert "AWSPENDING" in stages[version] and current_admin_token() == before
