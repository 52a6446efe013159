"""Agent service and repository against DynamoDB (moto in-process, tables from template.yaml)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from chatbot.dal.agents import DEFAULT_KEY, AgentRepository, name_key
from chatbot.errors import BadRequest, Conflict, NotFound
from chatbot.models.agents import AgentCreate, AgentListQuery, AgentUpdate
from chatbot.services.agents import AgentService
from tests.unit.resources_env import mocked_tables, wipe_tables


@pytest.fixture(scope="module")
def _tables():
    with mocked_tables("AgentsTable"):
        yield


@pytest.fixture
def service(_tables):
    wipe_tables()
    return AgentService()


def _create(service: AgentService, name: str = "Support", **fields):
    return service.create(AgentCreate(name=name, **fields))


def _defaults(service: AgentService) -> list[str]:
    return [a.id for a in service.list(AgentListQuery(limit=200)).items if a.is_default]


# -- create / get -----------------------------------------------------------------------------------------
def test_create_agent_stores_all_fields(service):
    agent = _create(
        service,
        description="helps",
        api_type="chat",
        model="gpt-4o-mini",
        temperature=0.2,
        top_p=0.9,
        max_output_tokens=512,
        vector_store_ids=["vs_1", "vs_1", "vs_2"],
        max_num_results=5,
        prompt_id="pmpt_1",
        prompt_version="2",
        system_message="Be brief.",
    )

    stored = service.get(agent.id)

    assert stored == agent
    assert stored.temperature == 0.2 and stored.top_p == 0.9
    assert stored.vector_store_ids == ["vs_1", "vs_2"]
    assert stored.version == 1 and stored.is_default is False
    assert stored.created_at == stored.updated_at and stored.created_at.endswith("Z")


def test_create_agent_normalises_tools_like_chat(service):
    agent = _create(
        service,
        tools=[
            {"type": "function", "name": "get_weather", "description": "  d  ", "strict": "true"},
            {"type": "function", "name": "bad name!"},
            {"type": "web_browser"},
            {"type": "file_search", "file_search": {"vector_store_ids": ["vs_a", "vs_a", "bad id"]}},
        ],
    )

    assert agent.tools == [
        {"type": "function", "name": "get_weather", "description": "d", "strict": True},
        {"type": "file_search", "vector_store_ids": ["vs_a"]},
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "x" * 256},
        {"name": "a", "temperature": 2.01},
        {"name": "a", "temperature": -0.1},
        {"name": "a", "top_p": 1.5},
        {"name": "a", "max_num_results": 0},
        {"name": "a", "max_num_results": 201},
        {"name": "a", "api_type": "assistants"},
        {"name": "a", "vector_store_ids": [""]},
        {"name": "a", "tools": "not a list"},
        {"description": "no name"},
    ],
)
def test_create_agent_invalid_fields_refused(fields):
    with pytest.raises(ValidationError):
        AgentCreate.model_validate(fields)


def test_create_agent_duplicate_name_conflicts_case_insensitively(service):
    _create(service, "Support")

    with pytest.raises(Conflict) as exc:
        _create(service, "  support ")

    assert exc.value.code == "agent_name_taken"
    assert len(service.list().items) == 1


def test_get_agent_missing_is_not_found(service):
    with pytest.raises(NotFound) as exc:
        service.get("nope")
    assert exc.value.status == 404 and exc.value.message == "Agent not found"


# -- list ---------------------------------------------------------------------------------------------------
def test_list_agents_filters_by_name_and_api_type(service):
    _create(service, "Sales bot", api_type="chat")
    _create(service, "Support bot")
    _create(service, "Other")

    by_name = service.list(AgentListQuery(name="BOT"))
    by_type = service.list(AgentListQuery(api_type="chat"))

    assert sorted(a.name for a in by_name.items) == ["Sales bot", "Support bot"]
    assert [a.name for a in by_type.items] == ["Sales bot"]


def test_list_agents_paginates_with_cursor_without_guards_or_marker(service):
    names = {f"agent {i}" for i in range(7)}
    ids = [_create(service, n).id for n in sorted(names)]
    service.make_default(ids[0])

    seen, cursor = [], None
    while True:
        page = service.list(AgentListQuery(limit=3, cursor=cursor))
        assert len(page.items) <= 3
        seen += [a.name for a in page.items]
        cursor = page.next_cursor
        if not cursor:
            break

    assert sorted(seen) == sorted(names)


def test_list_agents_bad_cursor_is_bad_request(service):
    with pytest.raises(BadRequest):
        service.list(AgentListQuery(cursor="!!not-a-cursor"))


# -- update -------------------------------------------------------------------------------------------------
def test_update_agent_changes_only_sent_fields_and_bumps_version(service):
    agent = _create(service, model="gpt-4o", temperature=0.5)

    updated = service.update(agent.id, AgentUpdate.model_validate({"temperature": 1.5, "description": "new"}))

    assert updated.temperature == 1.5 and updated.description == "new"
    assert updated.model == "gpt-4o" and updated.name == agent.name
    assert updated.version == 2 and updated.updated_at >= agent.updated_at


def test_update_agent_null_clears_optional_field(service):
    agent = _create(service, model="gpt-4o")

    updated = service.update(agent.id, AgentUpdate.model_validate({"model": None}))

    assert updated.model is None


def test_update_agent_null_name_refused():
    with pytest.raises(ValidationError):
        AgentUpdate.model_validate({"name": None})


def test_update_agent_stale_version_conflicts(service):
    agent = _create(service)
    service.update(agent.id, AgentUpdate(description="first"))

    with pytest.raises(Conflict) as exc:
        service.update(agent.id, AgentUpdate(description="second", version=agent.version))

    assert exc.value.details == {"current_version": 2}
    assert service.get(agent.id).description == "first"


def test_update_agent_if_match_is_checked(service):
    agent = _create(service)

    with pytest.raises(Conflict):
        service.update(agent.id, AgentUpdate(description="x"), if_match=7)
    ok = service.update(agent.id, AgentUpdate(description="x"), if_match=1)

    assert ok.version == 2


def test_update_agent_rename_moves_name_guard(service):
    repo = AgentRepository()
    agent = _create(service, "Old")

    renamed = service.update(agent.id, AgentUpdate(name="New", version=1))

    assert renamed.name == "New" and renamed.version == 2
    assert repo.get(**name_key("old")) is None
    assert repo.get(**name_key("new"))["agent_id"] == agent.id
    _create(service, "old")  # the old name is free again


def test_update_agent_rename_to_taken_name_conflicts(service):
    _create(service, "Taken")
    agent = _create(service, "Mine")

    with pytest.raises(Conflict) as exc:
        service.update(agent.id, AgentUpdate(name="TAKEN"))

    assert exc.value.code == "agent_name_taken"
    assert service.get(agent.id).name == "Mine"


def test_update_agent_missing_is_not_found(service):
    with pytest.raises(NotFound):
        service.update("nope", AgentUpdate(description="x"))


# -- delete -------------------------------------------------------------------------------------------------
def test_delete_agent_removes_agent_and_frees_name(service):
    agent = _create(service, "Gone")

    ack = service.delete(agent.id)

    assert ack.success is True and ack.message == "Agent deleted"
    with pytest.raises(NotFound):
        service.get(agent.id)
    _create(service, "Gone")


def test_delete_agent_default_clears_marker(service):
    repo = AgentRepository()
    agent = _create(service, is_default=True)

    service.delete(agent.id)

    assert repo.get(**DEFAULT_KEY) is None
    assert service.get_default() is None


def test_delete_agent_missing_is_not_found(service):
    with pytest.raises(NotFound):
        service.delete("nope")


def test_delete_agent_stale_if_match_conflicts(service):
    agent = _create(service)
    with pytest.raises(Conflict):
        service.delete(agent.id, if_match=5)
    assert service.get(agent.id)


# -- default ------------------------------------------------------------------------------------------------
def test_make_default_moves_the_single_default(service):
    first = _create(service, "First", is_default=True)
    second = _create(service, "Second")

    result = service.make_default(second.id)

    assert result.success and result.message == "Default agent set" and result.agent.is_default
    assert _defaults(service) == [second.id]
    assert service.get(first.id).version == 2  # flag flip is a change clients must see
    assert AgentRepository().resolve(None)["id"] == second.id


def test_make_default_missing_is_not_found(service):
    existing = _create(service, is_default=True)
    with pytest.raises(NotFound):
        service.make_default("nope")
    assert _defaults(service) == [existing.id]


def test_make_default_again_is_idempotent(service):
    agent = _create(service)
    service.make_default(agent.id)
    again = service.make_default(agent.id)
    assert again.agent.version == 2
    assert _defaults(service) == [agent.id]


def test_create_agent_default_takes_over(service):
    first = _create(service, "First", is_default=True)
    second = _create(service, "Second", is_default=True)

    assert _defaults(service) == [second.id]
    assert service.get(first.id).is_default is False


def test_update_agent_is_default_true_and_false(service):
    agent = _create(service)

    on = service.update(agent.id, AgentUpdate(is_default=True))
    off = service.update(agent.id, AgentUpdate(is_default=False))

    assert on.is_default is True
    assert off.is_default is False and service.get_default() is None


def test_resolve_agent_falls_back_to_default(service):
    default = _create(service, "D", is_default=True)
    other = _create(service, "O")
    repo = AgentRepository()

    assert repo.resolve(other.id)["id"] == other.id
    assert repo.resolve("missing")["id"] == default.id
    assert repo.resolve(None)["id"] == default.id
