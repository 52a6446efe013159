"""Audit entries: who did what to which resource, with what outcome. Append-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

Outcome = Literal["success", "failure", "denied"]


class AuditEntry(BaseModel):
    id: str
    timestamp: str
    actor: str
    actor_email: str | None = None
    auth_method: str | None = None
    action: str = Field(description="e.g. agent.create, auth.failed, token.rotate")
    resource_type: str | None = None
    resource_id: str | None = None
    outcome: Outcome
    request_id: str | None = None
    source_ip: str | None = None
    summary: dict[str, Any] | None = Field(None, description="Redacted request summary")


class AuditQuery(BaseModel):
    actor: str | None = Field(None, max_length=128)
    action: str | None = Field(None, max_length=128)
    resource_type: str | None = Field(None, max_length=64)
    resource_id: str | None = Field(None, max_length=256)
    since: datetime | None = Field(None, description="Oldest entry (default: 30 days before `until`)")
    until: datetime | None = Field(None, description="Newest entry (default: now)")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=2048)
