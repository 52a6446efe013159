"""Fixed-window counters (RATE_LIMITS_TABLE): pk `RL#<scope>#<key>`, sk `<window start epoch>`, TTL."""

from __future__ import annotations

from chatbot.dal.base import Repository


class RateLimitsRepository(Repository):
    entity = "rate_limit"

    def increment(self, pk: str, sk: str, *, amount: int, expires_at: int) -> int:
        """Add `amount` atomically and return the new count: one write, whatever the concurrency."""
        with self._translate():
            resp = self.table.update_item(
                Key={"pk": pk, "sk": sk},
                UpdateExpression="ADD #count :amount SET #ttl = if_not_exists(#ttl, :ttl)",
                ExpressionAttributeNames={"#count": "count", "#ttl": "ttl"},
                ExpressionAttributeValues={":amount": amount, ":ttl": expires_at},
                ReturnValues="UPDATED_NEW",
            )
        return int(resp["Attributes"]["count"])
