"""Prompts and their versions.

A prompt lives in DynamoDB either way. Where the upstream offers prompt objects, a prompt created with
`content` (and each version of such a prompt) is created there first and keeps the upstream's id; where it
does not (OpenAI's public API has no prompt endpoints today, nor has the fake), the prompt is local only.
An upstream that does offer them but fails is an error (502), never a silent local-only copy, so the two
sides do not drift apart unnoticed. `sync` imports the upstream's prompts (up to 100) and their versions.
"""

from __future__ import annotations

import uuid
from typing import Any

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal.base import Item
from chatbot.dal.prompts import PromptRepository
from chatbot.errors import Conflict
from chatbot.models.acks import Ack, SyncResult
from chatbot.models.prompts import (
    Prompt,
    PromptCreate,
    PromptList,
    PromptListQuery,
    PromptUpdate,
    PromptVersion,
    PromptVersionCreate,
    PromptVersionList,
    PromptVersionListQuery,
)
from chatbot.observability import get_logger
from chatbot.services.optimistic import check_version, expected_version
from chatbot.upstream.openai_admin import OpenAIAdmin, RemotePrompt, RemotePromptVersion

logger = get_logger("admin")
SYNC_LIMIT = 100


class PromptService:
    def __init__(self, repo: PromptRepository | None = None, upstream: OpenAIAdmin | None = None) -> None:
        self._repo = repo
        self.upstream = upstream or OpenAIAdmin()

    @classmethod
    def from_settings(cls, settings: Settings) -> PromptService:
        return cls(PromptRepository(settings.prompts_table))

    @property
    def repo(self) -> PromptRepository:
        if self._repo is None:
            self._repo = PromptRepository()
        return self._repo

    # -- prompts -------------------------------------------------------------------------------------------
    def list(self, query: PromptListQuery | None = None) -> PromptList:
        query = query or PromptListQuery()
        page = self.repo.list_prompts(name=query.name, limit=query.limit, cursor=query.cursor)
        return PromptList(items=[Prompt.model_validate(i) for i in page.items], next_cursor=page.next_cursor)

    def get(self, prompt_id: str) -> Prompt:
        return Prompt.model_validate(self.repo.require_prompt(prompt_id))

    def create(self, data: PromptCreate) -> Prompt:
        if self.repo.find_by_name(data.name) is not None:
            # Checked before the upstream call so a duplicate leaves no orphan upstream; the guard item
            # still decides races.
            raise Conflict(f"A prompt named '{data.name}' already exists", code="prompt_name_taken")
        remote = None
        if data.content is not None:
            remote = self.upstream.create_prompt(
                data.name, content=data.content, description=data.description
            )
        now = clock.iso()
        item: Item = {
            "id": str(uuid.uuid4()),
            "name": data.name,
            "description": data.description,
            "meta": data.meta or {},
            "openai_prompt_id": remote.id if remote else None,
            "created_at": now,
            "updated_at": now,
        }
        first_version = None
        if data.content is not None:
            first_version = _version_item(
                label=(remote.version if remote and remote.version else "1"),
                content=data.content,
                summary="Initial version",
                openai_version_id=remote.version_id if remote else None,
                now=now,
            )
        try:
            stored = self.repo.create_prompt(_without_none(item), first_version=first_version)
        except Conflict:
            if remote is not None:
                self.upstream.delete_prompt(remote.id)
            raise
        return Prompt.model_validate(stored)

    def update(self, prompt_id: str, data: PromptUpdate, *, if_match: int | None = None) -> Prompt:
        expected = expected_version(data.version, if_match)
        changes = data.changes()
        if "meta" in changes and changes["meta"] is None:
            changes["meta"] = {}
        current = self.repo.require_prompt(prompt_id, consistent=True)
        check_version("Prompt", current["version"], expected)
        if not changes:
            return Prompt.model_validate(current)
        item = self.repo.update_prompt(current, changes, now=clock.iso(), expected_version=expected)
        return Prompt.model_validate(item)

    def delete(self, prompt_id: str, *, if_match: int | None = None) -> Ack:
        current = self.repo.require_prompt(prompt_id, consistent=True)
        if current.get("openai_prompt_id"):
            self.upstream.delete_prompt(current["openai_prompt_id"])
        self.repo.delete_prompt(prompt_id, expected_version=if_match)
        return Ack(message="Prompt deleted")

    # -- versions ------------------------------------------------------------------------------------------
    def list_versions(self, prompt_id: str, query: PromptVersionListQuery | None = None) -> PromptVersionList:
        query = query or PromptVersionListQuery()
        self.repo.require_prompt(prompt_id)
        page = self.repo.list_versions(prompt_id, limit=query.limit, cursor=query.cursor)
        return PromptVersionList(
            items=[PromptVersion.model_validate(i) for i in page.items], next_cursor=page.next_cursor
        )

    def create_version(self, prompt_id: str, data: PromptVersionCreate) -> PromptVersion:
        prompt = self.repo.require_prompt(prompt_id, consistent=True)
        if data.version in self.repo.version_labels(prompt_id):
            raise Conflict(f"Version '{data.version}' already exists for this prompt", code="version_exists")
        remote = None
        if prompt.get("openai_prompt_id"):
            remote = self.upstream.create_prompt_version(
                prompt["openai_prompt_id"], version=data.version, content=data.content
            )
        now = clock.iso()
        version = _version_item(
            label=data.version,
            content=data.content,
            summary=data.summary,
            openai_version_id=remote.id if remote else None,
            now=now,
        )
        stored = self.repo.add_version(prompt_id, version, now=now)
        return PromptVersion.model_validate(stored)

    # -- sync ----------------------------------------------------------------------------------------------
    def sync(self) -> SyncResult:
        """Import the upstream's prompts (first 100) and any versions not yet known locally."""
        remotes = self.upstream.list_prompts(limit=SYNC_LIMIT)
        if remotes is None:
            return SyncResult(synced=0, message="The upstream does not offer prompt objects; nothing to sync")
        synced = 0
        for remote in remotes:
            local = self.repo.find_by_remote_id(remote.id)
            created = False
            if local is None:
                local = self._import(remote)
                created = local is not None
            if local is None:
                continue
            added = self._sync_versions(local["id"], remote)
            synced += 1 if created or added else 0
        return SyncResult(synced=synced, message=f"Synced {synced} prompt(s) from the upstream")

    def _import(self, remote: RemotePrompt) -> Item | None:
        now = clock.iso()
        base = (remote.name or remote.id).strip()[:200] or remote.id
        for name in (base, f"{base} ({remote.id})"[:255]):
            item = {
                "id": str(uuid.uuid4()),
                "name": name,
                "description": remote.description,
                "meta": {"imported_from": "upstream"},
                "openai_prompt_id": remote.id,
                "created_at": now,
                "updated_at": now,
            }
            try:
                return self.repo.create_prompt(_without_none(item))
            except Conflict as exc:
                if exc.code == "prompt_already_imported":
                    return self.repo.find_by_remote_id(remote.id)
                continue
        logger.warning("prompt not imported: name taken", extra={"openai_prompt_id": remote.id})
        return None

    def _sync_versions(self, prompt_id: str, remote: RemotePrompt) -> int:
        versions = self.upstream.list_prompt_versions(remote.id, limit=SYNC_LIMIT)
        if versions is None:
            versions = []
        if not versions and remote.version:
            versions = [
                RemotePromptVersion(id=remote.version_id, version=remote.version, content=remote.content)
            ]
        known = self.repo.version_labels(prompt_id)
        added = 0
        # Oldest first, so sequence numbers follow the upstream's order.
        for version in sorted(versions, key=lambda v: _sort_key(v.version)):
            if version.version in known:
                continue
            now = clock.iso()
            item = _version_item(
                label=version.version,
                content=version.content,
                summary="Imported from the upstream",
                openai_version_id=version.id,
                now=now,
            )
            try:
                self.repo.add_version(prompt_id, item, now=now)
            except Conflict:
                continue
            known.add(version.version)
            added += 1
        return added


def _version_item(
    *, label: str, content: str | None, summary: str | None, openai_version_id: str | None, now: str
) -> Item:
    return _without_none(
        {
            "id": str(uuid.uuid4()),
            "version": label,
            "content": content,
            "summary": summary,
            "openai_version_id": openai_version_id,
            "created_at": now,
        }
    )


def _without_none(item: dict[str, Any]) -> Item:
    return {k: v for k, v in item.items() if v is not None}


def _sort_key(label: str) -> tuple[int, int | str]:
    return (0, int(label)) if label.isdigit() else (1, label)
