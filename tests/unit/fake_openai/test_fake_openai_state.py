"""State, pagination, multipart and webhook signing of the fake OpenAI server (no server needed)."""

from __future__ import annotations

import time

import openai
import pytest

from infra.local.fake_openai import FakeOpenAISettings, FakeState, new_webhook_secret, sign_webhook
from infra.local.fake_openai.multipart import parse_multipart
from infra.local.fake_openai.state import paginate


def test_queued_faults_match_their_path_scope_in_order() -> None:
    state = FakeState(FakeOpenAISettings())
    state.queue_faults(["500"], path="/v1/vector_stores")
    state.queue_faults(["429", "none"])

    first = state.take_fault("/v1/chat/completions")
    scoped = state.take_fault("/v1/vector_stores/vs_1/files")
    then = state.take_fault("/v1/responses")

    assert (str(first), str(scoped), str(then)) == ("429", "500", "none")
    assert state.take_fault("/v1/responses") is None


def test_paginate_follows_after_cursor_newest_first() -> None:
    items = [{"id": f"i{n}"} for n in range(5)]

    first = paginate(items, {"limit": "2"})
    second = paginate(items, {"limit": "2", "after": first["last_id"]})
    ascending = paginate(items, {"order": "asc", "limit": "10"})

    assert [i["id"] for i in first["data"]] == ["i4", "i3"] and first["has_more"] is True
    assert [i["id"] for i in second["data"]] == ["i2", "i1"]
    assert [i["id"] for i in ascending["data"]] == ["i0", "i1", "i2", "i3", "i4"]
    assert ascending["has_more"] is False


def test_parse_multipart_keeps_bytes_exact() -> None:
    payload = b"a\r\n--not-the-boundary\r\n\x00\xff\r\n"
    body = (
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        b"assistants\r\n"
        b"--XyZ\r\n"
        b'Content-Disposition: form-data; name="file"; filename="r\xc3\xa9sum\xc3\xa9.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n" + payload + b"\r\n--XyZ--\r\n"
    )

    parts = parse_multipart("multipart/form-data; boundary=XyZ", body)

    assert [(p.name, p.filename) for p in parts] == [("purpose", None), ("file", "résumé.txt")]
    assert parts[0].data == b"assistants" and parts[1].data == payload


def test_parse_multipart_rejects_other_bodies() -> None:
    with pytest.raises(ValueError):
        parse_multipart("application/json", b"{}")


def test_sign_webhook_matches_standard_webhooks_vector() -> None:
    # Published example of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    headers = sign_webhook(secret, body, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330)

    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_sign_webhook_is_verified_by_the_sdk() -> None:
    secret = new_webhook_secret()
    body = b'{"id":"evt_1","object":"event","created_at":1,"type":"batch.completed","data":{"id":"b"}}'
    headers = sign_webhook(secret, body, "evt_1", int(time.time()))
    verifier = openai.OpenAI(api_key="x", webhook_secret=secret).webhooks

    verifier.verify_signature(body, headers)
    with pytest.raises(openai.InvalidWebhookSignatureError):
        verifier.verify_signature(body, {**headers, "webhook-id": "evt_2"})


def test_settings_read_environment_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_OPENAI_TOKEN_LATENCY_MS", "15")
    monkeypatch.setenv("FAKE_OPENAI_INGEST_DELAY_S", "1.5")

    settings = FakeOpenAISettings(ingest_delay_s=0)

    assert (settings.token_latency_ms, settings.ingest_delay_s) == (15, 0)
