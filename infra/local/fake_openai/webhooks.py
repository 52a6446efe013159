"""Standard Webhooks signing, the scheme OpenAI signs its webhook deliveries with.

The signature is `v1,` + base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")) where the key is
the base64-decoded part of the secret after `whsec_` (a secret without that prefix is used as raw bytes, as
the openai SDK does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx

USER_AGENT = "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)"


def new_webhook_secret() -> str:
    """A fresh `whsec_…` secret in the format OpenAI hands out."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def sign_webhook(
    secret: str, body: bytes | str, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Headers `webhook-id`, `webhook-timestamp` and `webhook-signature` for `body`."""
    msg_id = msg_id or new_event_id()
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    payload = body.decode() if isinstance(body, bytes) else body
    digest = hmac.new(
        _secret_key(secret), f"{msg_id}.{timestamp}.{payload}".encode(), hashlib.sha256
    ).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


def build_event(event_type: str, data: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """An event envelope as OpenAI delivers it."""
    return {
        "id": event_id or new_event_id(),
        "object": "event",
        "created_at": int(time.time()),
        "type": event_type,
        "data": data,
    }


def encode_event(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def signed_request(event: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a delivery; the event id doubles as the webhook id, as OpenAI does."""
    body = encode_event(event)
    headers = sign_webhook(secret, body, msg_id=str(event["id"]))
    headers["content-type"] = "application/json"
    headers["user-agent"] = USER_AGENT
    return body, headers


def send_webhook(url: str, event: dict[str, Any], secret: str, *, timeout: float = 10.0) -> httpx.Response:
    """Deliver `event` to `url`, signed with `secret` (blocking; for tests and scripts)."""
    body, headers = signed_request(event, secret)
    with httpx.Client(timeout=timeout) as client:
        return client.post(url, content=body, headers=headers)


async def asend_webhook(
    client: httpx.AsyncClient, url: str, event: dict[str, Any], secret: str
) -> httpx.Response:
    body, headers = signed_request(event, secret)
    return await client.post(url, content=body, headers=headers)
