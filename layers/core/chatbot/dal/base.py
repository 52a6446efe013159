"""DynamoDB repository base: conditional writes, optimistic versions, opaque cursors, error translation.

Every table in template.yaml has a composite key `pk` (S) + `sk` (S); GSIs are named gsi1/gsi2 with
keys gsi1pk/gsi1sk and gsi2pk/gsi2sk; the TTL attribute is `ttl` (epoch seconds).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, DecimalException
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase
from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError

from chatbot import aws
from chatbot.errors import BadRequest, Conflict, NotFound, PersistenceError
from chatbot.observability import get_logger, log_event

Item = dict[str, Any]


@dataclass(frozen=True)
class Page:
    items: list[Item]
    next_cursor: str | None


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    if not key:
        return None
    raw = json.dumps(key, default=_json_default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Item | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()), parse_float=Decimal)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid pagination cursor", code="invalid_cursor") from exc
    if not isinstance(key, dict) or not all(isinstance(v, str | int | Decimal) for v in key.values()):
        raise BadRequest("Invalid pagination cursor", code="invalid_cursor")
    return key


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value).__name__)


def to_python(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; hand services plain ints and floats."""
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, set):
        return {to_python(v) for v in value}
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def to_dynamo(value: Any) -> Any:
    """Floats are not accepted by boto3's serializer; convert them to Decimal recursively."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def storable_number(value: int | float) -> bool:
    """Whether DynamoDB can store the number exactly: at most 38 digits, magnitude 1E-130 to 9.99E+125.
    (boto3 raises on any other number, so inputs are checked against this before they reach a write.)"""
    try:
        DYNAMODB_CONTEXT.create_decimal(Decimal(str(value)) if isinstance(value, float) else value)
    except DecimalException:
        return False
    return True


def ttl_after(seconds: float) -> int:
    return int(time.time() + seconds)


def is_expired(item: Mapping[str, Any], now: float | None = None) -> bool:
    """DynamoDB deletes expired TTL items lazily (and the emulator never): treat them as gone."""
    ttl = item.get("ttl")
    return ttl is not None and int(ttl) <= (now if now is not None else time.time())


def read_page(
    fetch: Callable[[Item | None, int], Mapping[str, Any]],
    *,
    cursor: str | None,
    limit: int,
    key_of: Callable[[Item], Item],
) -> Page:
    """Up to `limit` live items from the responses of `fetch(start_key, items_so_far)` (a query or a scan),
    reading on while responses end short of `limit`; the cursor is the key (`key_of`) of the last item
    returned, or DynamoDB's own where the read stopped at the end of a response."""
    items: list[Item] = []
    start = decode_cursor(cursor)
    last_key: Item | None = None
    while True:
        resp = fetch(start, len(items))
        for raw in resp.get("Items", []):
            if is_expired(raw):
                continue
            items.append(to_python(raw))
            if len(items) == limit:
                last_key = key_of(raw)
                break
        else:
            last_key = resp.get("LastEvaluatedKey")
            start = last_key
            if last_key and len(items) < limit:
                continue
        break
    return Page(items=items, next_cursor=encode_cursor(last_key))


