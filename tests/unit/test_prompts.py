"""Prompt service and repository: local CRUD, versions, and the upstream's prompt objects where offered.

The upstream is OpenAI through the real SDK, its HTTP answered by `PromptUpstream` (an httpx transport):
either an upstream without prompt endpoints (404, like OpenAI's public API and the fake) or one with them.
"""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from pydantic import ValidationError

from chatbot.dal.prompts import PromptRepository, name_key, remote_key
from chatbot.errors import BadRequest, Conflict, NotFound, UpstreamError
from chatbot.models.prompts import (
    PromptCreate,
    PromptListQuery,
    PromptUpdate,
    PromptVersionCreate,
    PromptVersionListQuery,
)
from chatbot.services.prompts import PromptService
from chatbot.upstream.openai_admin import OpenAIAdmin
from tests.unit.resources_env import mocked_tables, serialised_dynamodb, wipe_tables


class PromptUpstream:
    """OpenAI's HTTP side for prompt objects; `offers=False` answers 404 everywhere, as OpenAI does today."""

    def __init__(self, *, offers: bool = True, fail_with: int | None = None) -> None:
        self.offers = offers
        self.fail_with = fail_with
        self.prompts: dict[str, dict] = {}
        self.requests: list[tuple[str, str, dict]] = []
        self._ids = itertools.count(1)

    def client(self) -> openai.OpenAI:
        http = httpx.Client(transport=httpx.MockTransport(self.handle))
        return openai.OpenAI(
            api_key="sk-test", base_url="https://upstream.test/v1", http_client=http, max_retries=0
        )

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        path = request.url.path.removeprefix("/v1")
        self.requests.append((request.method, path, body))
        if self.fail_with:
            return httpx.Response(self.fail_with, json={"error": {"message": "boom", "type": "server_error"}})
        if not self.offers or not path.startswith("/prompts"):
            return httpx.Response(404, json={"error": {"message": f"Unknown path {path}"}})
        parts = path.strip("/").split("/")
        if request.method == "POST" and parts == ["prompts"]:
            prompt_id = f"pmpt_{next(self._ids)}"
            self.prompts[prompt_id] = {
                "id": prompt_id,
                "name": body["name"],
                "versions": [{"id": f"{prompt_id}_v1", "version": "1", "content": body["content"]}],
            }
            return httpx.Response(200, json={"id": prompt_id, "name": body["name"], "version": "1",
                                             "version_id": f"{prompt_id}_v1"})  # fmt: skip
        if len(parts) >= 2 and parts[1] not in self.prompts:
            return httpx.Response(404, json={"error": {"message": "No such prompt"}})
        if request.method == "POST" and len(parts) == 3:
            version = {
                "id": f"{parts[1]}_v{body['version']}",
                "version": body["version"],
                "content": body.get("content"),
            }
            self.prompts[parts[1]]["versions"].append(version)
            return httpx.Response(200, json=version)
        if request.method == "GET" and parts == ["prompts"]:
            data = [{"id": p["id"], "name": p["name"]} for p in self.prompts.values()]
            return httpx.Response(200, json={"object": "list", "data": data})
        if request.method == "GET" and len(parts) == 3:
            return httpx.Response(200, json={"data": self.prompts[parts[1]]["versions"]})
        if request.method == "DELETE" and len(parts) == 2:
            del self.prompts[parts[1]]
            return httpx.Response(200, json={"id": parts[1], "deleted": True})
        return httpx.Response(405, json={"error": {"message": "Method not allowed"}})


@pytest.fixture(scope="module")
def _tables():
    with mocked_tables("PromptsTable"):
        yield


@pytest.fixture
def local_only(_tables):
    wipe_tables()
    upstream = PromptUpstream(offers=False)
    return PromptService(upstream=OpenAIAdmin(upstream.client()))


@pytest.fixture
def upstream(_tables):
    wipe_tables()
    return PromptUpstream(offers=True)


@pytest.fixture
def mirrored(upstream):
    return PromptService(upstream=OpenAIAdmin(upstream.client()))


# -- local prompts ------------------------------------------------------------------------------------------
def test_create_prompt_local_only_without_upstream_prompts(local_only):
    prompt = local_only.create(PromptCreate(name="Greeting", description="hi", meta={"team": "a"}))

    assert prompt.openai_prompt_id is None
    assert prompt.version == 1 and prompt.version_count == 0 and prompt.latest_version is None
    assert local_only.get(prompt.id) == prompt


