"""The agents table: agents, their case-insensitive name guards and the default-agent marker.

Items (pk / sk):
- `AGENT#<id>` / `AGENT`: the agent (attributes as `chatbot.models.agents.Agent`, plus `name_lower`).
- `AGENTNAME#<casefolded name>` / `AGENTNAME`: `agent_id`; created and deleted in the same transaction as
  the agent, so two agents can never share a name.
- `DEFAULT` / `AGENT`: `agent_id` of the default agent. Every change of the default agent is one transaction
  that moves this marker (conditioned on its previous value) and flips the agents' `is_default` flags, so
  there is never more than one default, even under concurrent calls.

This is the repository every reader of agents uses (the chat function included): `get_agent`,
`get_default_agent`, `resolve(agent_id)`.
"""

from __future__ import annotations

import contextlib
import random
import time
from typing import Any

from boto3.dynamodb.conditions import Attr

from chatbot.config import get_settings
from chatbot.dal.base import Item, Page, Repository, to_dynamo
from chatbot.dal.transact import TransactionFailed, scan_page, transact, update_op
from chatbot.errors import Conflict, NotFound

AGENT_SK = "AGENT"
NAME_SK = "AGENTNAME"
DEFAULT_KEY = {"pk": "DEFAULT", "sk": "AGENT"}
# Contention on the default marker is resolved by re-reading and retrying; with 20 concurrent callers
# each round lets at least one through, so this bound is generous.
_MAX_DEFAULT_ATTEMPTS = 60


def agent_key(agent_id: str) -> dict[str, str]:
    return {"pk": f"AGENT#{agent_id}", "sk": AGENT_SK}


def name_key(name: str) -> dict[str, str]:
    return {"pk": f"AGENTNAME#{name.strip().casefold()}", "sk": NAME_SK}


def _name_taken(name: str) -> Conflict:
    return Conflict(f"An agent named '{name}' already exists", code="agent_name_taken")


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))


