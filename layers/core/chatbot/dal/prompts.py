"""The prompts table: prompts, their versions, and the guards that keep names and labels unique.

Items (pk / sk):
- `PROMPT#<id>` / `PROMPT`: the prompt (`chatbot.models.prompts.Prompt` + `name_lower`); `version_count`
  is the sequence number of its newest version.
- `PROMPT#<id>` / `VERSION#<0000000042>`: version 42 (zero-padded, so a reverse query lists newest first).
- `PROMPT#<id>` / `VLABEL#<label>`: `sequence` of the version with that label (labels are unique per prompt).
- `PROMPTNAME#<casefolded name>` / `PROMPTNAME`: `prompt_id` (names are unique, as in the original).
- `OPENAIPROMPT#<upstream id>` / `PROMPT`: `prompt_id` of the local copy (sync never imports one twice).
"""

from __future__ import annotations

import random
import time
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from chatbot.config import get_settings
from chatbot.dal.base import Item, Page, Repository, to_dynamo
from chatbot.dal.transact import TransactionFailed, scan_page, transact, update_op
from chatbot.errors import Conflict, NotFound

PROMPT_SK = "PROMPT"
_MAX_ATTEMPTS = 20


def prompt_key(prompt_id: str) -> dict[str, str]:
    return {"pk": f"PROMPT#{prompt_id}", "sk": PROMPT_SK}


def version_key(prompt_id: str, sequence: int) -> dict[str, str]:
    return {"pk": f"PROMPT#{prompt_id}", "sk": f"VERSION#{sequence:010d}"}


def label_key(prompt_id: str, label: str) -> dict[str, str]:
    return {"pk": f"PROMPT#{prompt_id}", "sk": f"VLABEL#{label}"}


def name_key(name: str) -> dict[str, str]:
    return {"pk": f"PROMPTNAME#{name.strip().casefold()}", "sk": "PROMPTNAME"}


def remote_key(openai_prompt_id: str) -> dict[str, str]:
    return {"pk": f"OPENAIPROMPT#{openai_prompt_id}", "sk": PROMPT_SK}


def _not_found() -> NotFound:
    return NotFound("Prompt not found", code="prompt_not_found")


def _name_taken(name: str) -> Conflict:
    return Conflict(f"A prompt named '{name}' already exists", code="prompt_name_taken")


def _stale(current_version: Any) -> Conflict:
    return Conflict(
        "Prompt was changed by someone else; reload it and try again",
        details={"current_version": current_version},
    )


def _public(item: Item) -> Item:
    return {k: v for k, v in item.items() if k not in ("pk", "sk", "name_lower")}


