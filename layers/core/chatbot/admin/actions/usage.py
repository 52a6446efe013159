"""Token usage per agent, API key and day, and the daily token quotas (issue 4: chat usage accounting)."""

from __future__ import annotations

from pydantic import BaseModel

from chatbot.admin.framework import ActionContext, actions, requires
from chatbot.models.chat import Quota, QuotaSet, UsageQuery, UsageReport
from chatbot.services.usage import UsageService


class QuotaList(BaseModel):
    items: list[Quota]


class QuotaResult(BaseModel):
    # None once a quota is removed (`daily_tokens: null`).
    quota: Quota | None


@actions.action(
    "usage",
    "GET",
    "/admin/usage",
    access=requires("read"),
    resource="system",
    params=UsageQuery,
    response=UsageReport,
    errors=(400,),
)
def usage(ctx: ActionContext, params: UsageQuery, body: None) -> UsageReport:
    """Requests, errors and input/output tokens per (day, agent, API key), with totals.

    `day_from` / `day_to` (YYYY-MM-DD, UTC; default today; at most 92 days), optionally one `agent_id` or
    `key_id`. Widget requests count under the key `_public`, requests without an agent under `_default`.
    """
    return UsageService(settings=ctx.settings).report(params)


@actions.action(
    "list_quotas",
    "GET",
    "/admin/quotas",
    access=requires("read"),
    resource="system",
    response=QuotaList,
)
def list_quotas(ctx: ActionContext, params: None, body: None) -> QuotaList:
    """The daily token quotas set on agents and API keys."""
    return QuotaList(items=UsageService(settings=ctx.settings).list_quotas())


@actions.action(
    "set_quota",
    ("PUT", "POST"),
    "/admin/quotas",
    access=requires("update"),
    resource="system",
    body=QuotaSet,
    response=QuotaResult,
    audit="quota.set",
)
def set_quota(ctx: ActionContext, params: None, body: QuotaSet) -> QuotaResult:
    """Set the daily token quota of an agent (`scope: agent`) or an API key (`scope: key`, its id);
    `daily_tokens: null` removes it. Chat functions see a change within `AGENT_CACHE_SECONDS` (10 s)."""
    ctx.resource_id = f"{body.scope}:{body.id}"
    return QuotaResult(quota=UsageService(settings=ctx.settings).set_quota(body))
