"""The webhook events table: one item per OpenAI event id, the dedupe record of every delivery.

Items (pk / sk): `EVENT#<event id>` / `EVENT` with `event_type`, `status` (received → processed | failed),
`job_id` (the deterministic id of the job that applies it), `deliveries` (how many times OpenAI sent it),
`received_at`, `processed_at`, `result`, and a `ttl` well past OpenAI's retry window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from boto3.dynamodb.conditions import Attr

from chatbot.config import get_settings
from chatbot.dal.base import Item, Repository
from chatbot.errors import Conflict

EVENT_SK = "EVENT"


def event_key(event_id: str) -> dict[str, str]:
    return {"pk": f"EVENT#{event_id}", "sk": EVENT_SK}


class WebhookEventRepository(Repository):
    entity = "webhook_event"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().webhook_events_table, resource=resource)

    def get_event(self, event_id: str) -> Item | None:
        item = self.get(**event_key(event_id), consistent=True)
        if item is None:
            return None
        return {k: v for k, v in item.items() if k not in ("pk", "sk")}

    def record_first_delivery(self, event: Mapping[str, Any]) -> bool:
        """Store the event unless its id is known; True for the first delivery, False for a repeat
        (whose delivery count is then incremented)."""
        try:
            self.put_new({**event, **event_key(event["id"]), "deliveries": 1})
        except Conflict:
            self._bump_deliveries(event["id"])
            return False
        return True

    def mark(self, event_id: str, changes: Mapping[str, Any]) -> Item:
        return self.update(**event_key(event_id), changes=changes)

    def _bump_deliveries(self, event_id: str) -> None:
        try:
            with self._translate(conflict="Webhook event expired"):
                self.table.update_item(
                    Key=event_key(event_id),
                    UpdateExpression="ADD deliveries :one",
                    ConditionExpression=Attr("pk").exists(),
                    ExpressionAttributeValues={":one": 1},
                )
        except Conflict:
            return  # removed by its TTL in between; the count is only informative
