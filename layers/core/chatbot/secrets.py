"""Secrets Manager values with a short per-process cache.

Every read names its stage (`AWSCURRENT` unless told otherwise): the emulator returns a stale version for a
read without `VersionStage` after a stage move, and naming it is harmless on AWS. A cached value lives
`max_age` seconds, so a rotation reaches every warm container within that time; `invalidate()` forgets it at
once in the process that rotated. `chatbot.aws.reset()` clears the cache with the clients.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from chatbot import aws
from chatbot.errors import ServiceUnavailable

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"


@dataclass(frozen=True)
class SecretVersion:
    value: str
    version_id: str
    created_at: datetime | None


_cache: dict[tuple[str, str], tuple[float, SecretVersion | None]] = {}
_lock = threading.Lock()


def get_secret(secret_id: str, *, stage: str = CURRENT, max_age: float = 0.0) -> SecretVersion | None:
    """The version of `secret_id` labelled `stage`, or None when no version carries that label."""
    key = (secret_id, stage)
    if max_age > 0:
        with _lock:
            hit = _cache.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
    version = read_version(secret_id, stage=stage)
    if max_age > 0:
        with _lock:
            _cache[key] = (time.monotonic() + max_age, version)
    return version


def read_version(
    secret_id: str, *, stage: str = CURRENT, version_id: str | None = None
) -> SecretVersion | None:
    """One uncached read; None when the secret has no such version or stage."""
    kwargs = {"SecretId": secret_id, "VersionStage": stage}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        resp = aws.client("secretsmanager").get_secret_value(**kwargs)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise ServiceUnavailable("Secret store unavailable", code="secrets_unavailable") from exc
    except BotoCoreError as exc:
        raise ServiceUnavailable("Secret store unavailable", code="secrets_unavailable") from exc
    return SecretVersion(
        value=resp.get("SecretString") or "",
        version_id=resp["VersionId"],
        created_at=resp.get("CreatedDate"),
    )


def invalidate(secret_id: str | None = None) -> None:
    """Forget cached values of one secret (after rotating it here), or of all secrets."""
    with _lock:
        for key in [k for k in _cache if secret_id is None or k[0] == secret_id]:
            del _cache[key]


aws.on_reset(invalidate)
