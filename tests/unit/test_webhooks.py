"""The webhook Lambda (API Gateway v2 events) and service: signature, replay window, rotation, parsing,
dedupe, enqueue; and the `webhook_event` job applying events (moto in-process)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.dal.webhook_events import WebhookEventRepository
from chatbot.models.jobs import JobListQuery
from chatbot.services.jobs import JobService
from chatbot.services.webhooks import WebhookService, parse_secrets, webhook_job_id
from functions.webhook.app import handler
from infra.local.fake_openai import build_event, new_webhook_secret, sign_webhook
from tests.unit._jobs_support import FakeLambdaContext, api_event, drain, queue_depth, set_env

NOW = "2026-01-01T00:00:00.000000Z"


@pytest.fixture
def secret(aws_env, monkeypatch) -> str:
    value = new_webhook_secret()
    _set_secret(value)
    set_env(monkeypatch, JOB_BACKOFF_BASE_SECONDS="0")
    return value


def _set_secret(value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=os.environ["WEBHOOK_SECRET_ID"], SecretString=value
    )


def _post(body: bytes | str, headers: dict[str, str], **kwargs: Any) -> tuple[int, dict[str, Any]]:
    response = handler(api_event(body, headers, **kwargs), FakeLambdaContext())
    return response["statusCode"], json.loads(response["body"])


def _signed(
    event: dict[str, Any], secret: str, *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {
        **sign_webhook(secret, body, msg_id=event["id"], timestamp=timestamp),
        "content-type": "application/json",
    }


def _file_event(event_type: str = "vector_store.file.completed", **data: Any) -> dict[str, Any]:
    return build_event(
        event_type, {"id": "file-abc", "file_id": "file-abc", "vector_store_id": "vs_up_1", **data}
    )


def _nothing_stored(event_id: str) -> bool:
    return (
        WebhookEventRepository().get_event(event_id) is None
        and JobService().list(JobListQuery()).items == []
        and queue_depth(os.environ["JOBS_QUEUE_URL"]) == 0
    )


def _seed_file(status: str = "in_progress") -> None:
    repo = VectorStoreRepository()
    repo.create_store(
        {
            "id": "vs_1",
            "name": "Docs",
            "openai_store_id": "vs_up_1",
            "status": "ingesting",
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    repo.create_file(
        {
            "id": "f_1",
            "vector_store_id": "vs_1",
            "name": "a.txt",
            "openai_file_id": "file-abc",
            "status": status,
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


# -- accepted ----------------------------------------------------------------------------------------------
def test_webhook_valid_signature_is_stored_and_enqueued(secret):
    event = _file_event()
    body, headers = _signed(event, secret)

    status, reply = _post(body, headers)

    assert status == 200
    assert reply == {
        "status": "ok",
        "event_id": event["id"],
        "job_id": webhook_job_id(event["id"]),
        "duplicate": False,
    }
    stored = WebhookEventRepository().get_event(event["id"])
    assert stored["status"] == "received" and stored["event_type"] == "vector_store.file.completed"
    job = JobService().get(reply["job_id"])
    assert (
        job.type == "webhook_event"
        and job.status == "queued"
        and job.payload["data"]["file_id"] == "file-abc"
    )


def test_webhook_delivered_three_times_is_processed_once(secret):
    _seed_file()
    event = _file_event()
    body, headers = _signed(event, secret)

    replies = [_post(body, headers) for _ in range(3)]
    drain()

    assert [r[0] for r in replies] == [200, 200, 200]
    assert [r[1]["duplicate"] for r in replies] == [False, True, True]
    assert len({r[1]["job_id"] for r in replies}) == 1
    stored = WebhookEventRepository().get_event(event["id"])
    assert stored["deliveries"] == 3 and stored["status"] == "processed"
    assert stored["result"] == {"status": "processed", "file_status": "completed", "files": ["f_1"]}
    job = JobService().get(replies[0][1]["job_id"])
    assert job.status == "completed" and job.attempts == 1
    assert len(JobService().list(JobListQuery()).items) == 1
    assert VectorStoreRepository().get_file("vs_1", "f_1")["status"] == "completed"


def test_webhook_accepts_base64_bodies_and_any_header_case(secret):
    event = _file_event()
    body, headers = _signed(event, secret)

    status, _ = _post(body, {k.title(): v for k, v in headers.items()}, base64_encoded=True)

    assert status == 200


def test_webhook_during_rotation_accepts_old_and_new_secrets(secret):
    new = new_webhook_secret()
    _set_secret(f"{new} {secret}")  # as the template describes: separated by spaces
    from chatbot import secrets

    secrets.invalidate()
    for signer in (new, secret):
        body, headers = _signed(_file_event(), signer)
        assert _post(body, headers)[0] == 200


def test_webhook_picks_up_a_rotated_secret_without_waiting_for_the_cache(secret):
    body, headers = _signed(_file_event(), secret)
    assert _post(body, headers)[0] == 200  # caches the secret
    rotated = new_webhook_secret()
    _set_secret(rotated)

    body, headers = _signed(_file_event(), rotated)

    assert _post(body, headers)[0] == 200


def test_parse_secrets_formats():
    assert parse_secrets('["whsec_a", "whsec_b", "whsec_a"]') == ["whsec_a", "whsec_b"]
    assert parse_secrets('{"current": "whsec_a", "previous": "whsec_b"}') == ["whsec_a", "whsec_b"]
    assert parse_secrets("whsec_a\nwhsec_b, whsec_c") == ["whsec_a", "whsec_b", "whsec_c"]
    assert parse_secrets("REPLACE_WITH_OPENAI_WEBHOOK_SECRET") == []


def test_webhook_unhandled_type_is_acknowledged_and_not_stored(secret):
    event = build_event("batch.completed", {"id": "batch_1"})
    body, headers = _signed(event, secret)

    status, reply = _post(body, headers)

    assert status == 200 and reply["status"] == "ignored"
    assert _nothing_stored(event["id"])


# -- rejected ----------------------------------------------------------------------------------------------
def test_webhook_bad_signature_is_401_and_nothing_stored(secret):
    event = _file_event()
    body, headers = _signed(event, new_webhook_secret())

    status, reply = _post(body, headers)

    assert status == 401 and reply["error"]["code"] == "invalid_signature"
    assert _nothing_stored(event["id"])


def test_webhook_tampered_body_is_401(secret):
    event = _file_event()
    body, headers = _signed(event, secret)

    status, _ = _post(body.replace(b"completed", b"failed"), headers)

    assert status == 401 and _nothing_stored(event["id"])


def test_webhook_old_timestamp_is_401_and_nothing_stored(secret):
    event = _file_event()
    body, headers = _signed(event, secret, timestamp=int(time.time()) - 301)

    status, _ = _post(body, headers)

    assert status == 401 and _nothing_stored(event["id"])


def test_webhook_missing_signature_headers_is_401(secret):
    event = _file_event()

    status, _ = _post(json.dumps(event), {"content-type": "application/json"})

    assert status == 401 and _nothing_stored(event["id"])


def test_webhook_malformed_json_is_400_and_nothing_stored(secret):
    body = b'{"id": "evt_broken", "type": '
    headers = sign_webhook(secret, body, msg_id="evt_broken")

    status, reply = _post(body, headers)

    assert status == 400 and reply["error"]["message"] == "Invalid JSON"
    assert _nothing_stored("evt_broken")


def test_webhook_without_id_or_type_is_400(secret):
    for event in (
        {"type": "vector_store.completed", "data": {}},
        {"id": "evt_x", "data": {}},
        ["not", "an", "object"],
    ):
        body = json.dumps(event).encode()
        status, reply = _post(body, sign_webhook(secret, body))
        assert status == 400, event
    assert reply["error"]["status"] == 400
    assert _nothing_stored("evt_x")


def test_webhook_other_methods_and_empty_bodies(secret):
    assert _post("", {}, method="GET")[0] == 405
    assert _post("", {})[0] == 400


def test_webhook_without_a_configured_secret_is_refused(secret):
    _set_secret("REPLACE_WITH_OPENAI_WEBHOOK_SECRET")
    from chatbot import secrets

    secrets.invalidate()
    body, headers = _signed(_file_event(), secret)

    assert _post(body, headers)[0] == 401


def test_webhook_never_logs_the_secret_or_the_signature(secret, caplog):
    caplog.set_level("INFO")
    body, headers = _signed(_file_event(), secret)
    _post(body, headers)
    bad_body, bad_headers = _signed(_file_event(), new_webhook_secret())
    _post(bad_body, bad_headers)

    # Everything each log record carries (message and extra fields), before any redaction.
    ours = [r for r in caplog.records if r.name in ("webhook", "jobs", "worker")]
    logged = "\n".join(repr(vars(record)) for record in ours)
    assert "webhook_received" in logged and "rejected" in logged
    for needle in (
        secret,
        secret.removeprefix("whsec_"),
        headers["webhook-signature"],
        bad_headers["webhook-signature"].removeprefix("v1,"),
    ):
        assert needle not in logged


def test_webhook_whose_enqueue_failed_is_enqueued_on_redelivery(secret):
    class DownSqs:
        def send_message(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "SendMessage")

    event = _file_event()
    body, headers = _signed(event, secret)
    down = WebhookService(jobs=JobService(sqs=DownSqs()))

    from chatbot.errors import ServiceUnavailable

    with pytest.raises(ServiceUnavailable):
        down.receive(body, headers)
    assert WebhookEventRepository().get_event(event["id"]) is not None  # stored, no job yet

    status, reply = _post(body, headers)  # OpenAI retries

    assert status == 200 and reply["duplicate"] is False
    assert JobService().get(reply["job_id"]).status == "queued"


# -- the webhook_event job ---------------------------------------------------------------------------------
def _deliver_event(secret: str, event: dict[str, Any]) -> dict[str, Any]:
    body, headers = _signed(event, secret)
    assert _post(body, headers)[0] == 200
    drain()
    return WebhookEventRepository().get_event(event["id"])


def test_webhook_event_file_failed_records_the_upstream_error(secret):
    _seed_file()
    event = _file_event(
        "vector_store.file.failed", last_error={"code": "invalid_file", "message": "Cannot parse"}
    )

    stored = _deliver_event(secret, event)

    file = VectorStoreRepository().get_file("vs_1", "f_1")
    assert file["status"] == "failed" and file["error_message"] == "Cannot parse"
    assert stored["result"]["file_status"] == "failed"


def test_webhook_event_for_another_store_or_unknown_file_is_ignored(secret):
    _seed_file()

    other_store = _deliver_event(secret, _file_event(vector_store_id="vs_up_other"))
    unknown = _deliver_event(secret, build_event("vector_store.file.completed", {"id": "file-zzz"}))

    assert other_store["status"] == "processed" and other_store["result"]["status"] == "ignored"
    assert unknown["result"]["reason"] == "no_matching_file"
    assert VectorStoreRepository().get_file("vs_1", "f_1")["status"] == "in_progress"


def test_webhook_event_vector_store_completed_makes_the_store_ready(secret):
    _seed_file()

    stored = _deliver_event(secret, build_event("vector_store.completed", {"id": "vs_up_1"}))

    assert stored["result"] == {"status": "processed", "store_status": "ready", "stores": ["vs_1"]}
    assert VectorStoreRepository().get_store("vs_1")["status"] == "ready"


def test_webhook_event_file_uploaded_is_logged(secret):
    stored = _deliver_event(secret, build_event("file.uploaded", {"id": "file-new"}))

    assert stored["result"] == {"status": "logged", "openai_file_id": "file-new"}


def test_webhook_event_processing_failure_is_retried(secret, monkeypatch):
    _seed_file()
    calls = {"n": 0}
    original = VectorStoreRepository.find_files_by_openai_id

    def flaky(self, openai_file_id):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("table briefly unavailable")
        return original(self, openai_file_id)

    monkeypatch.setattr(VectorStoreRepository, "find_files_by_openai_id", flaky)

    stored = _deliver_event(secret, _file_event())

    assert stored["status"] == "processed"
    job = JobService().get(stored["job_id"])
    assert job.status == "completed" and job.attempts == 2 and "briefly unavailable" in job.errors[0].error
