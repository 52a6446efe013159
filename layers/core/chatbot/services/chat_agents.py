"""Agent lookups for the chat path, cached in memory for a few seconds.

Every chat request needs its agent before the first token; reading it from DynamoDB each time would put a
round trip on the critical path. An agent edited in the admin API is seen by warm chat functions within
`settings.agent_cache_seconds` (10 s by default). Misses are cached too, so an unknown `agent_id` sent by
a hostile client does not turn into a read per request.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from chatbot.config import get_settings
from chatbot.dal.agents import AgentRepository, name_key
from chatbot.dal.base import Item


class ChatAgents:
    def __init__(self, repo: AgentRepository | None = None, *, ttl: float | None = None) -> None:
        self._repo = repo
        self.ttl = get_settings().agent_cache_seconds if ttl is None else ttl
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    @property
    def repo(self) -> AgentRepository:
        if self._repo is None:
            self._repo = AgentRepository()
        return self._repo

    def get_agent(self, agent_id: str) -> Item | None:
        return self._cached(f"id:{agent_id}", lambda: self.repo.get_agent(agent_id))

    def get_default_agent(self) -> Item | None:
        return self._cached("default", self.repo.get_default_agent)

    def resolve(self, agent_id: str | None) -> Item | None:
        """The chat rule: the agent asked for, else the default agent, else None (configured defaults)."""
        if agent_id:
            agent = self.get_agent(agent_id)
            if agent is not None:
                return agent
        return self.get_default_agent()

    def peek(self, agent_id: str | None) -> tuple[bool, Item | None]:
        """`resolve(agent_id)` from the cache alone: (True, agent) on a hit, (False, None) on a miss."""
        now = time.monotonic()
        if agent_id:
            hit = self._cache.get(f"id:{agent_id}")
            if hit is None or hit[0] <= now:
                return False, None
            if hit[1] is not None:
                return True, hit[1]
        default = self._cache.get("default")
        if default is None or default[0] <= now:
            return False, None
        return True, default[1]

    def find(self, id_or_name: str) -> Item | None:
        """An agent by id, else by (case-insensitive) name: `model` on the OpenAI-compatible API."""
        agent = self.get_agent(id_or_name)
        if agent is not None:
            return agent

        def by_name() -> Item | None:
            guard = self.repo.get(**name_key(id_or_name))
            return self.repo.get_agent(guard["agent_id"]) if guard and guard.get("agent_id") else None

        return self._cached(f"name:{id_or_name.strip().casefold()}", by_name)

    def list_agents(self) -> list[Item]:
        def load() -> list[Item]:
            items: list[Item] = []
            cursor = None
            while True:
                page = self.repo.list_agents(limit=200, cursor=cursor)
                items.extend(page.items)
                if not page.next_cursor:
                    return items
                cursor = page.next_cursor

        return self._cached("list", load) or []

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()

    def _cached(self, key: str, load: Any) -> Any:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now + self.ttl, value)
            if len(self._cache) > 2048:
                # Bounded: hostile agent ids must not grow the cache without limit.
                for stale in [k for k, (exp, _) in self._cache.items() if exp <= now] or list(self._cache)[
                    :1024
                ]:
                    self._cache.pop(stale, None)
        return value
