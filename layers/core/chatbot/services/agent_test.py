"""`test_agent`: one message to an agent, streamed exactly as the chat endpoint streams it.

The stream opens with the original's `event: message` `{"type":"start","agent_id","agent_name"}`, then the
chat's own frames (`event: start`, `message` start / chunk… / done or error, `close`) for a conversation
`test-<unix time>-<random>`. The agent is read fresh (not from the chat's few-second cache), so an edit is
tested at once. Refusals known before the stream (unknown agent, rate limit) are plain HTTP errors.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator

from chatbot.dal.agents import AgentRepository
from chatbot.dal.base import Item
from chatbot.services import sse
from chatbot.services.concurrency import run_io


class AgentTester:
    def __init__(self, repo: AgentRepository | None = None, chat: object | None = None) -> None:
        self._repo = repo
        self._chat = chat

    @property
    def repo(self) -> AgentRepository:
        if self._repo is None:
            self._repo = AgentRepository()
        return self._repo

    def chat(self):  # type: ignore[no-untyped-def]
        from chatbot.services.chat import ChatService, get_chat_service
        from chatbot.services.chat_agents import ChatAgents

        if self._chat is None:
            shared = get_chat_service()
            # The process's upstream client and usage accounting, but agents read fresh.
            self._chat = ChatService(
                shared.settings,
                agents=ChatAgents(self.repo, ttl=0),
                usage=shared.usage,
                gateway=shared.gateway,
            )
        return self._chat

    async def open(self, agent_id: str, message: str, *, source_ip: str) -> AsyncIterator[bytes]:
        """Admit the test (404 for an unknown agent, 429 over the chat rate limit) and return its frames."""
        from chatbot.services.chat import Caller, parse_chat_request

        agent = await run_io(self.repo.require_agent, agent_id, consistent=True)
        chat = self.chat()
        request = parse_chat_request(
            {
                "message": message,
                "agent_id": agent_id,
                "conversation_id": f"test-{int(time.time())}-{secrets.token_hex(3)}",
            },
            method="POST",
            settings=chat.settings,
        )
        turn = await chat.prepare(request, Caller(source_ip=source_ip, endpoint="admin_test"))
        return _frames(agent, chat.widget_frames(turn))


async def _frames(agent: Item, chat_frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield sse.message({"type": "start", "agent_id": agent["id"], "agent_name": agent["name"]})
    async for frame in chat_frames:
        yield frame
