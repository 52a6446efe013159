"""The OpenAI client the job types use: key from OPENAI_API_KEY or the secret, base URL from the SDK's env."""

from __future__ import annotations

import os

import boto3
import pytest

from chatbot import secrets
from chatbot.errors import ServiceUnavailable
from chatbot.upstream.openai_client import api_key, get_openai_client, reset_openai_client


@pytest.fixture
def secret_env(aws_env, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    reset_openai_client()
    yield
    reset_openai_client()


def _set(value: str) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=os.environ["OPENAI_SECRET_ID"], SecretString=value
    )
    secrets.invalidate()


def test_api_key_comes_from_the_secret_as_text_or_json(secret_env):
    _set("sk-plain-0123456789abcdef")
    assert api_key() == "sk-plain-0123456789abcdef"
    _set('{"api_key": "sk-json-0123456789abcdef"}')
    assert api_key() == "sk-json-0123456789abcdef"


def test_api_key_from_the_environment_wins(secret_env, monkeypatch):
    _set("sk-secret-0123456789abcdef")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-0123456789abcdef")

    assert api_key() == "sk-env-0123456789abcdef"


def test_placeholder_or_empty_secret_is_not_configured(secret_env):
    for value in ("REPLACE_WITH_OPENAI_API_KEY", '{"other": 1}'):
        _set(value)
        with pytest.raises(ServiceUnavailable) as err:
            api_key()
        assert err.value.code == "openai_not_configured" and "REPLACE" not in err.value.message


def test_client_is_built_once_with_the_sdks_base_url(secret_env):
    _set("sk-plain-0123456789abcdef")

    client = get_openai_client()

    assert get_openai_client() is client
    assert str(client.base_url).startswith("http://127.0.0.1:9/v1")
    reset_openai_client()
    assert get_openai_client() is not client
