"""The OpenAI-compatible shapes, usage accounting details, and the admin usage/quota actions."""

from __future__ import annotations

import pytest

from chatbot.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    UpstreamError,
)
from chatbot.models.chat import ChatCompletionRequest, QuotaSet, TokenUsage, UsageQuery
from chatbot.services.chat_compat import error_body, models_list, to_messages
from chatbot.services.usage import UsageService, estimate_tokens, seconds_until_midnight
from tests.unit.resources_env import mocked_tables


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (Unauthorized("Invalid token", code="invalid_credentials"), 401, "invalid_request_error",
         "invalid_api_key"),
        (Forbidden("API key lacks the chat scope", code="insufficient_scope"), 403, "invalid_request_error",
         "insufficient_scope"),
        (NotFound("The model 'x' does not exist", code="model_not_found"), 404, "invalid_request_error",
         "model_not_found"),
        (RateLimited(retry_after=3), 429, "requests", "rate_limit_exceeded"),
        (QuotaExceeded("Daily token quota exceeded for this API key"), 429, "insufficient_quota",
         "insufficient_quota"),
        (UpstreamError(), 502, "server_error", "upstream_error"),
    ],
)  # fmt: skip
def test_error_body_uses_openai_shape(error, status, kind, code):
    body = error_body(error)

    assert error.status == status
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == (kind, code)


def test_error_body_carries_param_of_invalid_request():
    assert error_body(BadRequest("bad", details={"param": "messages"}))["error"]["param"] == "messages"


def test_to_messages_keeps_roles_and_text_parts():
    request = ChatCompletionRequest.model_validate(
        {
            "model": "a",
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
                {"role": "tool", "content": "ignored"},
            ],
        }
    )

    messages = to_messages(request)

    assert [(m.role, m.content) for m in messages] == [("system", "Be terse."), ("user", "Hi there")]


def test_to_messages_requires_a_user_message():
    request = ChatCompletionRequest.model_validate(
        {"model": "a", "messages": [{"role": "system", "content": "x"}]}
    )

    with pytest.raises(BadRequest):
        to_messages(request)


def test_models_list_names_agents():
    listed = models_list([{"id": "a1", "name": "Support", "created_at": "2025-01-01T00:00:00.000000Z"}])

    assert listed == {
        "object": "list",
        "data": [
            {"id": "a1", "object": "model", "created": 1735689600, "owned_by": "chatbot", "name": "Support"}
        ],
    }


def test_estimate_is_an_upper_bound_of_tokens():
    # a token is at least one byte: the byte count (plus per-message overhead) bounds any tokenizer
    assert estimate_tokens(["héllo wörld"]) >= len("héllo wörld".encode())
    assert 1 <= seconds_until_midnight(86400 * 10 + 5) <= 86400


def test_usage_report_and_quota_lifecycle():
    with mocked_tables("UsageTable"):
        usage = UsageService()
        reservation = usage.reserve("agent-1", "key-1", 100)
        usage.settle(reservation, TokenUsage(input_tokens=7, output_tokens=5), ok=True)
        usage.settle(usage.reserve("agent-1", None, 50), None, ok=False)

        report = usage.report(UsageQuery())
        assert {(r.agent_id, r.key_id, r.requests, r.errors, r.total_tokens) for r in report.rows} == {
            ("agent-1", "key-1", 1, 0, 12),
            ("agent-1", "_public", 1, 1, 0),
        }
        assert report.totals.requests == 2 and report.totals.total_tokens == 12
        assert usage.ledger("agent", "agent-1")["committed"] == 12

        # a quota below what is used refuses; removing it admits again
        usage.set_quota(QuotaSet(scope="agent", id="agent-1", daily_tokens=12))
        with pytest.raises(QuotaExceeded):
            usage.reserve("agent-1", None, 10)
        assert [q.daily_tokens for q in usage.list_quotas()] == [12]
        usage.set_quota(QuotaSet(scope="agent", id="agent-1", daily_tokens=None))
        usage.release(usage.reserve("agent-1", None, 10))
        assert usage.ledger("agent", "agent-1")["reserved"] == 0


def test_usage_report_refuses_bad_ranges():
    with mocked_tables("UsageTable"):
        with pytest.raises(BadRequest):
            UsageService().report(UsageQuery(day_from="2025-02-01", day_to="2025-01-01"))
        with pytest.raises(BadRequest):
            UsageService().report(UsageQuery(day_from="2025-01-01", day_to="2025-12-31"))


def test_admin_usage_and_quota_actions():
    from fastapi.testclient import TestClient

    with mocked_tables("UsageTable", "AuditLogTable", "RateLimitsTable", "ApiKeysTable", "AdminUsersTable"):
        import boto3

        from chatbot.admin.app import create_app
        from chatbot.config import get_settings

        boto3.client("secretsmanager").create_secret(
            Name=get_settings().admin_token_secret_id, SecretString="t0k"
        )
        http = TestClient(create_app())
        auth = {"Authorization": "Bearer t0k"}

        put = http.put("/admin/quotas", json={"scope": "key", "id": "k1", "daily_tokens": 500}, headers=auth)
        listed = http.get("/admin/quotas", headers=auth)
        report = http.get("/admin-api.php", params={"action": "usage", "agent_id": "a1"}, headers=auth)

        assert put.status_code == 200 and put.json()["data"]["quota"]["daily_tokens"] == 500
        assert listed.json()["data"]["items"][0]["id"] == "k1"
        assert report.status_code == 200 and report.json()["data"]["rows"] == []
        assert http.get("/admin/usage").status_code == 401
