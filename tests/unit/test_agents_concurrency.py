"""Exactly one default agent under concurrent `make_default` calls (and concurrent creates with a name)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatbot.dal.agents import DEFAULT_KEY, AgentRepository
from chatbot.errors import Conflict
from chatbot.models.agents import AgentCreate, AgentListQuery
from chatbot.services.agents import AgentService
from tests.unit.resources_env import mocked_tables, serialised_dynamodb


@pytest.fixture
def service():
    with mocked_tables("AgentsTable"), serialised_dynamodb():
        yield AgentService()


def _all(service: AgentService):
    return service.list(AgentListQuery(limit=200)).items


def test_make_default_20_parallel_calls_leave_exactly_one_default(service):
    # Given 20 agents, one of them the default
    agents = [service.create(AgentCreate(name=f"agent-{i}", is_default=i == 0)) for i in range(20)]
    start = threading.Barrier(20)

    def make_default(agent_id: str) -> str:
        start.wait()
        return service.make_default(agent_id).agent.id

    # When 20 threads each make a different agent the default at the same moment
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(make_default, [a.id for a in agents]))

    # Then every call succeeded, and exactly one agent is the default: the one the marker names
    assert sorted(results) == sorted(a.id for a in agents)
    defaults = [a.id for a in _all(service) if a.is_default]
    marker = AgentRepository().get(**DEFAULT_KEY, consistent=True)
    assert len(defaults) == 1
    assert marker["agent_id"] == defaults[0]


def test_create_agent_parallel_same_name_creates_one(service):
    start = threading.Barrier(10)

    def create(i: int) -> str:
        start.wait()
        try:
            service.create(AgentCreate(name="Same Name", is_default=i % 2 == 0))
            return "created"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(create, range(10)))

    assert results.count("created") == 1
    assert len(_all(service)) == 1
    assert sum(a.is_default for a in _all(service)) <= 1
