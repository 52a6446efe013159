"""OpenAI webhooks: verify, deduplicate, enqueue, answer fast.

1. Verify the Standard Webhooks signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with the
   openai SDK's `webhooks.verify_signature`, against every configured secret (several during a rotation),
   with a 5-minute replay window. Failure → 401 and nothing stored.
2. Parse: malformed JSON → 400; no `id` or `type` → 400.
3. Types we do not handle are logged and acknowledged (200, nothing stored).
4. Dedupe by event id with a conditional write, then enqueue a `webhook_event` job under an id derived from
   the event id, so a redelivered event never makes a second job. When the first delivery stored the event
   but could not enqueue (the caller got a 5xx and OpenAI retries), the retry creates the job; a job left
   queued without its message (a crash between the two writes) is sent again.
Processing happens in the worker; a failure there is retried by the job system, never acknowledged silently.
The secret and the signature never reach a log line or an error message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from chatbot import aws, clock, secrets
from chatbot.config import Settings, get_settings
from chatbot.dal.base import ttl_after
from chatbot.dal.webhook_events import WebhookEventRepository
from chatbot.errors import BadRequest, Conflict, Unauthorized
from chatbot.observability import get_logger, log_event
from chatbot.services.job_types.webhook_event import HANDLED_EVENT_TYPES
from chatbot.services.jobs import JobService, get_job_service

if TYPE_CHECKING:
    import openai

logger = get_logger("webhook")

# A job still queued this long after the event was first stored may have lost its message; resend it.
RESEND_AFTER_SECONDS = 60.0
PLACEHOLDER_PREFIX = "REPLACE_WITH_"


def webhook_job_id(event_id: str) -> str:
    return "whk_" + hashlib.sha256(event_id.encode()).hexdigest()[:40]


def parse_secrets(value: str) -> list[str]:
    """Secrets from the secret's value: a JSON list, a JSON object (`secrets` list, or `current`/`previous`/
    `secret` values), or text with secrets separated by spaces, commas or newlines. The template's
    `REPLACE_WITH_...` placeholder counts as no secret."""
    text = value.strip()
    found: list[Any] = []
    if text.startswith(("[", "{")):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, list):
            found = data
        elif isinstance(data, dict):
            found = list(data.get("secrets") or []) + [
                data.get(name) for name in ("current", "secret", "previous", "webhook_secret")
            ]
    else:
        found = re.split(r"[\s,]+", text)
    out: list[str] = []
    for item in found:
        value = item.strip() if isinstance(item, str) else ""
        if value and not value.startswith(PLACEHOLDER_PREFIX) and value not in out:
            out.append(value)
    return out


class WebhookService:
    def __init__(
        self,
        jobs: JobService | None = None,
        events: WebhookEventRepository | None = None,
        *,
        settings: Settings | None = None,
        secrets_loader: Callable[[bool], list[str]] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.jobs = jobs or get_job_service()
        self.events = events or WebhookEventRepository(self.settings.webhook_events_table)
        self._load_secrets = secrets_loader or self._secrets_from_manager

    def receive(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        if not body or not body.strip():
            self._rejected(400, "empty_body")
            raise BadRequest("Empty request body", code="empty_body")
        self.verify(body, headers)
        try:
            event = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            self._rejected(400, "invalid_json")
            raise BadRequest("Invalid JSON", code="invalid_json") from None
        if not isinstance(event, dict) or not _text(event.get("id")) or not _text(event.get("type")):
            self._rejected(400, "missing_id_or_type")
            raise BadRequest("Missing event id or type", code="missing_event_id_or_type")
        event_id, event_type = event["id"].strip(), event["type"].strip()
        if event_type not in HANDLED_EVENT_TYPES:
            log_event(logger, "webhook_received", event_id=event_id, event_type=event_type, status="ignored")
            return {"status": "ignored", "event_id": event_id, "reason": "unhandled_event_type"}

        job_id = webhook_job_id(event_id)
        now = clock.iso()
        first = self.events.record_first_delivery(
            {
                "id": event_id,
                "event_type": event_type,
                "status": "received",
                "job_id": job_id,
                "received_at": now,
                "updated_at": now,
                "ttl": ttl_after(self.settings.webhook_event_ttl_days * 86400),
            }
        )
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        created_at = event.get("created_at") if isinstance(event.get("created_at"), int) else None
        job, created = self.jobs.enqueue_once(
            "webhook_event",
            {"event_id": event_id, "event_type": event_type, "data": data, "created_at": created_at},
            job_id=job_id,
        )
        if not created and job.status == "queued" and _age_seconds(job.updated_at) > RESEND_AFTER_SECONDS:
            with contextlib.suppress(Conflict):  # it moved on meanwhile, so it has its message
                self.jobs.send_again(job.id)
        status = "accepted" if first or created else "duplicate"
        log_event(
            logger, "webhook_received", event_id=event_id, event_type=event_type, status=status, job_id=job.id
        )
        return {"status": "ok", "event_id": event_id, "job_id": job.id, "duplicate": status == "duplicate"}

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        secrets_now = self._load_secrets(False) or self._load_secrets(True)
        if not secrets_now:
            # Nothing to verify against: refuse (OpenAI keeps retrying) and say why in the log.
            self._rejected(401, "secret_not_configured", level="error")
            raise Unauthorized("Invalid signature", code="invalid_signature")
        if self._matches(body, headers, secrets_now):
            return
        # A rotation may have added a secret since the cache was filled: look once more, uncached.
        fresh = self._load_secrets(True)
        if fresh != secrets_now and self._matches(body, headers, fresh):
            return
        self._rejected(401, "invalid_signature")
        raise Unauthorized("Invalid signature", code="invalid_signature")

    def _matches(self, body: bytes, headers: Mapping[str, str], candidates: list[str]) -> bool:
        from openai import InvalidWebhookSignatureError

        webhooks = _verifier().webhooks
        lowered = {str(k).lower(): str(v) for k, v in headers.items()}
        for secret in candidates:
            try:
                webhooks.verify_signature(
                    body, lowered, secret=secret, tolerance=self.settings.webhook_tolerance_seconds
                )
            except (InvalidWebhookSignatureError, ValueError, TypeError):
                continue
            return True
        return False

    def _secrets_from_manager(self, refresh: bool) -> list[str]:
        secret_id = self.settings.webhook_secret_id
        if refresh:
            secrets.invalidate(secret_id)
        version = secrets.get_secret(secret_id, max_age=self.settings.webhook_secret_cache_seconds)
        return parse_secrets(version.value) if version else []

    @staticmethod
    def _rejected(status: int, reason: str, level: str = "warning") -> None:
        log_event(
            logger, "webhook_received", level=level, status="rejected", http_status=status, reason=reason
        )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _age_seconds(iso_time: str) -> float:
    try:
        return (clock.now() - clock.parse_iso(iso_time)).total_seconds()
    except ValueError:
        return 0.0


_verifier_lock = threading.Lock()


@cache
def _verifier() -> openai.OpenAI:
    """An SDK client used only for `webhooks.verify_signature`; it never calls the API, so no key."""
    import openai

    with _verifier_lock:
        return openai.OpenAI(api_key="unused-webhook-verification-only", max_retries=0)


@cache
def get_webhook_service() -> WebhookService:
    return WebhookService()


aws.on_reset(get_webhook_service.cache_clear)
