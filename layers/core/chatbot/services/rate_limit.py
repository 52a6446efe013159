"""Fixed-window rate limits on DynamoDB atomic counters: one UpdateItem per check.

A window is `[start, start + window)` with `start = now // window * window`; its counter lives in
`RL#<scope>#<key>` / `<start>` and expires (TTL) a little after the window ends. Counting with `ADD` makes
concurrent requests — across Lambda containers — exact: N requests give a count of N. Over the limit the
caller gets `RateLimited` with `retry_after` = seconds until the window ends (the `Retry-After` header).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from chatbot.config import Settings
from chatbot.dal.rate_limits import RateLimitsRepository
from chatbot.errors import RateLimited
from chatbot.observability import get_logger, log_event

# Expired counters stay readable a little while (TTL deletion is lazy anyway); they are never read again.
_TTL_MARGIN_SECONDS = 60


@dataclass(frozen=True)
class Limit:
    scope: str  # e.g. "admin-ip", "admin-key", "chat-ip"
    limit: int
    window: int  # seconds


@dataclass(frozen=True)
class Usage:
    count: int
    limit: int
    reset_at: int  # epoch seconds when the window ends

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class RateLimiter:
    def __init__(self, repo: RateLimitsRepository) -> None:
        self.repo = repo

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(RateLimitsRepository(settings.rate_limits_table))

    def hit(self, limit: Limit, key: str, *, cost: int = 1, now: float | None = None) -> Usage:
        """Count `cost` against `key`; raises RateLimited once the window's count exceeds the limit."""
        usage = self._add(limit, key, cost, time.time() if now is None else now)
        if usage.count > limit.limit:
            retry_after = math.ceil(usage.reset_at - (time.time() if now is None else now))
            log_event(
                get_logger("chatbot"),
                "rate_limited",
                "warning",
                scope=limit.scope,
                limit=limit.limit,
                window_seconds=limit.window,
                retry_after=retry_after,
            )
            raise RateLimited(retry_after=retry_after)
        return usage

    def penalize(self, limit: Limit, key: str, *, cost: int, now: float | None = None) -> Usage:
        """Count `cost` without checking: the next request pays (e.g. for a failed authentication)."""
        return self._add(limit, key, cost, time.time() if now is None else now)

    def _add(self, limit: Limit, key: str, cost: int, now: float) -> Usage:
        start = int(now // limit.window * limit.window)
        end = start + limit.window
        count = self.repo.increment(
            f"RL#{limit.scope}#{key}", str(start), amount=cost, expires_at=end + _TTL_MARGIN_SECONDS
        )
        return Usage(count=count, limit=limit.limit, reset_at=end)
