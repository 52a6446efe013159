"""Authentication and the request gate of the admin API (and of API-key routes elsewhere).

Credentials arrive as `Authorization: Bearer <token>` (scheme case-insensitive) and are either
- the admin token: the AWSCURRENT value of the admin-token secret (cached a few seconds, compared in
  constant time), optionally also AWSPREVIOUS for `admin_token_grace_minutes` after a rotation; it acts as
  the synthetic super-admin `admin-token`; or
- an API key (`chatbot_` + 64 hex): found by its SHA-256 hash; the key must be active and unexpired and its
  user active — both read with consistent reads, so a revocation or deactivation holds from the next request.

Authentication has two steps: `identify` the token (the key's item, or the admin token), then `confirm` its
owner (the key's user).

Failures are `Unauthorized` (401) with a code: missing_credentials, invalid_credentials, expired_key,
revoked_key, inactive_user. A missing permission is `Forbidden` (403).

`AccessGuard.admit` is the whole gate: rate limit by source IP beside `identify` → scope check → rate limit by
credential beside `confirm`. Each limit decides as if it had run first (429 before anything else); a failed
authentication counts `AUTH_FAILURE_COST` requests against the IP, is audited as `auth.failed` and logged as
`auth_failed`. Two rounds of concurrent calls, not four in a row.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from chatbot import clock, secrets
from chatbot.config import Settings
from chatbot.dal.api_keys import ApiKeysRepository
from chatbot.dal.base import Item
from chatbot.dal.users import UsersRepository
from chatbot.errors import Forbidden, ServiceUnavailable, Unauthorized
from chatbot.models.auth import Principal, Scope
from chatbot.observability import get_logger, log_event
from chatbot.services.api_keys import KEY_PATTERN, KEY_PREFIX, digest_of
from chatbot.services.audit import AuditService
from chatbot.services.concurrency import in_background
from chatbot.services.rate_limit import Limit, RateLimiter

T = TypeVar("T")
R = TypeVar("R")

ADMIN_TOKEN_PRINCIPAL = Principal.of(
    id="admin-token", email="admin@token.local", role="super-admin", auth_method="admin_token"
)
# A failed authentication counts this many requests against the source IP, so guessing is slowed 5x.
AUTH_FAILURE_COST = 5
# last_used_at is written at most once per this period, so busy keys do not cost a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_BEARER = re.compile(r"^bearer +(\S+)$", re.IGNORECASE)


def bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise Unauthorized("Authorization header required", code="missing_credentials")
    match = _BEARER.match(authorization.strip())
    if match is None:
        raise Unauthorized("Invalid Authorization header format", code="invalid_credentials")
    return match.group(1)


@dataclass(frozen=True)
class Credential:
    """A bearer token identified, its owner not yet confirmed: an API key's item, or (`key` None) the admin
    token."""

    id: str
    scopes: tuple[Scope, ...]
    key: Item | None = None


ADMIN_TOKEN_CREDENTIAL = Credential(id=ADMIN_TOKEN_PRINCIPAL.id, scopes=ADMIN_TOKEN_PRINCIPAL.scopes)


class Authenticator:
    def __init__(self, settings: Settings, users: UsersRepository, keys: ApiKeysRepository) -> None:
        self.settings = settings
        self.users = users
        self.keys = keys

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        return cls(
            settings, UsersRepository(settings.users_table), ApiKeysRepository(settings.api_keys_table)
        )

    def authenticate(self, authorization: str | None) -> Principal:
        return self.confirm(self.identify(authorization))

    def identify(self, authorization: str | None) -> Credential:
        token = bearer_token(authorization)
        if token.startswith(KEY_PREFIX):
            item = self._active_key(token)
            return Credential(id=item["id"], scopes=tuple(item.get("scopes") or ()), key=item)
        if self._is_admin_token(token):
            return ADMIN_TOKEN_CREDENTIAL
        raise Unauthorized("Invalid authentication token", code="invalid_credentials")

    def confirm(self, credential: Credential) -> Principal:
        """The principal behind `credential`: an API key's user must (still) be active."""
        item = credential.key
        if item is None:
            return ADMIN_TOKEN_PRINCIPAL
        user = self.users.find(item["user_id"], consistent=True)
        if user is None or not user.get("is_active", False):
            raise Unauthorized("User account is inactive", code="inactive_user")
        now = clock.now()
        since = clock.iso(now - LAST_USED_RESOLUTION)
        # The item was just read consistently: a recent use needs no write (nor a refused conditional one).
        if (item.get("last_used_at") or "") < since:
            self.keys.touch(item, at=clock.iso(now), unless_since=since)
        return Principal.of(
            id=user["id"],
            email=user["email"],
            role=user["role"],
            auth_method="api_key",
            api_key_id=item["id"],
            scopes=credential.scopes,
        )

    def _is_admin_token(self, token: str) -> bool:
        secret_id, max_age = self.settings.admin_token_secret_id, self.settings.admin_token_cache_seconds
        current = secrets.get_secret(secret_id, max_age=max_age)
        if current is None or not current.value:
            raise ServiceUnavailable("Admin token unavailable", code="secrets_unavailable")
        if _same(token, current.value):
            return True
        grace = timedelta(minutes=self.settings.admin_token_grace_minutes)
        if grace and current.created_at and clock.now() < current.created_at + grace:
            previous = secrets.get_secret(secret_id, stage=secrets.PREVIOUS, max_age=max_age)
            return previous is not None and bool(previous.value) and _same(token, previous.value)
        return False

    def _active_key(self, key: str) -> Item:
        if not KEY_PATTERN.match(key):
            raise Unauthorized("Invalid authentication token", code="invalid_credentials")
        item = self.keys.find_by_digest(digest_of(key))
        if item is None:
            raise Unauthorized("Invalid authentication token", code="invalid_credentials")
        if not item.get("is_active", False):
            raise Unauthorized("API key has been revoked", code="revoked_key")
        if item.get("expires_at") and clock.parse_iso(item["expires_at"]) <= clock.now():
            raise Unauthorized("API key has expired", code="expired_key")
        return item


