"""Agents, vector store files and test_agent on the whole local stack (`make run`), over real HTTP.

What only the running stack shows: DynamoDB transactions through the emulator process under concurrent
requests, ingestion driven by the SQS pollers, the worker and the fake OpenAI's webhooks, and SSE on the
wire.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.slow


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def _all_agents(http: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = http.get(
            "/admin/agents", params={"limit": 200, **({"cursor": cursor} if cursor else {})}
        ).json()
        items += body["data"]
        if not (cursor := body.get("next_cursor")):
            return items


@pytest.fixture
def http(local_stack):
    with httpx.Client(base_url=local_stack.base_url, headers=local_stack.admin_headers, timeout=30) as client:
        yield client


def test_make_default_20_parallel_requests_leave_exactly_one_default(http):
    # Given 20 agents
    agents = [_data(http.post("/admin/agents", json={"name": _name("agent")}), 201) for _ in range(20)]
    start = threading.Barrier(20)

    def make_default(agent: dict[str, Any]) -> int:
        start.wait()
        return http.post(f"/admin/agents/{agent['id']}/default").status_code

    # When each is made the default by its own request, all at once
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(make_default, agents))

    # Then every request succeeded and exactly one agent is the default
    assert statuses == [200] * 20
    defaults = [a["id"] for a in _all_agents(http) if a["is_default"]]
    assert len(defaults) == 1


def test_add_vector_store_file_is_ingested_through_the_stack(http):
    store = _data(http.post("/admin/vector-stores", json={"name": _name("store")}), 201)
    body = {"name": "faq.txt", "file_data": base64.b64encode(b"Opening hours: 9 to 5.\n").decode()}

    added = _data(http.post(f"/admin/vector-stores/{store['id']}/files", json=body), 202)

    assert added["status"] == "pending"
    deadline = time.monotonic() + 60
    seen = ["pending"]
    while time.monotonic() < deadline:
        file = _data(http.get(f"/admin-api.php?action=poll_file_status&file_id={added['id']}"))
        if file["status"] != seen[-1]:
            seen.append(file["status"])
        if file["status"] in ("completed", "failed"):
            break
        time.sleep(0.25)
    assert seen[-1] == "completed", seen
    assert set(seen) <= {"pending", "in_progress", "completed"}


def test_test_agent_streams_server_sent_events(http, local_stack):
    agent = _data(http.post("/admin/agents", json={"name": _name("agent"), "api_type": "responses"}), 201)
    local_stack.fake_openai.set_reply("Streamed over the wire")
    try:
        with http.stream("POST", f"/admin/agents/{agent['id']}/test", json={"message": "Hello"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            text = "".join(response.iter_text())
    finally:
        local_stack.fake_openai.set_reply(None)

    frames = [block for block in text.split("\n\n") if block.strip()]
    first = json.loads(frames[0].split("data: ", 1)[1])
    chunks = [
        json.loads(f.split("data: ", 1)[1])["content"]
        for f in frames
        if f.startswith("event: message") and '"type":"chunk"' in f
    ]
    assert first == {"type": "start", "agent_id": agent["id"], "agent_name": agent["name"]}
    assert "".join(chunks) == "Streamed over the wire"
    assert frames[-1] == "event: close"