class Repository:
    """Storage-only access to one table. Subclasses add domain-level methods on top of these."""

    entity = "item"

    def __init__(self, table_name: str, *, resource: Any = None) -> None:
        self.table_name = table_name
        self._resource = resource

    @property
    def table(self) -> Any:
        if self._resource is not None:
            return self._resource.Table(self.table_name)
        return aws.table(self.table_name)

    @property
    def client(self) -> Any:
        return self.table.meta.client

    @property
    def noun(self) -> str:
        """The entity as error messages name it: `audit_entry` -> "Audit entry"."""
        return self.entity.replace("_", " ").capitalize()

    # -- reads -------------------------------------------------------------------------------------------
    def get(self, pk: str, sk: str, *, consistent: bool = False) -> Item | None:
        with self._translate():
            item = self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=consistent).get("Item")
        if item is None or is_expired(item):
            return None
        return to_python(item)

    def require(self, pk: str, sk: str, *, consistent: bool = False) -> Item:
        item = self.get(pk, sk, consistent=consistent)
        if item is None:
            raise NotFound(f"{self.noun} not found")
        return item

    def query_page(
        self,
        key_condition: ConditionBase,
        *,
        index: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        newest_first: bool = False,
        filter_expression: ConditionBase | None = None,
    ) -> Page:
        """One page of a query. With a filter, keeps reading until `limit` matches or the end."""

        def fetch(start: Item | None, collected: int) -> Item:
            kwargs: dict[str, Any] = {
                "KeyConditionExpression": key_condition,
                "ScanIndexForward": not newest_first,
                "Limit": limit - collected if filter_expression is None else max(limit, 25),
            }
            if index:
                kwargs["IndexName"] = index
            if filter_expression is not None:
                kwargs["FilterExpression"] = filter_expression
            if start:
                kwargs["ExclusiveStartKey"] = start
            with self._translate():
                return self.table.query(**kwargs)

        return read_page(fetch, cursor=cursor, limit=limit, key_of=lambda raw: self._key_of(raw, index))

    def query_all(self, key_condition: ConditionBase, *, index: str | None = None) -> Iterator[Item]:
        request: dict[str, Any] = {"KeyConditionExpression": key_condition}
        if index:
            request["IndexName"] = index
        for resp in self.query_responses(request):
            for raw in resp.get("Items", []):
                if not is_expired(raw):
                    yield to_python(raw)

    def count(
        self,
        key_condition: ConditionBase,
        *,
        index: str | None = None,
        filter_expression: ConditionBase | None = None,
    ) -> int:
        request: dict[str, Any] = {"KeyConditionExpression": key_condition, "Select": "COUNT"}
        if index:
            request["IndexName"] = index
        if filter_expression is not None:
            request["FilterExpression"] = filter_expression
        return sum(resp["Count"] for resp in self.query_responses(request))

    def query_responses(self, request: Mapping[str, Any]) -> Iterator[Item]:
        """Every response of the query `request` (Query's arguments), following `LastEvaluatedKey`."""
        kwargs = dict(request)
        while True:
            with self._translate():
                resp = self.table.query(**kwargs)
            yield resp
            start = resp.get("LastEvaluatedKey")
            if not start:
                return
            kwargs["ExclusiveStartKey"] = start

    # -- writes ------------------------------------------------------------------------------------------
    def put_new(self, item: Item) -> Item:
        """Create once: fails with Conflict if an item with this key exists."""
        item = {**item, "version": 1}
        with self._translate(conflict=f"{self.noun} already exists"):
            self.table.put_item(Item=to_dynamo(item), ConditionExpression=Attr("pk").not_exists())
        return item

    def put_once(self, item: Item) -> Item:
        """Create an item whose key is unique by construction (a random suffix), safely retried: when the
        first try landed but its answer was lost, botocore's retry meets our own item, which is success;
        anything else under that key is a Conflict."""
        try:
            return self.put(item, condition=Attr("pk").not_exists())
        except _ConditionFailed:
            stored = self.get(item["pk"], item["sk"], consistent=True)
            if stored is not None and stored == to_python(to_dynamo(item)):
                return item
            raise Conflict(f"{self.noun} already exists") from None

    def put(self, item: Item, *, condition: ConditionBase | None = None) -> Item:
        kwargs: dict[str, Any] = {"Item": to_dynamo(item)}
        if condition is not None:
            kwargs["ConditionExpression"] = condition
        with self._translate():
            self.table.put_item(**kwargs)
        return item

    def update(
        self,
        pk: str,
        sk: str,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        condition: ConditionBase | None = None,
        remove: tuple[str, ...] = (),
        conflict_message: str | None = None,
    ) -> Item:
        """Set `changes`, bump `version`, and return the new item.

        `expected_version` gives optimistic concurrency; `condition` guards state transitions. Either
        failing raises Conflict; a missing item raises NotFound.
        """
        names: dict[str, str] = {"#version": "version"}
        values: dict[str, Any] = {":one": 1}
        sets = ["#version = if_not_exists(#version, :zero) + :one"]
        values[":zero"] = 0
        for i, (field, value) in enumerate(changes.items()):
            if value is None:
                remove = (*remove, field)
                continue
            names[f"#f{i}"] = field
            # Not `:v{i}`: boto3's condition builder names its own values `:v0, :v1, ...` and would win.
            values[f":set{i}"] = to_dynamo(value)
            sets.append(f"#f{i} = :set{i}")
        expression = "SET " + ", ".join(sets)
        if remove:
            for j, field in enumerate(remove):
                names[f"#r{j}"] = field
            expression += " REMOVE " + ", ".join(f"#r{j}" for j in range(len(remove)))
        cond: ConditionBase = Attr("pk").exists()
        if expected_version is not None:
            cond = cond & Attr("version").eq(expected_version)
        if condition is not None:
            cond = cond & condition
        try:
            with self._translate():
                resp = self.table.update_item(
                    Key={"pk": pk, "sk": sk},
                    UpdateExpression=expression,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ConditionExpression=cond,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except _ConditionFailed as failed:
            if not failed.old_item:
                raise NotFound(f"{self.noun} not found") from None
            raise Conflict(
                conflict_message or f"{self.noun} was changed concurrently",
                details={"current_version": to_python(failed.old_item.get("version"))},
            ) from None
        return to_python(resp["Attributes"])

    def delete(self, pk: str, sk: str, *, must_exist: bool = True) -> Item | None:
        kwargs: dict[str, Any] = {"Key": {"pk": pk, "sk": sk}, "ReturnValues": "ALL_OLD"}
        if must_exist:
            kwargs["ConditionExpression"] = Attr("pk").exists()
        try:
            with self._translate():
                resp = self.table.delete_item(**kwargs)
        except _ConditionFailed:
            raise NotFound(f"{self.noun} not found") from None
        old = resp.get("Attributes")
        return to_python(old) if old else None

    # -- helpers -----------------------------------------------------------------------------------------
    @staticmethod
    def _key_of(raw: Item, index: str | None) -> Item:
        keys = {"pk": raw["pk"], "sk": raw["sk"]}
        if index:
            keys[f"{index}pk"] = raw[f"{index}pk"]
            keys[f"{index}sk"] = raw[f"{index}sk"]
        return keys

    def _translate(self, conflict: str | None = None) -> _Translate:
        return _Translate(self.entity, conflict)


def _deserialize(raw: Item | None) -> Item | None:
    """ReturnValuesOnConditionCheckFailure hands back the low-level typed form ({"N": "3"})."""
    if not raw:
        return None
    return {key: _DESERIALIZER.deserialize(value) for key, value in raw.items()}


_DESERIALIZER = TypeDeserializer()


class _ConditionFailed(Exception):
    def __init__(self, old_item: Item | None) -> None:
        self.old_item = old_item


_logger = get_logger("storage")


class _Translate:
    """Turns botocore errors into domain errors, once, at the repository boundary."""

    def __init__(self, entity: str, conflict: str | None) -> None:
        self.entity = entity
        self.conflict = conflict

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                if self.conflict:
                    raise Conflict(self.conflict) from None
                raise _ConditionFailed(_deserialize(exc.response.get("Item"))) from None
            if code == "TransactionCanceledException":
                raise Conflict(f"{self.entity} changed concurrently", code="transaction_conflict") from None
            if code == "ValidationException":
                # Caused by the input (an item over 400 KB, say); DynamoDB's message names no values.
                log_event(
                    _logger, "storage_request_invalid", "warning", entity=self.entity,
                    reason=exc.response.get("Error", {}).get("Message", ""),
                )  # fmt: skip
                raise BadRequest("Invalid request for storage", code="invalid_storage_request") from exc
            raise PersistenceError() from exc
        if isinstance(exc, BotoCoreError):
            raise PersistenceError() from exc
        return False
