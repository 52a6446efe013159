"""The jobs table: job records, the worker heartbeat and DLQ redrive tasks.

Items (pk / sk):
- `JOB#<id>` / `JOB`: a job (fields of `chatbot.models.jobs.Job`) with `gsi1pk=STATUS#<status>`,
  `gsi2pk=TYPE#<type>` and `gsi1sk=gsi2sk=<created_at>#<id>`, so both indexes list newest first and a
  time range is a key condition. Finished jobs carry a `ttl` (30 days).
- `WORKER` / `HEARTBEAT`: `last_job_at`, `last_success_at` (worker health and the metrics gauge).
- `REDRIVE#<id>` / `TASK`: a DLQ redrive task, listed through `gsi1pk=REDRIVE_TASKS`.

Every status change is one conditional UpdateItem that returns the old item when its condition fails, so a
caller learns why without a second read. No business rules here: `chatbot.services.jobs` decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from chatbot.config import get_settings
from chatbot.dal.base import (
    Item,
    Repository,
    decode_cursor,
    encode_cursor,
    is_expired,
    to_dynamo,
    to_python,
)
from chatbot.errors import BadRequest
from chatbot.models.jobs import JOB_STATUSES

JOB_SK = "JOB"
HEARTBEAT_KEY = {"pk": "WORKER", "sk": "HEARTBEAT"}
REDRIVE_SK = "TASK"
REDRIVE_LIST_PK = "REDRIVE_TASKS"
# Attributes that locate an item; never part of a domain object.
KEY_ATTRIBUTES = ("pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "ttl")


def job_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": JOB_SK}


def status_pk(status: str) -> str:
    return f"STATUS#{status}"


def type_pk(job_type: str) -> str:
    return f"TYPE#{job_type}"


def sort_key(created_at: str, job_id: str) -> str:
    return f"{created_at}#{job_id}"


_deserializer = TypeDeserializer()


def _from_wire(item: Mapping[str, Any]) -> Item:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def strip_keys(item: Mapping[str, Any]) -> Item:
    return {k: v for k, v in item.items() if k not in KEY_ATTRIBUTES}


@dataclass(frozen=True)
class UpdateResult:
    """`ok` with the new item, or not `ok` with the item as it was (None when there was no item)."""

    ok: bool
    item: Item | None


@dataclass(frozen=True)
class JobPage:
    items: list[Item]
    next_cursor: str | None


class JobRepository(Repository):
    entity = "job"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().jobs_table, resource=resource)
        self._table: Any = None

    @property
    def table(self) -> Any:
        # Building a boto3 Table object costs about as much as a local emulator call; the worker's hot
        # path uses the table several times per job, so keep one.
        if self._table is None:
            self._table = super().table
        return self._table

    # -- jobs: reads -------------------------------------------------------------------------------------
    def get_job(self, job_id: str, *, consistent: bool = True) -> Item | None:
        item = self.get(**job_key(job_id), consistent=consistent)
        return strip_keys(item) if item else None

    def list_jobs(
        self,
        *,
        status: str | None = None,
        job_type: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        filter_expression: ConditionBase | None = None,
        statuses: Sequence[str] = JOB_STATUSES,
    ) -> JobPage:
        """Newest first. One index partition when filtered by status or type; otherwise the status
        partitions merged by creation time. The cursor is the sort key of the last item returned."""
        before = self._cursor_bound(cursor)
        if created_before and (before is None or created_before < before):
            before = created_before
        condition = filter_expression
        if status:
            partitions = [("gsi1", status_pk(status))]
            if job_type:
                type_filter = Attr("type").eq(job_type)
                condition = type_filter if condition is None else condition & type_filter
        elif job_type:
            partitions = [("gsi2", type_pk(job_type))]
        else:
            partitions = [("gsi1", status_pk(s)) for s in statuses]
        merged: list[Item] = []
        more = False
        for index, pk in partitions:
            items, partition_more = self._query_partition(
                index, pk, after=created_after, before=before, limit=limit, filter_expression=condition
            )
            merged.extend(items)
            more = more or partition_more
        merged.sort(key=lambda item: item["gsi1sk"], reverse=True)
        if len(merged) > limit:
            more = True
        page = merged[:limit]
        next_cursor = encode_cursor({"before": page[-1]["gsi1sk"]}) if more and page else None
        return JobPage(items=[strip_keys(item) for item in page], next_cursor=next_cursor)

    def count_status(self, status: str, *, job_type: str | None = None) -> int:
        if job_type is None:
            return self.count(Key("gsi1pk").eq(status_pk(status)), index="gsi1")
        return self.count(
            Key("gsi2pk").eq(type_pk(job_type)), index="gsi2", filter_expression=Attr("status").eq(status)
        )

    # -- jobs: writes ------------------------------------------------------------------------------------
    def create_job(self, job: Mapping[str, Any]) -> Item:
        """Insert a new job; Conflict when a job with this id exists (deterministic ids rely on that)."""
        return strip_keys(self.put_new(self._indexed(job)))

    @staticmethod
    def _indexed(job: Mapping[str, Any]) -> Item:
        return {
            **job,
            **job_key(job["id"]),
            "gsi1pk": status_pk(job["status"]),
            "gsi1sk": sort_key(job["created_at"], job["id"]),
            "gsi2pk": type_pk(job["type"]),
            "gsi2sk": sort_key(job["created_at"], job["id"]),
        }

    def create_jobs(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        """Insert many new jobs (BatchWriteItem: unconditional, so only for freshly generated ids)."""
        with self._translate(), self.table.batch_writer() as batch:
            for job in jobs:
                batch.put_item(Item=to_dynamo({**self._indexed(job), "version": 1}))

    def delete_jobs(self, job_ids: Sequence[str]) -> None:
        with self._translate(), self.table.batch_writer() as batch:
            for job_id in job_ids:
                batch.delete_item(Key=job_key(job_id))

    def delete_job(self, job_id: str) -> None:
        self.delete(**job_key(job_id), must_exist=False)

    def transition(
        self,
        job_id: str,
        *,
        condition: ConditionBase,
        sets: Mapping[str, Any] | None = None,
        adds: Mapping[str, int] | None = None,
        removes: Iterable[str] = (),
        returns: str = "ALL_NEW",
    ) -> UpdateResult:
        """One conditional update of a job. A new `status` also moves the job's gsi1 partition.

        `returns="NONE"` does not send the item back when the caller does not need it (on success `item` is
        then None; when the condition fails it is still the old item)."""
        sets = dict(sets or {})
        if "status" in sets:
            sets["gsi1pk"] = status_pk(sets["status"])
        # Every transition's condition tests an attribute of the job, so it also fails on a missing item.
        return self.update_raw(
            job_key(job_id),
            condition=condition,
            sets=sets,
            adds=adds,
            removes=removes,
            returns=returns,
        )

    def add_counter(self, job_id: str, field: str, amount: int = 1, *, once_for: str | None = None) -> int:
        """Atomically add to a counter on an existing job and return the new value. With `once_for` (a claim
        id) the add counts once for it, even when botocore retries a request whose answer was lost."""
        condition = Attr("pk").exists()
        sets = None
        if once_for is not None:
            condition &= Attr(f"{field}_for").ne(once_for)
            sets = {f"{field}_for": once_for}
        result = self.update_raw(
            job_key(job_id),
            condition=condition,
            sets=sets,
            adds={field: amount},
            bump_version=False,
            returns="UPDATED_NEW",
        )
        return int((result.item or {}).get(field, 0))

    # -- heartbeat -----------------------------------------------------------------------------------------
    def touch_heartbeat(self, *, at: str, success: bool) -> None:
        sets: dict[str, Any] = {"last_job_at": at}
        if success:
            sets["last_success_at"] = at
        self.update_raw(HEARTBEAT_KEY, condition=None, sets=sets, bump_version=False, returns="NONE")

    def get_heartbeat(self) -> Item | None:
        item = self.get(**HEARTBEAT_KEY)
        return strip_keys(item) if item else None

    # -- redrive tasks -------------------------------------------------------------------------------------
    def create_redrive_task(self, task: Mapping[str, Any], *, ttl: int) -> Item:
        item = {
            **task,
            "pk": f"REDRIVE#{task['id']}",
            "sk": REDRIVE_SK,
            "gsi1pk": REDRIVE_LIST_PK,
            "gsi1sk": sort_key(task["created_at"], task["id"]),
            "ttl": ttl,
        }
        return strip_keys(self.put_new(item))

    def update_redrive_task(self, task_id: str, changes: Mapping[str, Any]) -> Item:
        result = self.update_raw(
            {"pk": f"REDRIVE#{task_id}", "sk": REDRIVE_SK}, condition=Attr("pk").exists(), sets=changes
        )
        return strip_keys(result.item or {})

    def list_redrive_tasks(self, *, limit: int = 20) -> list[Item]:
        page = self.query_page(
            Key("gsi1pk").eq(REDRIVE_LIST_PK), index="gsi1", limit=limit, newest_first=True
        )
        return [strip_keys(item) for item in page.items]

    # -- helpers -------------------------------------------------------------------------------------------
    def update_raw(
        self,
        key: Mapping[str, str],
        *,
        condition: ConditionBase | None,
        sets: Mapping[str, Any] | None = None,
        adds: Mapping[str, int] | None = None,
        removes: Iterable[str] = (),
        bump_version: bool = True,
        returns: str = "ALL_NEW",
    ) -> UpdateResult:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        set_parts: list[str] = []
        add_parts: list[str] = []
        remove_parts: list[str] = []
        for i, (field, value) in enumerate((sets or {}).items()):
            names[f"#s{i}"] = field
            values[f":s{i}"] = to_dynamo(value)
            set_parts.append(f"#s{i} = :s{i}")
        adds = dict(adds or {})
        if bump_version:
            adds["version"] = adds.get("version", 0) + 1
        for i, (field, amount) in enumerate(adds.items()):
            names[f"#a{i}"] = field
            values[f":a{i}"] = amount
            add_parts.append(f"#a{i} :a{i}")
        for i, field in enumerate(removes):
            names[f"#r{i}"] = field
            remove_parts.append(f"#r{i}")
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(set_parts) if set_parts else "",
                "ADD " + ", ".join(add_parts) if add_parts else "",
                "REMOVE " + ", ".join(remove_parts) if remove_parts else "",
            )
            if part
        )
        kwargs: dict[str, Any] = {
            "Key": dict(key),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ReturnValues": returns,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if condition is not None:
            kwargs["ConditionExpression"] = condition
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        with self._translate():
            try:
                resp = self.table.update_item(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    # Error responses are not deserialised by the resource layer: the item is wire-typed.
                    old = exc.response.get("Item")
                    return UpdateResult(
                        ok=False, item=strip_keys(to_python(_from_wire(old))) if old else None
                    )
                raise
        attributes = resp.get("Attributes")
        return UpdateResult(ok=True, item=to_python(attributes) if attributes is not None else None)

    def _query_partition(
        self,
        index: str,
        pk: str,
        *,
        after: str | None,
        before: str | None,
        limit: int,
        filter_expression: ConditionBase | None,
    ) -> tuple[list[Item], bool]:
        """Up to `limit` items of one partition with `after <= sk < before`, and whether more exist."""
        sk = Key(f"{index}sk")
        key = Key(f"{index}pk").eq(pk)
        if after and before:
            key = key & sk.between(after, before)
        elif before:
            key = key & sk.lt(before)
        elif after:
            key = key & sk.gte(after)
        request: dict[str, Any] = {
            "IndexName": index,
            "KeyConditionExpression": key,
            "ScanIndexForward": False,
            "Limit": limit + 1 if filter_expression is None else max(limit + 1, 50),
        }
        if filter_expression is not None:
            request["FilterExpression"] = filter_expression
        items: list[Item] = []
        for resp in self.query_responses(request):
            for raw in resp.get("Items", []):
                # `between` includes its upper end; the cursor's own item was already returned.
                if is_expired(raw) or (before is not None and raw[f"{index}sk"] >= before):
                    continue
                item = to_python(raw)
                item.setdefault("gsi1sk", raw[f"{index}sk"])
                items.append(item)
                if len(items) > limit:
                    return items[:limit], True
        return items, False

    @staticmethod
    def _cursor_bound(cursor: str | None) -> str | None:
        key = decode_cursor(cursor)
        if key is None:
            return None
        before = key.get("before")
        if not isinstance(before, str) or not before:
            raise BadRequest("Invalid pagination cursor", code="invalid_cursor")
        return before
