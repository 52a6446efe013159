"""The backup admin actions: super-admins list, create, verify and restore backups over the admin API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatbot.admin.app import load_actions
from chatbot.config import get_settings
from chatbot.services.agents import AgentService
from infra.local.fake_openai import FakeOpenAI
from tests.unit.admin_api_support import World, admin_world

load_actions()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with FakeOpenAI(token_latency_ms=0) as fake, admin_world(fake.api_base) as w:
        yield w


def _agent_names() -> set[str]:
    return {a.name for a in AgentService.from_settings(get_settings()).list().items}


def test_super_admin_backs_up_verifies_and_restores(world):
    created = world.call("create_agent", body={"name": "kept-by-backup"})
    assert created.status_code == 201, created.text

    response = world.call("create_backup", caller="super_admin")
    assert response.status_code == 201, response.text
    backup_id = response.json()["data"]["manifest"]["backup_id"]
    listed = world.call("list_backups", "query", caller="super_admin").json()["data"]
    assert backup_id in [b["backup_id"] for b in listed["backups"]] and listed["retention_days"] == 7
    verified = world.call("verify_backup", "path", ids={"id": backup_id})
    assert verified.status_code == 200 and verified.json()["data"]["backup_id"] == backup_id

    world.call("delete_agent", ids={"id": created.json()["data"]["id"]})
    assert "kept-by-backup" not in _agent_names()
    unconfirmed = world.call("restore_backup", ids={"id": backup_id}, body={"tables": ["agents"]})
    assert unconfirmed.status_code == 400 and unconfirmed.json()["error"]["code"] == "confirmation_required"
    plan = world.call("restore_backup", ids={"id": backup_id}, body={"tables": ["agents"], "dry_run": True})
    assert plan.status_code == 200 and plan.json()["data"]["tables"][0]["new"] >= 1
    assert "kept-by-backup" not in _agent_names()  # a dry run writes nothing

    restored = world.call(
        "restore_backup", ids={"id": backup_id}, body={"tables": ["agents"], "confirm": True}
    )

    assert restored.status_code == 200, restored.text
    report = restored.json()["data"]
    assert report["pre_restore_backup_id"] and report["pre_restore_backup_id"] != backup_id
    assert "kept-by-backup" in _agent_names()


def test_unknown_or_damaged_backups_answer_404_and_400(world):
    assert world.call("verify_backup", ids={"id": "20200101T000000Z"}).json()["error"]["code"] == (
        "backup_not_found"
    )
    from chatbot import aws

    aws.client("s3").put_object(
        Bucket=get_settings().backup_bucket, Key="backups/20200102T000000Z/agents.jsonl.gz", Body=b"x"
    )
    response = world.call("restore_backup", ids={"id": "20200102T000000Z"}, body={"confirm": True})
    assert response.status_code == 400 and response.json()["error"]["code"] == "backup_invalid"
    assert "incomplete" in response.json()["error"]["message"]


@pytest.mark.parametrize("caller", ["admin", "viewer"])
def test_backups_are_for_super_admins_only(world, caller):
    for name in ("list_backups", "create_backup"):
        response = world.call(name, caller=caller)
        assert response.status_code == 403, (name, response.text)
