"""The audit log (read-only: entries are append-only)."""

from __future__ import annotations

from chatbot.admin.framework import ActionContext, Paged, actions, requires
from chatbot.models.audit import AuditEntry, AuditQuery
from chatbot.services.audit import AuditService


@actions.action(
    "list_audit_log",
    "GET",
    "/admin/audit-log",
    access=requires("read"),
    resource="audit",
    params=AuditQuery,
    response=AuditEntry,
    paged=True,
)
def list_audit_log(ctx: ActionContext, params: AuditQuery, body: None) -> Paged[AuditEntry]:
    """Audit entries, newest first.

    Filters: actor, action, resource_type, resource_id, since/until (ISO-8601; default the last 30 days).
    Pages of `limit` (default 100, at most 1000); pass `next_cursor` back as `cursor` for the next page.
    """
    entries, cursor = AuditService.from_settings(ctx.settings).list(params)
    return Paged(entries, cursor)