def test_create_prompt_with_content_stores_first_version_locally(local_only):
    prompt = local_only.create(PromptCreate(name="Greeting", content="You greet people."))

    versions = local_only.list_versions(prompt.id).items

    assert prompt.version_count == 1 and prompt.latest_version == "1"
    assert [(v.version, v.sequence, v.content) for v in versions] == [("1", 1, "You greet people.")]


def test_create_prompt_duplicate_name_conflicts(local_only):
    local_only.create(PromptCreate(name="Greeting"))
    with pytest.raises(Conflict) as exc:
        local_only.create(PromptCreate(name="GREETING"))
    assert exc.value.code == "prompt_name_taken"


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "x" * 256}, {"name": "ok", "meta": "not a dict"}]
)
def test_create_prompt_invalid_body_refused(body):
    with pytest.raises(ValidationError):
        PromptCreate.model_validate(body)


def test_get_prompt_missing_is_not_found(local_only):
    with pytest.raises(NotFound) as exc:
        local_only.get("nope")
    assert exc.value.status == 404 and exc.value.message == "Prompt not found"


def test_list_prompts_filters_and_paginates(local_only):
    for i in range(5):
        local_only.create(PromptCreate(name=f"Support {i}"))
    local_only.create(PromptCreate(name="Sales"))

    support = local_only.list(PromptListQuery(name="support")).items
    seen, cursor = [], None
    while True:
        page = local_only.list(PromptListQuery(limit=2, cursor=cursor))
        seen += [p.name for p in page.items]
        if not (cursor := page.next_cursor):
            break

    assert len(support) == 5
    assert sorted(seen) == sorted([f"Support {i}" for i in range(5)] + ["Sales"])


def test_list_prompts_bad_cursor_is_bad_request(local_only):
    with pytest.raises(BadRequest):
        local_only.list(PromptListQuery(cursor="%%%"))


def test_update_prompt_renames_and_bumps_version(local_only):
    repo = PromptRepository()
    prompt = local_only.create(PromptCreate(name="Old"))

    updated = local_only.update(prompt.id, PromptUpdate(name="New", description="d", version=1))

    assert (updated.name, updated.description, updated.version) == ("New", "d", 2)
    assert repo.get(**name_key("old")) is None and repo.get(**name_key("new"))["prompt_id"] == prompt.id


def test_update_prompt_stale_version_conflicts(local_only):
    prompt = local_only.create(PromptCreate(name="P"))
    local_only.update(prompt.id, PromptUpdate(description="first"))

    with pytest.raises(Conflict) as exc:
        local_only.update(prompt.id, PromptUpdate(description="second"), if_match=1)

    assert exc.value.details == {"current_version": 2}


def test_update_prompt_rename_to_taken_name_conflicts(local_only):
    local_only.create(PromptCreate(name="Taken"))
    prompt = local_only.create(PromptCreate(name="Mine"))
    with pytest.raises(Conflict):
        local_only.update(prompt.id, PromptUpdate(name="taken"))
    assert local_only.get(prompt.id).name == "Mine"


def test_delete_prompt_removes_versions_and_frees_name(local_only):
    prompt = local_only.create(PromptCreate(name="Gone", content="c"))
    local_only.create_version(prompt.id, PromptVersionCreate(version="2", content="c2"))

    ack = local_only.delete(prompt.id)

    assert ack.message == "Prompt deleted"
    with pytest.raises(NotFound):
        local_only.get(prompt.id)
    assert list(PromptRepository().query_all(_partition(prompt.id))) == []
    local_only.create(PromptCreate(name="Gone"))


def test_delete_prompt_missing_is_not_found(local_only):
    with pytest.raises(NotFound):
        local_only.delete("nope")


# -- versions -----------------------------------------------------------------------------------------------
def test_list_prompt_versions_newest_first_with_pagination(local_only):
    prompt = local_only.create(PromptCreate(name="P", content="v1"))
    for label in ("2", "3", "4"):
        local_only.create_version(prompt.id, PromptVersionCreate(version=label, content=f"v{label}"))

    first = local_only.list_versions(prompt.id, PromptVersionListQuery(limit=3))
    rest = local_only.list_versions(prompt.id, PromptVersionListQuery(limit=3, cursor=first.next_cursor))

    assert [v.version for v in first.items] == ["4", "3", "2"]
    assert [v.version for v in rest.items] == ["1"] and rest.next_cursor is None
    assert local_only.get(prompt.id).latest_version == "4"


