"""The local stack keeps its data across a restart: a snapshot on stop, restored on the next start."""

from __future__ import annotations

import json

import httpx
import pytest

from infra.local import snapshots
from infra.local.harness import StackProcess
from tests.conftest import TEMPLATE


def _agent_names(stack: StackProcess) -> set[str]:
    response = httpx.get(f"{stack.base_url}/admin/agents", headers=stack.admin_headers, timeout=10)
    assert response.status_code == 200, response.text
    return {agent["name"] for agent in response.json()["data"]}


@pytest.mark.slow
def test_agents_survive_a_restart_through_a_snapshot(tmp_path):
    snapshots = tmp_path / "snapshots"
    env = {"LOCAL_SNAPSHOTS": str(snapshots)}

    # Given a stack with an agent, stopped
    with StackProcess(template=TEMPLATE, workdir=tmp_path / "first", env=env) as first:
        created = httpx.post(
            f"{first.base_url}/admin/agents",
            headers=first.admin_headers,
            json={"name": "survivor"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
    (snapshot,) = [p for p in snapshots.iterdir()]
    manifest = json.loads((snapshot / "manifest.json").read_text())
    assert manifest["source"] == "local-stack"
    assert {t["name"]: t["items"] for t in manifest["tables"]}["agents"] >= 1

    # When a new stack starts on the same folder
    with StackProcess(template=TEMPLATE, workdir=tmp_path / "second", env=env) as second:
        # Then the agent is back, and the start said which snapshot it restored
        assert "survivor" in _agent_names(second)
        assert any(f"restored snapshot {snapshot.name}" in line for line in second.lines)
    assert len(list(snapshots.iterdir())) == 2


def test_snapshot_folder_setting_and_nothing_to_restore(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_SNAPSHOTS", "off")  # what tests/conftest.py sets for every test
    assert snapshots.snapshot_dir() is None
    monkeypatch.setenv("LOCAL_SNAPSHOTS", str(tmp_path))
    assert snapshots.snapshot_dir() == tmp_path
    monkeypatch.delenv("LOCAL_SNAPSHOTS")
    assert snapshots.snapshot_dir() == snapshots.DEFAULT_DIR  # `make run`: .local/snapshots

    # An absent or empty folder is no snapshot: nothing to restore, no AWS call made
    assert snapshots.restore_latest(tmp_path / "absent") is None
    assert snapshots.restore_latest(tmp_path) is None
