"""The conversations table: chat history, one item per completed turn.

Items (pk / sk): `CONV#<conversation id>` / `MSG#<turn start, epoch ms, 13 digits>#<random>`, with
`messages` (the user message and the assistant reply, in order), `agent_id`, `response_id`, `ttl`.

One item per turn is written once and never updated: two concurrent requests on one conversation each add
their own item, so neither can lose the other's turn, and a turn is either stored whole or not at all.
Keys sort by the time the user asked, so the history reads back in conversation order.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from boto3.dynamodb.conditions import Key

from chatbot.config import get_settings
from chatbot.dal.base import Item, Repository, is_expired, to_python

# DynamoDB items are at most 400 KB; a reply this long is cut when stored (never when streamed).
MAX_STORED_CHARS = 100_000


def conversation_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def turn_sk(started_ms: int) -> str:
    return f"MSG#{started_ms:013d}#{secrets.token_hex(4)}"


class ConversationRepository(Repository):
    entity = "conversation"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().conversations_table, resource=resource)

    def recent_turns(self, conversation_id: str, *, max_turns: int) -> list[Item]:
        """The newest `max_turns` turns, oldest first; one strongly consistent query."""
        with self._translate():
            resp = self.table.query(
                KeyConditionExpression=Key("pk").eq(conversation_pk(conversation_id))
                & Key("sk").begins_with("MSG#"),
                ScanIndexForward=False,
                Limit=max_turns,
                ConsistentRead=True,
            )
        now = time.time()
        turns = [to_python(item) for item in resp.get("Items", []) if not is_expired(item, now)]
        turns.reverse()
        return turns

    def add_turn(
        self,
        conversation_id: str,
        messages: list[dict[str, Any]],
        *,
        started_ms: int,
        ttl: int,
        agent_id: str | None = None,
        response_id: str | None = None,
    ) -> Item:
        stored = []
        for message in messages:
            message = {k: v for k, v in message.items() if v not in (None, [], "") or k == "content"}
            message["content"] = str(message.get("content", ""))[:MAX_STORED_CHARS]
            stored.append(message)
        item: Item = {
            "pk": conversation_pk(conversation_id),
            "sk": turn_sk(started_ms),
            "messages": stored,
            "created_ms": started_ms,
            "ttl": ttl,
            "version": 1,
        }
        if agent_id:
            item["agent_id"] = agent_id
        if response_id:
            item["response_id"] = response_id
        return self.put_once(item)  # the sort key's random suffix makes it unique
