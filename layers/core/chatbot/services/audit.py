"""The audit trail: one append-only entry per mutating admin action and per failed authentication.

Entries carry who (actor, e-mail, auth method), what (`agent.create`, `auth.failed`, ...), on which resource,
the outcome (success | failure | denied), the request id and source IP, and a redacted summary of the request
(`chatbot.observability.redact`, large values replaced by their size). They expire after 365 days (TTL).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase

from chatbot import clock
from chatbot.config import Settings
from chatbot.dal.audit import AuditRepository, actor_pk, day_pk
from chatbot.dal.base import Page, decode_cursor, encode_cursor
from chatbot.errors import BadRequest, ChatbotError
from chatbot.models.audit import AuditEntry, AuditQuery, Outcome
from chatbot.models.auth import Principal
from chatbot.observability import get_logger, log_event, redact

RETENTION_DAYS = 365
DEFAULT_WINDOW = timedelta(days=30)
ANONYMOUS = "anonymous"
_DAYS_AT_ONCE = 8  # day partitions queried concurrently when listing
_MAX_TEXT = 200
_MAX_ITEMS = 20
_MAX_DEPTH = 4


def summarize(value: Any, _depth: int = 0) -> Any:
    """A redacted, bounded copy of a request payload: secrets masked, large values replaced by their size."""
    value = redact(value) if _depth == 0 else value
    if isinstance(value, dict):
        if _depth >= _MAX_DEPTH:
            return f"[{len(value)} keys]"
        return {str(k): summarize(v, _depth + 1) for k, v in list(value.items())[:_MAX_ITEMS]}
    if isinstance(value, list | tuple):
        if _depth >= _MAX_DEPTH or len(value) > _MAX_ITEMS:
            return f"[{len(value)} items]"
        return [summarize(v, _depth + 1) for v in value]
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return f"[{len(value)} chars]"
    return value


class AuditService:
    def __init__(self, repo: AuditRepository) -> None:
        self.repo = repo

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditService:
        return cls(AuditRepository(settings.audit_table))

    def record(
        self,
        action: str,
        *,
        outcome: Outcome = "success",
        actor: Principal | None = None,
        resource_type: str | None = None,
        resource_id: str | None = None,
        request_id: str | None = None,
        source_ip: str | None = None,
        payload: Any = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        moment = at or clock.now()
        timestamp = clock.iso(moment)
        entry_id = uuid.uuid4().hex
        sort_key = f"{timestamp}#{entry_id}"
        actor_id = actor.id if actor else ANONYMOUS
        entry = AuditEntry(
            id=entry_id,
            timestamp=timestamp,
            actor=actor_id,
            actor_email=actor.email if actor else None,
            auth_method=actor.auth_method if actor else None,
            action=action,
            resource_type=resource_type,
            resource_id=resource_id,
            outcome=outcome,
            request_id=request_id,
            source_ip=source_ip,
            summary=summarize(payload) if payload else None,
        )
        self.repo.append(
            {
                **entry.model_dump(exclude_none=True),
                "pk": day_pk(timestamp[:10]),
                "sk": sort_key,
                "gsi1pk": actor_pk(actor_id),
                "gsi1sk": sort_key,
                "ttl": int(moment.timestamp()) + RETENTION_DAYS * 86400,
                "version": 1,
            }
        )
        return entry

    def record_safely(self, action: str, **fields: Any) -> AuditEntry | None:
        """Record, but never fail the caller: the action it describes has already happened."""
        try:
            return self.record(action, **fields)
        except ChatbotError as exc:
            log_event(get_logger("chatbot"), "audit_write_failed", "error", action=action, code=exc.code)
            return None

    def list(self, query: AuditQuery) -> tuple[list[AuditEntry], str | None]:
        """Entries newest first, filtered, one page; the cursor continues where this page stopped."""
        until = clock.as_utc(query.until) if query.until else clock.now()
        since = clock.as_utc(query.since) if query.since else until - DEFAULT_WINDOW
        if since > until:
            raise BadRequest("`since` must not be after `until`", code="invalid_range")
        since = max(since, until - timedelta(days=RETENTION_DAYS + 1))  # older entries have expired
        lower, upper = clock.iso(since), clock.iso(until) + "~"  # '~' sorts after '#<uuid>'
        after = _cursor_sk(query.cursor)
        condition = _filters(query)
        if query.actor:
            page = self.repo.page(
                actor=query.actor,
                lower=lower,
                upper=upper,
                limit=query.limit,
                after_sk=after,
                filter_expression=condition,
            )
            last = page.items[-1]["sk"] if page.items and page.next_cursor else None
            return [_entry(i) for i in page.items], encode_cursor({"sk": last}) if last else None

        start = date.fromisoformat(after[:10]) if after else until.date()
        days = [start - timedelta(days=n) for n in range((start - since.date()).days + 1)]

        def page_of(day: date) -> Page:
            key = day.isoformat()
            return self.repo.page(
                day=key,
                lower=lower,
                upper=upper,
                limit=query.limit,
                after_sk=after if after and after.startswith(key) else None,
                filter_expression=condition,
            )

        # One partition per day: read several days at once, newest first, until the page is full.
        items: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=_DAYS_AT_ONCE) as pool:
            for first in range(0, len(days), _DAYS_AT_ONCE):
                for page in pool.map(page_of, days[first : first + _DAYS_AT_ONCE]):
                    items.extend(page.items[: query.limit - len(items)])
                if len(items) == query.limit:
                    # Possibly the very last entry: the next page is then empty, which is fine.
                    return [_entry(i) for i in items], encode_cursor({"sk": items[-1]["sk"]})
        return [_entry(i) for i in items], None


def _filters(query: AuditQuery) -> ConditionBase | None:
    condition: ConditionBase | None = None
    for field in ("action", "resource_type", "resource_id"):
        value = getattr(query, field)
        if value:
            clause = Attr(field).eq(value)
            condition = clause if condition is None else condition & clause
    return condition


def _cursor_sk(cursor: str | None) -> str | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    sk = key.get("sk")
    if not isinstance(sk, str) or len(sk) < 20:
        raise BadRequest("Invalid pagination cursor", code="invalid_cursor")
    try:
        clock.parse_iso(sk.split("#", 1)[0])
    except ValueError:
        raise BadRequest("Invalid pagination cursor", code="invalid_cursor") from None
    return sk


def _entry(item: dict[str, Any]) -> AuditEntry:
    return AuditEntry.model_validate(item)
