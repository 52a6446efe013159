"""The usage table: token counters per agent, API key and day, and daily token quotas.

Items (pk / sk):
- `AGENT#<agent id>` / `DAY#<yyyy-mm-dd>` and `KEY#<key id>` / `DAY#<yyyy-mm-dd>`: the day's counters of one
  agent or one key (`requests`, `errors`, `input_tokens`, `output_tokens`, `total_tokens`) plus the quota
  ledger: `committed` (tokens used + tokens reserved by requests in flight) and `reserved`.
- `DAY#<yyyy-mm-dd>` / `AGENT#<agent id>#KEY#<key id>`: the same counters for one agent and key on one day
  (what the admin usage report reads).
- `QUOTA` / `AGENT#<agent id>` or `KEY#<key id>`: `daily_tokens`, the quota of that agent or key.

All counters are maintained with `ADD`, so concurrent requests never lose an increment. A reservation is
one conditional `ADD` on the ledger (`committed < limit` before adding): whatever the concurrency, every
admitted request saw the quota not yet reached, so the day can overshoot it by at most one request's
reservation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from chatbot import aws
from chatbot.config import get_settings
from chatbot.dal.base import Item, Repository, to_python
from chatbot.errors import PersistenceError

COUNTERS = ("requests", "errors", "input_tokens", "output_tokens", "total_tokens")
QUOTA_PK = "QUOTA"
_SCOPE_PREFIX = {"agent": "AGENT", "key": "KEY"}
_DESERIALIZE = TypeDeserializer()


def scope_pk(scope: str, ident: str) -> str:
    return f"{_SCOPE_PREFIX[scope]}#{ident}"


def day_sk(day: str) -> str:
    return f"DAY#{day}"


@dataclass(frozen=True)
class LedgerState:
    """What a refused reservation found: tokens used and tokens still reserved by requests in flight."""

    committed: int
    reserved: int

    @property
    def used(self) -> int:
        return max(0, self.committed - self.reserved)


class QuotaRefused(Exception):
    def __init__(self, state: LedgerState) -> None:
        super().__init__("quota reached")
        self.state = state


class UsageRepository(Repository):
    entity = "usage"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().usage_table, resource=resource)

    # -- quotas ------------------------------------------------------------------------------------------
    def get_quotas(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int | None]:
        """Daily token quotas of (scope, id) pairs in one BatchGetItem; None where no quota is set."""
        wanted = {(scope, ident): scope_pk(scope, ident) for scope, ident in keys}
        result: dict[tuple[str, str], int | None] = dict.fromkeys(wanted)
        if not wanted:
            return result
        request = {self.table_name: {"Keys": [{"pk": QUOTA_PK, "sk": sk} for sk in set(wanted.values())]}}
        by_sk: dict[str, int] = {}
        with self._translate():
            while request:
                resp = self._service().batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table_name, []):
                    if item.get("daily_tokens") is not None:
                        by_sk[item["sk"]] = int(item["daily_tokens"])
                request = resp.get("UnprocessedKeys") or {}
        for pair, sk in wanted.items():
            result[pair] = by_sk.get(sk)
        return result

    def put_quota(self, scope: str, ident: str, daily_tokens: int, *, now: str) -> Item:
        item = {
            "pk": QUOTA_PK,
            "sk": scope_pk(scope, ident),
            "scope": scope,
            "id": ident,
            "daily_tokens": daily_tokens,
            "updated_at": now,
            "version": 1,
        }
        return self.put(item)

    def delete_quota(self, scope: str, ident: str) -> None:
        self.delete(QUOTA_PK, scope_pk(scope, ident), must_exist=False)

    def list_quotas(self) -> list[Item]:
        return list(self.query_all(Key("pk").eq(QUOTA_PK)))

    # -- ledger ------------------------------------------------------------------------------------------
    def reserve(self, scope: str, ident: str, day: str, tokens: int, *, limit: int, ttl: int) -> None:
        """Reserve `tokens` on the day's ledger if the quota is not reached yet; QuotaRefused otherwise."""
        if limit <= 0:
            raise QuotaRefused(LedgerState(committed=0, reserved=0))
        try:
            self.table.update_item(
                Key={"pk": scope_pk(scope, ident), "sk": day_sk(day)},
                UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD committed :n, reserved :n",
                ConditionExpression="attribute_not_exists(committed) OR committed < :limit",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":n": tokens, ":limit": limit, ":ttl": ttl},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise PersistenceError() from exc
            # The old item comes back in the low-level format ({"N": "12"}), even through the resource API.
            raw = exc.response.get("Item") or {}
            old = to_python({k: _DESERIALIZE.deserialize(v) for k, v in raw.items()})
            raise QuotaRefused(
                LedgerState(committed=int(old.get("committed", 0)), reserved=int(old.get("reserved", 0)))
            ) from None
        except BotoCoreError as exc:
            raise PersistenceError() from exc

    def record(
        self,
        scope: str,
        ident: str,
        day: str,
        *,
        counters: dict[str, int],
        reserved: int,
        ttl: int,
    ) -> None:
        """Add one request's counters to an agent's or key's day and release its reservation."""
        values: dict[str, Any] = {":ttl": ttl, ":committed": counters.get("total_tokens", 0) - reserved}
        adds = ["committed :committed"]
        if reserved:
            values[":released"] = -reserved
            adds.append("reserved :released")
        for i, name in enumerate(COUNTERS):
            if counters.get(name):
                values[f":c{i}"] = counters[name]
                adds.append(f"{name} :c{i}")
        with self._translate():
            self.table.update_item(
                Key={"pk": scope_pk(scope, ident), "sk": day_sk(day)},
                UpdateExpression="SET #ttl = if_not_exists(#ttl, :ttl) ADD " + ", ".join(adds),
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues=values,
            )

    def record_detail(
        self, day: str, agent_id: str, key_id: str, *, counters: dict[str, int], ttl: int
    ) -> None:
        """Add one request's counters to the (day, agent, key) row."""
        values: dict[str, Any] = {":ttl": ttl, ":agent": agent_id, ":key": key_id, ":day": day, ":one": 1}
        adds = []
        for i, name in enumerate(COUNTERS):
            if counters.get(name):
                values[f":c{i}"] = counters[name]
                adds.append(f"{name} :c{i}")
        expression = "SET #ttl = if_not_exists(#ttl, :ttl), agent_id = :agent, key_id = :key, #day = :day"
        expression += ", #version = if_not_exists(#version, :one)"
        if adds:
            expression += " ADD " + ", ".join(adds)
        with self._translate():
            self.table.update_item(
                Key={"pk": f"DAY#{day}", "sk": f"AGENT#{agent_id}#KEY#{key_id}"},
                UpdateExpression=expression,
                ExpressionAttributeNames={"#ttl": "ttl", "#day": "day", "#version": "version"},
                ExpressionAttributeValues=values,
            )

    # -- reads -------------------------------------------------------------------------------------------
    def ledger(self, scope: str, ident: str, day: str) -> Item | None:
        return self.get(scope_pk(scope, ident), day_sk(day), consistent=True)

    def day_rows(self, day: str) -> list[Item]:
        return list(self.query_all(Key("pk").eq(f"DAY#{day}")))

    def scope_days(self, scope: str, ident: str, day_from: str, day_to: str) -> list[Item]:
        return list(
            self.query_all(
                Key("pk").eq(scope_pk(scope, ident)) & Key("sk").between(day_sk(day_from), day_sk(day_to))
            )
        )

    def _service(self) -> Any:
        return self._resource or aws.resource("dynamodb")
