"""boto3 clients and resources created lazily, once per process, and reused across invocations.

Endpoints are never passed here: boto3 reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) itself,
which is how the local stack and the tests point everything at the emulator.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=3,
    read_timeout=10,
    max_pool_connections=50,
)
_lock = threading.Lock()
# Caches of values read through these clients (e.g. secrets) that must be forgotten with them.
_reset_hooks: list[Callable[[], None]] = []


@lru_cache(maxsize=1)
def session() -> boto3.session.Session:
    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    with _lock:  # botocore client creation is not thread-safe on a shared session
        return session().client(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    with _lock:
        return session().resource(service, config=_CONFIG)  # type: ignore[call-overload]


@cache
def table(name: str) -> Any:
    """The DynamoDB Table resource of `name`, built once: boto3 builds a resource's class anew on every
    `.Table()` call (about a millisecond); the actions we call on it only use the shared client."""
    return resource("dynamodb").Table(name)


def on_reset(hook: Callable[[], None]) -> Callable[[], None]:
    """Register a cache to clear whenever `reset()` runs."""
    _reset_hooks.append(hook)
    return hook


def reset() -> None:
    """Forget cached clients (tests that change AWS_ENDPOINT_URL or credentials call this)."""
    session.cache_clear()
    client.cache_clear()
    resource.cache_clear()
    table.cache_clear()
    for hook in _reset_hooks:
        hook()
