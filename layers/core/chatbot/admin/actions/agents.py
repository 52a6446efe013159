"""Agents: list, get, create, update, delete, make default, test."""

from __future__ import annotations

from typing import Annotated

import anyio.from_thread
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import StreamingResponse

from chatbot.admin.framework import ActionContext, Paged, actions, requires
from chatbot.models.acks import Ack
from chatbot.models.agents import Agent, AgentCreate, AgentListQuery, AgentTest, AgentUpdate
from chatbot.services import sse
from chatbot.services.agent_test import AgentTester
from chatbot.services.agents import AgentService, DefaultAgentSet
from chatbot.services.optimistic import parse_if_match

AgentId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]


class AgentIdParam(BaseModel):
    id: AgentId


class AgentDeleteParams(BaseModel):
    id: AgentId
    version: int | None = Field(None, ge=1, description="Delete only if the agent is still at this version")


@actions.action(
    "list_agents",
    "GET",
    "/admin/agents",
    access=requires("read"),
    resource="agent",
    params=AgentListQuery,
    response=Agent,
    paged=True,
    errors=(400,),
)
def list_agents(ctx: ActionContext, params: AgentListQuery, body: None) -> Paged[Agent]:
    """List agents, optionally by name (substring, any case) and api_type; cursor pagination."""
    page = AgentService.from_settings(ctx.settings).list(params)
    return Paged(page.items, page.next_cursor)


@actions.action(
    "get_agent",
    "GET",
    "/admin/agents/{id}",
    access=requires("read"),
    resource="agent",
    params=AgentIdParam,
    response=Agent,
)
def get_agent(ctx: ActionContext, params: AgentIdParam, body: None) -> Agent:
    """One agent."""
    return AgentService.from_settings(ctx.settings).get(params.id)


@actions.action(
    "create_agent",
    "POST",
    "/admin/agents",
    access=requires("create"),
    resource="agent",
    body=AgentCreate,
    response=Agent,
    status_code=201,
    audit="agent.create",
    errors=(409,),
)
def create_agent(ctx: ActionContext, params: None, body: AgentCreate) -> Agent:
    """Create an agent.

    Names are unique regardless of case (409 `agent_name_taken`). Tools are normalised as the chat does
    (unsupported or invalid ones are dropped). `is_default: true` makes it the one default agent.
    """
    return AgentService.from_settings(ctx.settings).create(body)


@actions.action(
    "update_agent",
    ("PUT", "PATCH"),
    "/admin/agents/{id}",
    access=requires("update"),
    resource="agent",
    params=AgentIdParam,
    body=AgentUpdate,
    response=Agent,
    audit="agent.update",
    errors=(400, 409),
    legacy_methods=("POST",),
)
def update_agent(ctx: ActionContext, params: AgentIdParam, body: AgentUpdate) -> Agent:
    """Change the fields sent (null clears an optional field).

    Send the `version` you read (in the body or as `If-Match`) to be refused with 409 when someone changed
    the agent in between.
    """
    return AgentService.from_settings(ctx.settings).update(
        params.id, body, if_match=parse_if_match(ctx.if_match)
    )


@actions.action(
    "delete_agent",
    "DELETE",
    "/admin/agents/{id}",
    access=requires("delete"),
    resource="agent",
    params=AgentDeleteParams,
    response=Ack,
    audit="agent.delete",
    errors=(400, 409),
    legacy_methods=("POST",),
)
def delete_agent(ctx: ActionContext, params: AgentDeleteParams, body: None) -> Ack:
    """Delete an agent (if it was the default, there is no default agent afterwards)."""
    expected = params.version if params.version is not None else parse_if_match(ctx.if_match)
    return AgentService.from_settings(ctx.settings).delete(params.id, if_match=expected)


@actions.action(
    "make_default",
    "POST",
    "/admin/agents/{id}/default",
    access=requires("update"),
    resource="agent",
    params=AgentIdParam,
    response=DefaultAgentSet,
    audit="agent.make_default",
    errors=(409,),
)
def make_default(ctx: ActionContext, params: AgentIdParam, body: None) -> DefaultAgentSet:
    """Make this agent the default (the previous default stops being one, in the same transaction)."""
    return AgentService.from_settings(ctx.settings).make_default(params.id)


@actions.action(
    "test_agent",
    "POST",
    "/admin/agents/{id}/test",
    access=requires("update"),
    resource="agent",
    params=AgentIdParam,
    body=AgentTest,
    audit="agent.test",
    errors=(400,),
    media_type="text/event-stream",
)
def test_agent(ctx: ActionContext, params: AgentIdParam, body: AgentTest) -> StreamingResponse:
    """Send one message to the agent and stream the reply as the chat endpoint does (text/event-stream).

    First frame: `event: message` `{"type":"start","agent_id","agent_name"}`; then the chat's frames
    (`start`, `message` chunks, `done` or `{"type":"error"}`, `close`). Needs `update`, because it spends
    upstream tokens on the agent's account.
    """
    frames = anyio.from_thread.run(
        lambda: AgentTester().open(params.id, body.message, source_ip=ctx.source_ip)
    )
    return StreamingResponse(frames, media_type=sse.CONTENT_TYPE, headers=sse.HEADERS)
