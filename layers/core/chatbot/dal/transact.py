"""TransactWriteItems with per-item cancellation reasons, and filtered scans with opaque cursors.

`Repository._translate` turns a cancelled transaction into one generic Conflict; repositories that need to
know *which* condition failed (a name guard, the default-agent marker, a stale version) use `transact`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boto3.dynamodb.conditions import ConditionBase
from botocore.exceptions import BotoCoreError, ClientError

from chatbot.dal.base import Item, Page, Repository, read_page, to_dynamo
from chatbot.errors import BadRequest, PersistenceError

CONDITION_FAILED = "ConditionalCheckFailed"
# Another transaction touched the same item at the same time (DynamoDB's optimistic transactions).
TRANSACTION_CONFLICT = "TransactionConflict"


class TransactionFailed(Exception):
    """A cancelled transaction; `reasons[i]` is the cancellation code of `items[i]` ('None': it was fine)."""

    def __init__(self, reasons: Sequence[str]) -> None:
        super().__init__(", ".join(reasons))
        self.reasons = list(reasons)

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == CONDITION_FAILED

    @property
    def contended(self) -> bool:
        return TRANSACTION_CONFLICT in self.reasons


def transact(repo: Repository, items: Sequence[dict[str, Any]]) -> None:
    """Run `items` (high-level `Put`/`Update`/`Delete`/`ConditionCheck` dicts, table name filled in)."""
    ops = []
    for op in items:
        ((kind, body),) = op.items()
        ops.append({kind: {"TableName": repo.table_name, **body}})
    try:
        repo.client.transact_write_items(TransactItems=ops)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "TransactionCanceledException":
            reasons = [r.get("Code") or "None" for r in exc.response.get("CancellationReasons", [])]
            raise TransactionFailed(reasons or [TRANSACTION_CONFLICT]) from None
        if code in ("TransactionConflictException", "TransactionInProgressException"):
            raise TransactionFailed([TRANSACTION_CONFLICT] * len(ops)) from None
        if code == "ValidationException":
            raise BadRequest("Invalid request for storage", code="invalid_storage_request") from exc
        raise PersistenceError() from exc
    except BotoCoreError as exc:
        raise PersistenceError() from exc


def scan_page(
    repo: Repository, filter_expression: ConditionBase, *, limit: int = 50, cursor: str | None = None
) -> Page:
    """One page of a filtered scan, reading on until `limit` matches or the end of the table.

    For small tables of configuration (agents, prompts, vector stores) whose listings need no order an
    index would give; the cursor is the key of the last item returned.
    """

    def fetch(start: Item | None, _collected: int) -> Item:
        kwargs: dict[str, Any] = {"FilterExpression": filter_expression, "Limit": max(limit, 50)}
        if start:
            kwargs["ExclusiveStartKey"] = start
        try:
            return repo.table.scan(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise BadRequest("Invalid pagination cursor", code="invalid_cursor") from exc
            raise PersistenceError() from exc
        except BotoCoreError as exc:
            raise PersistenceError() from exc

    return read_page(fetch, cursor=cursor, limit=limit, key_of=lambda raw: {"pk": raw["pk"], "sk": raw["sk"]})


def update_op(
    key: dict[str, str],
    changes: dict[str, Any],
    *,
    expected_version: int | None = None,
    condition: str = "attribute_exists(pk)",
    values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A transaction `Update` that sets `changes` (None removes a field) and bumps `version`.

    `expected_version` adds `version = :expected` to `condition` (optimistic concurrency).
    """
    names = {"#version": "version"}
    all_values: dict[str, Any] = {":one": 1, ":zero": 0, **(values or {})}
    sets = ["#version = if_not_exists(#version, :zero) + :one"]
    removes = []
    for i, (field, value) in enumerate(changes.items()):
        names[f"#u{i}"] = field
        if value is None:
            removes.append(f"#u{i}")
        else:
            all_values[f":u{i}"] = to_dynamo(value)
            sets.append(f"#u{i} = :u{i}")
    if expected_version is not None:
        condition = f"({condition}) AND #version = :expected"
        all_values[":expected"] = expected_version
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    return {
        "Update": {
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": all_values,
        }
    }
