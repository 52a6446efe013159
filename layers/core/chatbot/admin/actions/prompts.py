"""Prompts and their versions: list, get, create, update, delete, versions, sync from the upstream."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from chatbot.admin.framework import ActionContext, Paged, actions, requires
from chatbot.models.acks import Ack, SyncResult
from chatbot.models.prompts import (
    Prompt,
    PromptCreate,
    PromptListQuery,
    PromptUpdate,
    PromptVersion,
    PromptVersionCreate,
)
from chatbot.services.optimistic import parse_if_match
from chatbot.services.prompts import PromptService

PromptId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class PromptIdParam(BaseModel):
    id: PromptId


class PromptDeleteParams(BaseModel):
    id: PromptId
    version: int | None = Field(None, ge=1, description="Delete only if the prompt is still at this version")


class PromptVersionsParams(BaseModel):
    id: PromptId
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


@actions.action(
    "list_prompts",
    "GET",
    "/admin/prompts",
    access=requires("read"),
    resource="prompt",
    params=PromptListQuery,
    response=Prompt,
    paged=True,
    errors=(400,),
)
def list_prompts(ctx: ActionContext, params: PromptListQuery, body: None) -> Paged[Prompt]:
    """List prompts, optionally by name (substring, any case); cursor pagination."""
    page = PromptService.from_settings(ctx.settings).list(params)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "get_prompt",
    "GET",
    "/admin/prompts/{id}",
    access=requires("read"),
    resource="prompt",
    params=PromptIdParam,
    response=Prompt,
)
def get_prompt(ctx: ActionContext, params: PromptIdParam, body: None) -> Prompt:
    """One prompt."""
    return PromptService.from_settings(ctx.settings).get(params.id)


@actions.action(
    "create_prompt",
    "POST",
    "/admin/prompts",
    access=requires("create"),
    resource="prompt",
    body=PromptCreate,
    response=Prompt,
    status_code=201,
    audit="prompt.create",
    errors=(409, 502),
)
def create_prompt(ctx: ActionContext, params: None, body: PromptCreate) -> Prompt:
    """Create a prompt (names are unique, 409 `prompt_name_taken`).

    With `content`, the first version (`1`) is stored too, and the prompt is created upstream where the
    upstream offers prompt objects (its id is kept as `openai_prompt_id`); otherwise it is local only.
    """
    return PromptService.from_settings(ctx.settings).create(body)


@actions.action(
    "update_prompt",
    ("PUT", "PATCH"),
    "/admin/prompts/{id}",
    access=requires("update"),
    resource="prompt",
    params=PromptIdParam,
    body=PromptUpdate,
    response=Prompt,
    audit="prompt.update",
    errors=(400, 409),
    legacy_methods=("POST",),
)
def update_prompt(ctx: ActionContext, params: PromptIdParam, body: PromptUpdate) -> Prompt:
    """Change a prompt's name, description or meta (send `version` or If-Match to detect lost updates)."""
    return PromptService.from_settings(ctx.settings).update(
        params.id, body, if_match=parse_if_match(ctx.if_match)
    )


@actions.action(
    "delete_prompt",
    "DELETE",
    "/admin/prompts/{id}",
    access=requires("delete"),
    resource="prompt",
    params=PromptDeleteParams,
    response=Ack,
    audit="prompt.delete",
    errors=(400, 409, 502),
    legacy_methods=("POST",),
)
def delete_prompt(ctx: ActionContext, params: PromptDeleteParams, body: None) -> Ack:
    """Delete a prompt with its versions (and the upstream prompt object, if there is one)."""
    expected = params.version if params.version is not None else parse_if_match(ctx.if_match)
    return PromptService.from_settings(ctx.settings).delete(params.id, if_match=expected)


@actions.action(
    "list_prompt_versions",
    "GET",
    "/admin/prompts/{id}/versions",
    access=requires("read"),
    resource="prompt",
    params=PromptVersionsParams,
    response=PromptVersion,
    paged=True,
    errors=(400,),
)
def list_prompt_versions(
    ctx: ActionContext, params: PromptVersionsParams, body: None
) -> Paged[PromptVersion]:
    """A prompt's versions, newest first."""
    from chatbot.models.prompts import PromptVersionListQuery

    page = PromptService.from_settings(ctx.settings).list_versions(
        params.id, PromptVersionListQuery(limit=params.limit, cursor=params.cursor)
    )
    return Paged(page.items, page.next_cursor)


@actions.action(
    "create_prompt_version",
    "POST",
    "/admin/prompts/{id}/versions",
    access=requires("create"),
    resource="prompt",
    params=PromptIdParam,
    body=PromptVersionCreate,
    response=PromptVersion,
    status_code=201,
    audit="prompt.create_version",
    errors=(409, 502),
)
def create_prompt_version(
    ctx: ActionContext, params: PromptIdParam, body: PromptVersionCreate
) -> PromptVersion:
    """Add a version (labels are unique per prompt, 409 `version_exists`); it becomes the latest.

    For a prompt that exists upstream, the version is created there too.
    """
    ctx.resource_id = params.id
    return PromptService.from_settings(ctx.settings).create_version(params.id, body)


@actions.action(
    "sync_prompts",
    "POST",
    "/admin/prompts/sync",
    access=requires("update"),
    resource="prompt",
    response=SyncResult,
    audit="prompt.sync",
    errors=(502,),
)
def sync_prompts(ctx: ActionContext, params: None, body: None) -> SyncResult:
    """Import the upstream's prompt objects (up to 100) and their versions not yet known here.

    `synced` is 0 with an explanation when the upstream offers no prompt objects.
    """
    return PromptService.from_settings(ctx.settings).sync()