class AgentRepository(Repository):
    entity = "agent"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().agents_table, resource=resource)

    # -- reads -------------------------------------------------------------------------------------------
    def get_agent(self, agent_id: str, *, consistent: bool = False) -> Item | None:
        return self.get(**agent_key(agent_id), consistent=consistent)

    def require_agent(self, agent_id: str, *, consistent: bool = False) -> Item:
        item = self.get_agent(agent_id, consistent=consistent)
        if item is None:
            raise NotFound("Agent not found", code="agent_not_found")
        return item

    def default_agent_id(self, *, consistent: bool = False) -> str | None:
        marker = self.get(**DEFAULT_KEY, consistent=consistent)
        return marker.get("agent_id") if marker else None

    def get_default_agent(self) -> Item | None:
        agent_id = self.default_agent_id()
        return self.get_agent(agent_id) if agent_id else None

    def resolve(self, agent_id: str | None) -> Item | None:
        """The chat rule: the agent asked for, else the default agent, else None."""
        if agent_id:
            item = self.get_agent(agent_id)
            if item is not None:
                return item
        return self.get_default_agent()

    def list_agents(
        self,
        *,
        name: str | None = None,
        api_type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        condition = Attr("sk").eq(AGENT_SK) & Attr("pk").begins_with("AGENT#")
        if name:
            condition = condition & Attr("name_lower").contains(name.strip().casefold())
        if api_type:
            condition = condition & Attr("api_type").eq(api_type)
        return scan_page(self, condition, limit=limit, cursor=cursor)

    def count_agents(self) -> int:
        total = 0
        cursor = None
        while True:
            page = self.list_agents(limit=200, cursor=cursor)
            total += len(page.items)
            if not page.next_cursor:
                return total
            cursor = page.next_cursor

    # -- writes ------------------------------------------------------------------------------------------
    def create_agent(self, item: Item, *, make_default: bool = False) -> Item:
        """Insert a new agent and its name guard (and, optionally, make it the default) in one transaction."""
        agent = {**item, **agent_key(item["id"]), "name_lower": item["name"].casefold(), "version": 1}
        agent["is_default"] = make_default
        ops: list[dict[str, Any]] = [
            {"Put": {"Item": to_dynamo(agent), "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Put": {
                    "Item": {**name_key(item["name"]), "agent_id": item["id"]},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if not make_default:
            try:
                transact(self, ops)
            except TransactionFailed as failed:
                if failed.failed(1):
                    raise _name_taken(item["name"]) from None
                raise Conflict("Agent could not be created, try again", code="agent_conflict") from None
            return agent
        self._switch_default(agent["id"], ops, now=item["updated_at"], new_is_created=True)
        return agent

    def update_agent(
        self, current: Item, changes: dict[str, Any], *, now: str, expected_version: int | None = None
    ) -> Item:
        """Apply `changes` (None clears a field) to `current`, moving the name guard on a rename."""
        agent_id = current["id"]
        changes = {**changes, "updated_at": now}
        if "name" in changes:
            changes["name_lower"] = changes["name"].casefold()
        renamed = "name" in changes and changes["name"].casefold() != current["name"].casefold()
        if not renamed:
            return self.update(
                **agent_key(agent_id),
                changes=changes,
                expected_version=expected_version,
                conflict_message="Agent was changed by someone else; reload it and try again",
            )
        version = expected_version if expected_version is not None else current["version"]
        ops = [
            update_op(agent_key(agent_id), changes, expected_version=version),
            {
                "Delete": {
                    "Key": name_key(current["name"]),
                    "ConditionExpression": "attribute_not_exists(pk) OR agent_id = :id",
                    "ExpressionAttributeValues": {":id": agent_id},
                }
            },
            {
                "Put": {
                    "Item": {**name_key(changes["name"]), "agent_id": agent_id},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        try:
            transact(self, ops)
        except TransactionFailed as failed:
            if failed.failed(2):
                raise _name_taken(changes["name"]) from None
            if failed.failed(0):
                if self.get_agent(agent_id, consistent=True) is None:
                    raise NotFound("Agent not found", code="agent_not_found") from None
                raise Conflict(
                    "Agent was changed by someone else; reload it and try again",
                    details={"current_version": self.require_agent(agent_id, consistent=True)["version"]},
                ) from None
            raise Conflict("Agent changed concurrently, try again", code="agent_conflict") from None
        return self.require_agent(agent_id, consistent=True)

    def delete_agent(self, agent_id: str, *, expected_version: int | None = None) -> Item:
        """Delete the agent, its name guard and (if it is the default) the default marker, atomically."""
        for attempt in range(_MAX_DEFAULT_ATTEMPTS):
            current = self.require_agent(agent_id, consistent=True)
            if expected_version is not None and current["version"] != expected_version:
                raise Conflict(
                    "Agent was changed by someone else; reload it and try again",
                    details={"current_version": current["version"]},
                )
            ops: list[dict[str, Any]] = [
                {
                    "Delete": {
                        "Key": agent_key(agent_id),
                        "ConditionExpression": "#version = :version",
                        "ExpressionAttributeNames": {"#version": "version"},
                        "ExpressionAttributeValues": {":version": current["version"]},
                    }
                },
                {
                    "Delete": {
                        "Key": name_key(current["name"]),
                        "ConditionExpression": "attribute_not_exists(pk) OR agent_id = :id",
                        "ExpressionAttributeValues": {":id": agent_id},
                    }
                },
            ]
            if current.get("is_default"):
                ops.append(
                    {
                        "Delete": {
                            "Key": DEFAULT_KEY,
                            "ConditionExpression": "attribute_not_exists(pk) OR agent_id = :id",
                            "ExpressionAttributeValues": {":id": agent_id},
                        }
                    }
                )
            try:
                transact(self, ops)
                return current
            except TransactionFailed:
                # Changed in between (renamed, made default, updated): read again and retry.
                _backoff(attempt)
        raise Conflict("Agent changed concurrently, try again", code="agent_conflict")

    def set_default(self, agent_id: str, *, now: str) -> Item:
        """Make `agent_id` the one default agent; returns the agent as stored afterwards."""
        self._switch_default(agent_id, [], now=now, new_is_created=False)
        return self.require_agent(agent_id, consistent=True)

    def clear_default(self, agent_id: str, *, now: str) -> Item:
        """Leave no default agent if `agent_id` is the default (no-op otherwise)."""
        ops = [
            {
                "Delete": {
                    "Key": DEFAULT_KEY,
                    "ConditionExpression": "agent_id = :id",
                    "ExpressionAttributeValues": {":id": agent_id},
                }
            },
            self._flag_op(agent_id, False, now),
        ]
        try:
            transact(self, ops)
        except TransactionFailed as failed:
            if failed.failed(1):
                raise NotFound("Agent not found", code="agent_not_found") from None
            # The marker names another agent (or none): nothing to clear.
        return self.require_agent(agent_id, consistent=True)

    def _switch_default(
        self, agent_id: str, extra_ops: list[dict[str, Any]], *, now: str, new_is_created: bool
    ) -> None:
        """Move the default marker to `agent_id` and flip both agents' flags in one transaction.

        The marker write is conditioned on the value just read, so of several concurrent callers exactly
        one wins each round; the others re-read and retry. `extra_ops` (the agent's creation) ride along.
        """
        for attempt in range(_MAX_DEFAULT_ATTEMPTS):
            marker = self.get(**DEFAULT_KEY, consistent=True)
            old_id = marker.get("agent_id") if marker else None
            if old_id == agent_id and not extra_ops:
                agent = self.require_agent(agent_id, consistent=True)
                if agent.get("is_default"):
                    return
            if marker is None:
                marker_condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
            else:
                marker_condition = {
                    "ConditionExpression": "agent_id = :old",
                    "ExpressionAttributeValues": {":old": old_id},
                }
            ops = [
                *extra_ops,
                {
                    "Put": {
                        "Item": {**DEFAULT_KEY, "agent_id": agent_id, "updated_at": now},
                        **marker_condition,
                    }
                },
            ]
            marker_index = len(ops) - 1
            if not new_is_created:
                ops.append(self._flag_op(agent_id, True, now))
            new_index = len(ops) - 1
            old_index = -1
            if old_id and old_id != agent_id:
                ops.append(self._flag_op(old_id, False, now))
                old_index = len(ops) - 1
            try:
                transact(self, ops)
                return
            except TransactionFailed as failed:
                if extra_ops and failed.failed(1):
                    raise _name_taken(extra_ops[0]["Put"]["Item"]["name"]) from None
                if extra_ops and failed.failed(0):
                    raise Conflict("Agent could not be created, try again", code="agent_conflict") from None
                if not new_is_created and failed.failed(new_index):
                    raise NotFound("Agent not found", code="agent_not_found") from None
                if old_index >= 0 and failed.failed(old_index) and not failed.failed(marker_index):
                    # The marker named an agent that no longer exists: repair the marker first.
                    self._drop_stale_marker(old_id)
                _backoff(attempt)
        raise Conflict("The default agent is changing concurrently, try again", code="default_agent_conflict")

    def _flag_op(self, agent_id: str, is_default: bool, now: str) -> dict[str, Any]:
        return {
            "Update": {
                "Key": agent_key(agent_id),
                "UpdateExpression": "SET is_default = :flag, updated_at = :now, #version = #version + :one",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": {":flag": is_default, ":now": now, ":one": 1},
            }
        }

    def _drop_stale_marker(self, old_id: str | None) -> None:
        with contextlib.suppress(TransactionFailed):
            transact(
                self,
                [
                    {
                        "Delete": {
                            "Key": DEFAULT_KEY,
                            "ConditionExpression": "agent_id = :old",
                            "ExpressionAttributeValues": {":old": old_id},
                        }
                    },
                    {
                        "ConditionCheck": {
                            "Key": agent_key(old_id or ""),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ],
            )
