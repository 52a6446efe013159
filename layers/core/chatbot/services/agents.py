"""Agents: list, get, create, update (partial, optimistic), delete, make default.

Validation is the original's (see `chatbot.models.agents`); tools are normalised exactly as the chat path
normalises them, so an agent never stores a tool the chat would drop. Missing ids are 404 (the original
answered 500), a stale `version` or a taken name is 409.
"""

from __future__ import annotations

import uuid
from typing import Any

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal.agents import AgentRepository
from chatbot.dal.base import Item
from chatbot.models.acks import Ack
from chatbot.models.agents import Agent, AgentCreate, AgentList, AgentListQuery, AgentUpdate
from chatbot.services.optimistic import check_version, expected_version
from chatbot.services.tools import normalize_tools


class DefaultAgentSet(Ack):
    agent: Agent


def to_agent(item: Item) -> Agent:
    return Agent.model_validate(item)


class AgentService:
    def __init__(self, repo: AgentRepository | None = None) -> None:
        self._repo = repo

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentService:
        return cls(AgentRepository(settings.agents_table))

    @property
    def repo(self) -> AgentRepository:
        if self._repo is None:
            self._repo = AgentRepository()
        return self._repo

    # -- reads -------------------------------------------------------------------------------------------
    def list(self, query: AgentListQuery | None = None) -> AgentList:
        query = query or AgentListQuery()
        page = self.repo.list_agents(
            name=query.name, api_type=query.api_type, limit=query.limit, cursor=query.cursor
        )
        return AgentList(items=[to_agent(i) for i in page.items], next_cursor=page.next_cursor)

    def get(self, agent_id: str) -> Agent:
        return to_agent(self.repo.require_agent(agent_id))

    def get_default(self) -> Agent | None:
        item = self.repo.get_default_agent()
        return to_agent(item) if item else None

    # -- writes ------------------------------------------------------------------------------------------
    def create(self, data: AgentCreate) -> Agent:
        now = clock.iso()
        fields = data.model_dump(exclude={"is_default"}, exclude_none=True)
        fields.update(_normalised(fields))
        item = {**fields, "id": str(uuid.uuid4()), "created_at": now, "updated_at": now}
        return to_agent(self.repo.create_agent(item, make_default=data.is_default))

    def update(self, agent_id: str, data: AgentUpdate, *, if_match: int | None = None) -> Agent:
        """Change only the fields sent. `version` in the body or If-Match guards against lost updates."""
        expected = expected_version(data.version, if_match)
        changes = data.changes()
        for field in ("tools", "vector_store_ids"):
            if field in changes and changes[field] is None:
                changes[field] = []
        changes.update(_normalised(changes))
        current = self.repo.require_agent(agent_id, consistent=True)
        check_version("Agent", current["version"], expected)
        now = clock.iso()
        item = current
        if changes:
            item = self.repo.update_agent(current, changes, now=now, expected_version=expected)
        if data.is_default is True and not item.get("is_default"):
            item = self.repo.set_default(agent_id, now=now)
        elif data.is_default is False and item.get("is_default"):
            item = self.repo.clear_default(agent_id, now=now)
        return to_agent(item)

    def delete(self, agent_id: str, *, if_match: int | None = None) -> Ack:
        self.repo.delete_agent(agent_id, expected_version=if_match)
        return Ack(message="Agent deleted")

    def make_default(self, agent_id: str) -> DefaultAgentSet:
        item = self.repo.set_default(agent_id, now=clock.iso())
        return DefaultAgentSet(message="Default agent set", agent=to_agent(item))


def _normalised(fields: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if fields.get("tools") is not None:
        out["tools"] = normalize_tools(fields["tools"])
    if fields.get("vector_store_ids") is not None:
        # Order kept, duplicates dropped: the chat sends them upstream as given.
        out["vector_store_ids"] = list(dict.fromkeys(fields["vector_store_ids"]))
    return out
