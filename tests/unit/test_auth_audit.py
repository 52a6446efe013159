"""The audit trail: entries, redacted summaries, newest-first listing with filters, pagination across days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chatbot.config import get_settings
from chatbot.errors import BadRequest
from chatbot.models.audit import AuditQuery
from chatbot.models.auth import Principal
from chatbot.services.audit import AuditService, summarize
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture

ALICE = Principal.of(
    id="u-alice", email="alice@example.com", role="admin", auth_method="api_key", api_key_id="ak_1"
)
BOB = Principal.of(id="u-bob", email="bob@example.com", role="super-admin", auth_method="api_key")
# Noon today: entries must lie within their 365-day TTL of the real clock, or they read as expired.
NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
DAY = NOW.date().isoformat()
SINCE = NOW - timedelta(days=3)  # the seeded days: fewer empty partitions to read


@pytest.fixture
def audit(admin_env):  # noqa: F811
    return AuditService.from_settings(get_settings())


def _seed(audit: AuditService) -> list[str]:
    """Seven entries over three days (newest last): returns their ids newest first."""
    rows = [
        (NOW - timedelta(days=2, hours=1), ALICE, "agent.create", "agent", "a1"),
        (NOW - timedelta(days=2), BOB, "user.create", "user", "u9"),
        (NOW - timedelta(days=1, hours=3), ALICE, "agent.update", "agent", "a1"),
        (NOW - timedelta(days=1, hours=2), ALICE, "agent.delete", "agent", "a2"),
        (NOW - timedelta(days=1, hours=1), BOB, "agent.create", "agent", "a3"),
        (NOW - timedelta(hours=2), ALICE, "prompt.create", "prompt", "p1"),
        (NOW - timedelta(hours=1), BOB, "agent.update", "agent", "a3"),
    ]
    ids = [
        audit.record(
            action,
            actor=actor,
            resource_type=rtype,
            resource_id=rid,
            at=at,
            request_id="r",
            source_ip="192.0.2.1",
        ).id
        for at, actor, action, rtype, rid in rows
    ]
    return ids[::-1]


def _all_pages(audit: AuditService, **query) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor, pages = None, 0
    while True:
        entries, cursor = audit.list(AuditQuery(since=SINCE, until=NOW, cursor=cursor, **query))
        ids += [e.id for e in entries]
        pages += 1
        if cursor is None:
            return ids, pages


def test_record_stores_keys_ttl_and_fields(audit):
    entry = audit.record(
        "user.create",
        actor=BOB,
        resource_type="user",
        resource_id="u1",
        request_id="req-1",
        source_ip="192.0.2.5",
        payload={"email": "x@example.com"},
        at=NOW,
    )
    item = boto3.resource("dynamodb").Table(get_settings().audit_table).scan()["Items"][0]
    assert item["pk"] == f"AUDIT#{DAY}" and item["sk"] == f"{DAY}T12:00:00.000000Z#{entry.id}"
    assert item["gsi1pk"] == "ACTOR#u-bob" and item["gsi1sk"] == item["sk"]
    assert item["ttl"] == int(NOW.timestamp()) + 365 * 86400
    assert (entry.actor, entry.actor_email, entry.auth_method) == ("u-bob", "bob@example.com", "api_key")
    assert (entry.outcome, entry.request_id, entry.source_ip) == ("success", "req-1", "192.0.2.5")


def test_summarize_redacts_secrets_and_drops_large_values():
    summary = summarize(
        {
            "name": "ok",
            "api_key": "chatbot_" + "a" * 64,
            "new_token": "abc",
            "note": "Bearer abcdef",
            "content": "x" * 5000,
            "file_data": "base64...",
            "tools": list(range(50)),
            "nested": {"password": "p"},
        }
    )
    assert summary["name"] == "ok"
    assert summary["api_key"] == summary["new_token"] == summary["file_data"] == "[REDACTED]"
    assert summary["nested"] == {"password": "[REDACTED]"} and "abcdef" not in str(summary)
    assert summary["content"] == "[REDACTED]" and summary["tools"] == "[50 items]"
    assert summarize({"description": "y" * 500})["description"] == "[500 chars]"


def test_list_newest_first_across_days(audit):
    ids = _seed(audit)
    entries, cursor = audit.list(AuditQuery(until=NOW))
    assert [e.id for e in entries] == ids and cursor is None


def test_list_paginates_across_day_partitions(audit):
    ids = _seed(audit)
    for limit in (1, 3, 7):
        listed, pages = _all_pages(audit, limit=limit)
        assert listed == ids, limit
        assert pages >= -(-len(ids) // limit)


def test_list_filters(audit):
    ids = _seed(audit)
    agent_a1 = audit.list(AuditQuery(since=SINCE, until=NOW, resource_type="agent", resource_id="a1"))[0]
    assert [e.id for e in agent_a1] == [ids[4], ids[6]]
    creates = audit.list(AuditQuery(since=SINCE, until=NOW, action="agent.create"))[0]
    assert {e.action for e in creates} == {"agent.create"} and len(creates) == 2
    last_day = audit.list(AuditQuery(until=NOW, since=NOW - timedelta(hours=3)))[0]
    assert [e.id for e in last_day] == ids[:2]
    older = audit.list(AuditQuery(until=NOW - timedelta(days=1, hours=2)))[0]
    assert [e.id for e in older] == ids[3:]


def test_list_by_actor_with_filters_and_pages(audit):
    ids = _seed(audit)
    alice = [ids[i] for i in (1, 3, 4, 6)]
    assert _all_pages(audit, actor="u-alice", limit=3)[0] == alice
    assert _all_pages(audit, actor="u-alice", limit=1)[0] == alice
    updates = audit.list(AuditQuery(until=NOW, actor="u-alice", action="agent.update"))[0]
    assert [e.id for e in updates] == [ids[4]]


def test_list_default_window_is_30_days(audit):
    audit.record("agent.create", actor=ALICE, at=NOW - timedelta(days=31))
    recent = audit.record("agent.create", actor=ALICE, at=NOW - timedelta(days=29))
    assert [e.id for e in audit.list(AuditQuery(until=NOW))[0]] == [recent.id]
    assert len(audit.list(AuditQuery(until=NOW, since=NOW - timedelta(days=40)))[0]) == 2


def test_list_naive_datetimes_are_utc(audit):
    entry = audit.record("agent.create", actor=ALICE, at=NOW)
    naive = NOW.replace(tzinfo=None)
    assert [e.id for e in audit.list(AuditQuery(since=naive, until=naive + timedelta(seconds=1)))[0]] == [
        entry.id
    ]


@pytest.mark.parametrize("cursor", ["garbage!", "eyJzayI6IDF9", "eyJzayI6Im5vdC1hLXRpbWVzdGFtcC0xMjM0NSJ9"])
def test_list_bad_cursor_is_400(audit, cursor):
    with pytest.raises(BadRequest) as err:
        audit.list(AuditQuery(cursor=cursor))
    assert err.value.code == "invalid_cursor"


def test_list_since_after_until_is_400(audit):
    with pytest.raises(BadRequest):
        audit.list(AuditQuery(since=NOW, until=NOW - timedelta(days=1)))


def test_audit_service_is_append_only():
    assert not [m for m in dir(AuditService) if m.startswith(("update", "delete", "remove"))]