def _same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.strip().encode())


@dataclass(frozen=True)
class RequestInfo:
    """What the gate needs to know about a request (no HTTP types below the route layer)."""

    authorization: str | None
    source_ip: str
    request_id: str | None = None
    path: str | None = None


class AccessGuard:
    def __init__(
        self,
        authenticator: Authenticator,
        limiter: RateLimiter,
        audit: AuditService,
        *,
        scope: Scope,
        ip_limit: Limit,
        credential_limit: Limit,
    ) -> None:
        self.authenticator = authenticator
        self.limiter = limiter
        self.audit = audit
        self.scope = scope
        self.ip_limit = ip_limit
        self.credential_limit = credential_limit

    @classmethod
    def for_admin(cls, settings: Settings) -> AccessGuard:
        limit, window = settings.admin_rate_limit, settings.admin_rate_window_seconds
        return cls._build(
            settings, "admin", Limit("admin-ip", limit, window), Limit("admin-key", limit, window)
        )

    @classmethod
    def for_chat(cls, settings: Settings) -> AccessGuard:
        """For API-key routes of the chat function (OpenAI-compatible API): keys need the `chat` scope."""
        limit, window = settings.chat_rate_limit, settings.chat_rate_window_seconds
        return cls._build(settings, "chat", Limit("chat-ip", limit, window), Limit("chat-key", limit, window))

    @classmethod
    def _build(
        cls, settings: Settings, scope: Scope, ip_limit: Limit, credential_limit: Limit
    ) -> AccessGuard:
        return cls(
            Authenticator.from_settings(settings),
            RateLimiter.from_settings(settings),
            AuditService.from_settings(settings),
            scope=scope,
            ip_limit=ip_limit,
            credential_limit=credential_limit,
        )

    def admit(self, request: RequestInfo) -> Principal:
        ip_hit = in_background(self.limiter.hit, self.ip_limit, request.source_ip)
        credential = self._beside(ip_hit, self.authenticator.identify, request.authorization, request)
        if self.scope not in credential.scopes:
            raise Forbidden(f"API key lacks the {self.scope} scope", code="insufficient_scope")
        key_hit = in_background(self.limiter.hit, self.credential_limit, credential.id)
        return self._beside(key_hit, self.authenticator.confirm, credential, request)

    def _beside(self, limit_hit: Future[Any], step: Callable[[T], R], arg: T, request: RequestInfo) -> R:
        """`step(arg)` while `limit_hit` runs; the limit's verdict comes first, as if it had run first."""
        try:
            result = step(arg)
        except BaseException as exc:
            limit_hit.result()
            if isinstance(exc, Unauthorized):
                self._failed(request, exc)
            raise
        limit_hit.result()
        return result

    def _failed(self, request: RequestInfo, exc: Unauthorized) -> None:
        self.limiter.penalize(self.ip_limit, request.source_ip, cost=AUTH_FAILURE_COST - 1)
        log_event(
            get_logger("chatbot"),
            "auth_failed",
            "warning",
            code=exc.code,
            source_ip=request.source_ip,
            path=request.path,
            scope=self.scope,
        )
        self.audit.record_safely(
            "auth.failed",
            outcome="failure",
            request_id=request.request_id,
            source_ip=request.source_ip,
            payload={"code": exc.code, "path": request.path},
        )