class PromptRepository(Repository):
    entity = "prompt"

    def __init__(self, table_name: str | None = None, *, resource: Any = None) -> None:
        super().__init__(table_name or get_settings().prompts_table, resource=resource)

    # -- prompts -------------------------------------------------------------------------------------------
    def get_prompt(self, prompt_id: str, *, consistent: bool = False) -> Item | None:
        item = self.get(**prompt_key(prompt_id), consistent=consistent)
        return _public(item) if item else None

    def require_prompt(self, prompt_id: str, *, consistent: bool = False) -> Item:
        item = self.get_prompt(prompt_id, consistent=consistent)
        if item is None:
            raise _not_found()
        return item

    def find_by_remote_id(self, openai_prompt_id: str) -> Item | None:
        guard = self.get(**remote_key(openai_prompt_id), consistent=True)
        return self.get_prompt(guard["prompt_id"], consistent=True) if guard else None

    def find_by_name(self, name: str) -> Item | None:
        guard = self.get(**name_key(name), consistent=True)
        return self.get_prompt(guard["prompt_id"], consistent=True) if guard else None

    def list_prompts(self, *, name: str | None = None, limit: int = 50, cursor: str | None = None) -> Page:
        condition = Attr("sk").eq(PROMPT_SK) & Attr("pk").begins_with("PROMPT#")
        if name:
            condition = condition & Attr("name_lower").contains(name.strip().casefold())
        page = scan_page(self, condition, limit=limit, cursor=cursor)
        return Page(items=[_public(i) for i in page.items], next_cursor=page.next_cursor)

    def count_prompts(self) -> int:
        total, cursor = 0, None
        while True:
            page = self.list_prompts(limit=200, cursor=cursor)
            total += len(page.items)
            if not page.next_cursor:
                return total
            cursor = page.next_cursor

    def create_prompt(self, item: Item, *, first_version: Item | None = None) -> Item:
        """Insert a prompt with its name guard (and remote-id guard, and first version) in one transaction."""
        prompt = {**item, "name_lower": item["name"].casefold(), "version": 1, "version_count": 0}
        ops: list[dict[str, Any]] = [
            {
                "Put": {
                    "Item": to_dynamo({**prompt, **prompt_key(item["id"])}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
            {
                "Put": {
                    "Item": {**name_key(item["name"]), "prompt_id": item["id"]},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
        if item.get("openai_prompt_id"):
            ops.append(
                {
                    "Put": {
                        "Item": {**remote_key(item["openai_prompt_id"]), "prompt_id": item["id"]},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        if first_version is not None:
            prompt["version_count"] = 1
            prompt["latest_version"] = first_version["version"]
            ops[0]["Put"]["Item"] = to_dynamo({**prompt, **prompt_key(item["id"])})
            ops.extend(self._version_puts(item["id"], first_version, 1))
        try:
            transact(self, ops)
        except TransactionFailed as failed:
            if failed.failed(1):
                raise _name_taken(item["name"]) from None
            if item.get("openai_prompt_id") and failed.failed(2):
                raise Conflict(
                    "This upstream prompt is already imported", code="prompt_already_imported"
                ) from None
            raise Conflict("Prompt could not be created, try again", code="prompt_conflict") from None
        return _public(prompt)

    def update_prompt(
        self, current: Item, changes: dict[str, Any], *, now: str, expected_version: int | None = None
    ) -> Item:
        prompt_id = current["id"]
        changes = {**changes, "updated_at": now}
        if "name" in changes:
            changes["name_lower"] = changes["name"].casefold()
        renamed = "name" in changes and changes["name"].casefold() != current["name"].casefold()
        ops = [update_op(prompt_key(prompt_id), changes, expected_version=expected_version)]
        if renamed:
            ops += [
                {
                    "Delete": {
                        "Key": name_key(current["name"]),
                        "ConditionExpression": "attribute_not_exists(pk) OR prompt_id = :id",
                        "ExpressionAttributeValues": {":id": prompt_id},
                    }
                },
                {
                    "Put": {
                        "Item": {**name_key(changes["name"]), "prompt_id": prompt_id},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        try:
            transact(self, ops)
        except TransactionFailed as failed:
            if renamed and failed.failed(2):
                raise _name_taken(changes["name"]) from None
            latest = self.get_prompt(prompt_id, consistent=True)
            if latest is None:
                raise _not_found() from None
            raise _stale(latest["version"]) from None
        return self.require_prompt(prompt_id, consistent=True)

    def delete_prompt(self, prompt_id: str, *, expected_version: int | None = None) -> Item:
        """Delete the prompt and its guards atomically, then its versions (unreachable from then on)."""
        current = self.require_prompt(prompt_id, consistent=True)
        if expected_version is not None and current["version"] != expected_version:
            raise _stale(current["version"])
        ops: list[dict[str, Any]] = [
            {
                "Delete": {
                    "Key": prompt_key(prompt_id),
                    "ConditionExpression": "#version = :version",
                    "ExpressionAttributeNames": {"#version": "version"},
                    "ExpressionAttributeValues": {":version": current["version"]},
                }
            },
            {
                "Delete": {
                    "Key": name_key(current["name"]),
                    "ConditionExpression": "attribute_not_exists(pk) OR prompt_id = :id",
                    "ExpressionAttributeValues": {":id": prompt_id},
                }
            },
        ]
        if current.get("openai_prompt_id"):
            ops.append({"Delete": {"Key": remote_key(current["openai_prompt_id"])}})
        try:
            transact(self, ops)
        except TransactionFailed:
            if self.get_prompt(prompt_id, consistent=True) is None:
                raise _not_found() from None
            raise Conflict("Prompt changed while being deleted, try again", code="prompt_conflict") from None
        with self.table.batch_writer() as batch:
            for item in self.query_all(Key("pk").eq(f"PROMPT#{prompt_id}")):
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
        return current

    # -- versions ------------------------------------------------------------------------------------------
    def add_version(self, prompt_id: str, version: Item, *, now: str) -> Item:
        """Append a version (next sequence number) and make it the prompt's latest, atomically.

        The prompt's `version_count` is the sequence; the write is conditioned on the value read, so
        concurrent additions each get their own number. A label already used by this prompt is a 409.
        """
        for attempt in range(_MAX_ATTEMPTS):
            prompt = self.require_prompt(prompt_id, consistent=True)
            count = int(prompt.get("version_count", 0))
            sequence = count + 1
            ops = [
                update_op(
                    prompt_key(prompt_id),
                    {"version_count": sequence, "latest_version": version["version"], "updated_at": now},
                    condition="attribute_exists(pk) AND version_count = :count",
                    values={":count": count},
                ),
                *self._version_puts(prompt_id, version, sequence),
            ]
            try:
                transact(self, ops)
            except TransactionFailed as failed:
                if failed.failed(2):
                    raise Conflict(
                        f"Version '{version['version']}' already exists for this prompt",
                        code="version_exists",
                    ) from None
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
                continue
            return {**version, "prompt_id": prompt_id, "sequence": sequence}
        raise Conflict("Prompt versions are being added concurrently, try again", code="prompt_conflict")

    def list_versions(self, prompt_id: str, *, limit: int = 50, cursor: str | None = None) -> Page:
        page = self.query_page(
            Key("pk").eq(f"PROMPT#{prompt_id}") & Key("sk").begins_with("VERSION#"),
            limit=limit,
            cursor=cursor,
            newest_first=True,
        )
        return Page(items=[_public(i) for i in page.items], next_cursor=page.next_cursor)

    def version_labels(self, prompt_id: str) -> set[str]:
        items = self.query_all(Key("pk").eq(f"PROMPT#{prompt_id}") & Key("sk").begins_with("VLABEL#"))
        return {item["sk"].split("#", 1)[1] for item in items}

    @staticmethod
    def _version_puts(prompt_id: str, version: Item, sequence: int) -> list[dict[str, Any]]:
        item = {**version, "prompt_id": prompt_id, "sequence": sequence, **version_key(prompt_id, sequence)}
        return [
            {"Put": {"Item": to_dynamo(item), "ConditionExpression": "attribute_not_exists(pk)"}},
            {
                "Put": {
                    "Item": {**label_key(prompt_id, version["version"]), "sequence": sequence},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            },
        ]
