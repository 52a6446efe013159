"""OpenAI webhooks on the running local stack: `POST /webhooks/openai` through the gateway (the webhook
Lambda), the worker applying the event, and the fake OpenAI announcing finished ingestions with signed
webhooks."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from chatbot.dal.vector_stores import VectorStoreRepository
from chatbot.dal.webhook_events import WebhookEventRepository
from chatbot.models.jobs import JobListQuery
from chatbot.services.jobs import JobService
from chatbot.services.webhooks import webhook_job_id
from infra.local.fake_openai import build_event, new_webhook_secret, sign_webhook

pytestmark = pytest.mark.slow
NOW = "2026-01-01T00:00:00.000000Z"


def _wait(predicate, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def _post(local_stack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(local_stack.url("/webhooks/openai"), content=body, headers=headers, timeout=30)


def _signed(event: dict[str, Any], secret: str, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    headers = sign_webhook(secret, body, msg_id=str(event["id"]), **kwargs)
    return body, {**headers, "content-type": "application/json"}


def _seed_file(openai_file_id: str, openai_store_id: str) -> tuple[str, str]:
    store_id, file_id = f"vs_{uuid.uuid4().hex[:10]}", f"f_{uuid.uuid4().hex[:10]}"
    repo = VectorStoreRepository()
    stamps = {"created_at": NOW, "updated_at": NOW}
    repo.create_store(
        {"id": store_id, "name": "Docs", "openai_store_id": openai_store_id, "status": "ingesting", **stamps}
    )
    repo.create_file(
        {"id": file_id, "vector_store_id": store_id, "name": "a.txt", "openai_file_id": openai_file_id,
         "status": "in_progress", **stamps}
    )  # fmt: skip
    return store_id, file_id


def _nothing_stored(event_id: str) -> bool:
    jobs = JobService().list(JobListQuery(type="webhook_event", limit=200)).items
    return WebhookEventRepository().get_event(event_id) is None and webhook_job_id(event_id) not in {
        j.id for j in jobs
    }


def test_signed_webhook_delivered_three_times_is_processed_once(local_stack):
    suffix = uuid.uuid4().hex[:8]
    store_id, file_id = _seed_file(f"file-{suffix}", f"vs_up_{suffix}")
    event = build_event(
        "vector_store.file.completed",
        {"id": f"file-{suffix}", "file_id": f"file-{suffix}", "vector_store_id": f"vs_up_{suffix}"},
    )
    body, headers = _signed(event, local_stack.webhook_secret())

    replies = [_post(local_stack, body, headers) for _ in range(3)]

    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [r.json()["duplicate"] for r in replies] == [False, True, True]
    stored = _wait(
        lambda: (e := WebhookEventRepository().get_event(event["id"])) and e["status"] == "processed" and e
    )
    assert stored["deliveries"] == 3
    job = JobService().get(webhook_job_id(event["id"]))
    assert job.status == "completed" and job.attempts == 1
    assert VectorStoreRepository().get_file(store_id, file_id)["status"] == "completed"


@pytest.mark.parametrize("case", ["bad_signature", "old_timestamp", "malformed_json"])
def test_rejected_webhooks_store_nothing(local_stack, case):
    event = build_event("vector_store.file.completed", {"id": "file-x", "vector_store_id": "vs_x"})
    secret = local_stack.webhook_secret()
    if case == "bad_signature":
        body, headers = _signed(event, new_webhook_secret())
        expected = 401
    elif case == "old_timestamp":
        body, headers = _signed(event, secret, timestamp=int(time.time()) - 600)
        expected = 401
    else:
        body = b'{"id": "' + event["id"].encode() + b'", "type": "vector_store.file.completed", "data": {'
        headers = {**sign_webhook(secret, body, msg_id=event["id"]), "content-type": "application/json"}
        expected = 400

    reply = _post(local_stack, body, headers)

    assert reply.status_code == expected and reply.json()["error"]["status"] == expected
    time.sleep(0.5)
    assert _nothing_stored(event["id"])


def test_fake_openai_sends_signed_webhooks_to_the_stack(local_stack):
    suffix = uuid.uuid4().hex[:8]
    store_id, file_id = _seed_file(f"file-{suffix}", f"vs_up_{suffix}")

    reply = httpx.post(
        local_stack.fake_openai.base_url + "/_fake/webhooks/send",
        json={
            "type": "vector_store.file.failed",
            "data": {
                "id": f"file-{suffix}",
                "vector_store_id": f"vs_up_{suffix}",
                "last_error": {"code": "invalid_file", "message": "Unreadable PDF"},
            },
        },
        timeout=30,
    )

    assert reply.status_code == 200 and reply.json()["status"] == 200
    file = _wait(
        lambda: (f := VectorStoreRepository().get_file(store_id, file_id)) and f["status"] == "failed" and f
    )
    assert file["error_message"] == "Unreadable PDF"


def test_file_ingestion_end_to_end_with_the_fakes_webhook(local_stack):
    # The admin API stores the file and enqueues file_ingest; the worker uploads and attaches it to the fake
    # OpenAI, which finishes ingestion and announces it with a signed webhook that completes the file.
    http = httpx.Client(base_url=local_stack.base_url, headers=local_stack.admin_headers, timeout=60)
    store = http.post("/admin/vector-stores", json={"name": f"kb-{uuid.uuid4().hex[:6]}"})
    assert store.status_code == 201, store.text
    store_id = store.json()["data"]["id"]
    added = http.post(
        f"/admin/vector-stores/{store_id}/files",
        json={"name": "refunds.txt", "file_data": base64.b64encode(b"Refunds take 5 days.").decode()},
    )
    assert added.status_code == 202, added.text
    file_id = added.json()["data"]["id"]

    file = _wait(
        lambda: (
            (f := VectorStoreRepository().get_file(store_id, file_id)) and f["status"] == "completed" and f
        )
    )

    events = [
        e
        for e in local_stack.fake_openai.state.deliveries()
        if e["event"]["data"].get("id") == file["openai_file_id"]
    ]
    assert events and events[0]["status"] == 200
    assert WebhookEventRepository().get_event(events[0]["event"]["id"]) is not None
    http.close()
