"""One `openai.OpenAI` client per process, built on first use.

The API key is `OPENAI_API_KEY` when set (pointing the stack at OpenAI itself), else the `AWSCURRENT` value
of the OpenAI secret (plain text, or JSON with `api_key`; the template's `REPLACE_WITH_...` placeholder
counts as not configured), read again every few minutes so a rotated key needs no redeploy. The base URL
is left to the SDK, which reads `OPENAI_BASE_URL` (the local stack points it at the fake OpenAI). The key is
never logged.
"""

from __future__ import annotations

import json
import os
import threading
from functools import cache
from typing import TYPE_CHECKING

from chatbot import aws, secrets
from chatbot.config import get_settings
from chatbot.errors import ServiceUnavailable

if TYPE_CHECKING:
    import openai

_lock = threading.Lock()
PLACEHOLDER_PREFIX = "REPLACE_WITH_"


def api_key() -> str:
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        return key
    version = secrets.get_secret(get_settings().openai_secret_id, max_age=KEY_MAX_AGE_SECONDS)
    if version is None or not version.value.strip():
        raise ServiceUnavailable("OpenAI API key is not configured", code="openai_not_configured")
    return _key_from_secret(version.value)


def _key_from_secret(value: str) -> str:
    text = value.strip()
    if text.startswith(PLACEHOLDER_PREFIX):  # the template creates the secret with a placeholder
        raise ServiceUnavailable("OpenAI API key is not configured", code="openai_not_configured")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for name in ("api_key", "OPENAI_API_KEY", "key"):
                if isinstance(data.get(name), str) and data[name]:
                    return data[name]
        raise ServiceUnavailable("OpenAI API key secret has no api_key", code="openai_not_configured")
    return text


# A key put into the secret reaches every warm container within this time, with no redeploy.
KEY_MAX_AGE_SECONDS = 300.0


def get_openai_client() -> openai.OpenAI:
    return _client_for(api_key())


@cache
def _client_for(key: str) -> openai.OpenAI:
    import openai  # only the functions that talk to OpenAI pay for importing the SDK

    with _lock:
        settings = get_settings()
        return openai.OpenAI(
            api_key=key,
            max_retries=settings.upstream_max_retries,
            timeout=settings.chat_timeout_seconds,
        )


def reset_openai_client() -> None:
    """Forget the clients (tests, or after the OpenAI secret was rotated)."""
    _client_for.cache_clear()


aws.on_reset(reset_openai_client)