def test_create_prompt_version_duplicate_label_conflicts(local_only):
    prompt = local_only.create(PromptCreate(name="P", content="v1"))
    with pytest.raises(Conflict) as exc:
        local_only.create_version(prompt.id, PromptVersionCreate(version="1"))
    assert exc.value.code == "version_exists"


def test_create_prompt_version_missing_prompt_is_not_found(local_only):
    with pytest.raises(NotFound):
        local_only.create_version("nope", PromptVersionCreate(version="1"))
    with pytest.raises(NotFound):
        local_only.list_versions("nope")


def test_create_prompt_version_parallel_adds_get_distinct_sequences(local_only):
    prompt = local_only.create(PromptCreate(name="P"))
    start = threading.Barrier(8)

    def add(i: int) -> int:
        start.wait()
        return local_only.create_version(prompt.id, PromptVersionCreate(version=f"v{i}")).sequence

    with serialised_dynamodb(), ThreadPoolExecutor(8) as pool:
        sequences = list(pool.map(add, range(8)))

    assert sorted(sequences) == list(range(1, 9))
    assert local_only.get(prompt.id).version_count == 8


# -- the upstream's prompt objects --------------------------------------------------------------------------
def test_create_prompt_with_content_creates_upstream_prompt(mirrored, upstream):
    prompt = mirrored.create(PromptCreate(name="Remote", content="Be nice."))

    assert prompt.openai_prompt_id == "pmpt_1"
    assert upstream.prompts["pmpt_1"]["name"] == "Remote"
    version = mirrored.list_versions(prompt.id).items[0]
    assert (version.version, version.openai_version_id) == ("1", "pmpt_1_v1")


def test_create_prompt_without_content_stays_local(mirrored, upstream):
    prompt = mirrored.create(PromptCreate(name="Local"))
    assert prompt.openai_prompt_id is None and upstream.requests == []


def test_create_prompt_version_of_remote_prompt_goes_upstream(mirrored, upstream):
    prompt = mirrored.create(PromptCreate(name="Remote", content="v1"))

    version = mirrored.create_version(prompt.id, PromptVersionCreate(version="2", content="v2"))

    assert version.openai_version_id == "pmpt_1_v2"
    assert [v["version"] for v in upstream.prompts["pmpt_1"]["versions"]] == ["1", "2"]


def test_create_prompt_upstream_failure_is_502_and_stores_nothing(_tables):
    wipe_tables()
    service = PromptService(upstream=OpenAIAdmin(PromptUpstream(fail_with=500).client()))

    with pytest.raises(UpstreamError) as exc:
        service.create(PromptCreate(name="P", content="c"))

    assert exc.value.status == 502 and "boom" not in exc.value.message
    assert service.list().items == []


def test_delete_prompt_deletes_upstream_prompt(mirrored, upstream):
    prompt = mirrored.create(PromptCreate(name="Remote", content="v1"))

    mirrored.delete(prompt.id)

    assert upstream.prompts == {}
    assert PromptRepository().get(**remote_key("pmpt_1")) is None


def test_sync_prompts_imports_remote_prompts_and_versions_once(mirrored, upstream):
    upstream.prompts["pmpt_x"] = {
        "id": "pmpt_x",
        "name": "From dashboard",
        "versions": [
            {"id": "vx1", "version": "1", "content": "a"},
            {"id": "vx2", "version": "2", "content": "b"},
        ],
    }
    mirrored.create(PromptCreate(name="Taken name"))
    upstream.prompts["pmpt_y"] = {"id": "pmpt_y", "name": "Taken name", "versions": []}

    first = mirrored.sync()
    second = mirrored.sync()

    assert first.synced == 2 and second.synced == 0
    prompts = {p.openai_prompt_id: p for p in mirrored.list().items}
    assert prompts["pmpt_x"].name == "From dashboard" and prompts["pmpt_x"].latest_version == "2"
    assert prompts["pmpt_y"].name == "Taken name (pmpt_y)"
    assert [v.version for v in mirrored.list_versions(prompts["pmpt_x"].id).items] == ["2", "1"]


def test_sync_prompts_without_upstream_prompts_syncs_nothing(local_only):
    result = local_only.sync()
    assert result.synced == 0 and "does not offer" in result.message


def _partition(prompt_id: str):
    from boto3.dynamodb.conditions import Key

    return Key("pk").eq(f"PROMPT#{prompt_id}")
