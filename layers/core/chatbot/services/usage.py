"""Token accounting and daily token quotas per agent and per API key.

Every chat request is recorded (requests, errors, input/output tokens from the upstream's usage) per agent,
API key and UTC day. Quotas are optional (`set_quota`): before the upstream call a request reserves its
estimated tokens on each ledger that has a quota (`reserve`, a conditional ADD that only succeeds while
the day's committed tokens are below the quota); after the reply `settle` adds the real counts and releases
the reservation in the same ADD. A refused reservation is a 429 `quota_exceeded` with `Retry-After` (the
end of the UTC day, or a second when only reservations of requests in flight stand in the way).

Requests without an agent count under `_default`, widget requests (no API key) under `_public`.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial

from chatbot import clock
from chatbot.config import Settings, get_settings
from chatbot.dal.usage import COUNTERS, QuotaRefused, UsageRepository
from chatbot.errors import BadRequest, QuotaExceeded
from chatbot.models.chat import Quota, QuotaSet, TokenUsage, UsageQuery, UsageReport, UsageRow
from chatbot.observability import get_logger, log_event

NO_AGENT = "_default"
NO_KEY = "_public"
MAX_REPORT_DAYS = 92
# Tokens a message costs beyond its text (role, separators), as OpenAI counts them; generous on purpose.
PER_MESSAGE_TOKENS = 8


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def seconds_until_midnight(now: float | None = None) -> int:
    now = time.time() if now is None else now
    return max(1, math.ceil(86400 - now % 86400))


def estimate_tokens(texts: Iterable[str]) -> int:
    """An upper bound of the tokens of `texts`: a token is at least one byte of UTF-8."""
    return sum(len(t.encode()) + PER_MESSAGE_TOKENS for t in texts)


@dataclass
class Reservation:
    day: str
    agent_id: str
    key_id: str
    # (scope, id) → tokens reserved on that ledger
    held: dict[tuple[str, str], int] = field(default_factory=dict)


class UsageService:
    def __init__(self, repo: UsageRepository | None = None, *, settings: Settings | None = None) -> None:
        self._repo = repo
        self.settings = settings or get_settings()
        self._quota_cache: dict[tuple[str, str], tuple[float, int | None]] = {}
        self._lock = threading.Lock()

    @property
    def repo(self) -> UsageRepository:
        if self._repo is None:
            self._repo = UsageRepository(self.settings.usage_table)
        return self._repo

    def ttl(self) -> int:
        return int(time.time()) + self.settings.usage_retention_days * 86400

    # -- quotas ------------------------------------------------------------------------------------------
    def quotas_for(self, agent_id: str, key_id: str) -> dict[tuple[str, str], int | None]:
        """Quotas that apply to a request, cached like agents (`agent_cache_seconds`)."""
        wanted = [("agent", agent_id)]
        if key_id != NO_KEY:
            wanted.append(("key", key_id))
        now = time.monotonic()
        found: dict[tuple[str, str], int | None] = {}
        missing = []
        for pair in wanted:
            hit = self._quota_cache.get(pair)
            if hit is not None and hit[0] > now:
                found[pair] = hit[1]
            else:
                missing.append(pair)
        if missing:
            loaded = self.repo.get_quotas(missing)
            expires = now + self.settings.agent_cache_seconds
            with self._lock:
                for pair, limit in loaded.items():
                    self._quota_cache[pair] = (expires, limit)
            found.update(loaded)
        return found

    def unreserved(self, agent_id: str | None, key_id: str | None) -> Reservation | None:
        """A reservation holding nothing when the cache knows that no quota applies; None when it must ask."""
        reservation = Reservation(day=today(), agent_id=agent_id or NO_AGENT, key_id=key_id or NO_KEY)
        now = time.monotonic()
        pairs = [("agent", reservation.agent_id)]
        if reservation.key_id != NO_KEY:
            pairs.append(("key", reservation.key_id))
        for pair in pairs:
            hit = self._quota_cache.get(pair)
            if hit is None or hit[0] <= now or hit[1] is not None:
                return None
        return reservation

    def reserve(self, agent_id: str | None, key_id: str | None, estimate: int) -> Reservation:
        """Reserve `estimate` tokens on every ledger with a quota; QuotaExceeded when one is used up."""
        reservation = Reservation(day=today(), agent_id=agent_id or NO_AGENT, key_id=key_id or NO_KEY)
        quotas = self.quotas_for(reservation.agent_id, reservation.key_id)
        ttl = self.ttl()
        for (scope, ident), limit in quotas.items():
            if limit is None:
                continue
            try:
                self.repo.reserve(scope, ident, reservation.day, estimate, limit=limit, ttl=ttl)
            except QuotaRefused as refused:
                self.release(reservation)
                exhausted = refused.state.used >= limit
                log_event(
                    get_logger("chat"), "rate_limited", "warning", scope=f"quota-{scope}", limit=limit,
                    used=refused.state.used, reserved=refused.state.reserved,
                )  # fmt: skip
                who = "this API key" if scope == "key" else "this agent"
                raise QuotaExceeded(
                    f"Daily token quota exceeded for {who}",
                    retry_after=seconds_until_midnight() if exhausted else 1,
                    details={"scope": scope, "limit": limit, "used": refused.state.used},
                ) from None
            reservation.held[(scope, ident)] = estimate
        return reservation

    def top_up(self, reservation: Reservation, extra: int) -> None:
        """Reserve `extra` more tokens for an admitted request (history found after admission)."""
        if extra <= 0:
            return
        ttl = self.ttl()
        for pair in list(reservation.held):
            self.repo.record(pair[0], pair[1], reservation.day, counters={}, reserved=-extra, ttl=ttl)
            reservation.held[pair] += extra

    def release(self, reservation: Reservation) -> None:
        """Give back reservations of a request that never reached the upstream."""
        ttl = self.ttl()
        for (scope, ident), tokens in reservation.held.items():
            self.repo.record(scope, ident, reservation.day, counters={}, reserved=tokens, ttl=ttl)
        reservation.held.clear()

    def settle(self, reservation: Reservation, usage: TokenUsage | None, *, ok: bool) -> None:
        """Record one request's tokens per agent, key and day, releasing its reservations."""
        for call in self.settle_calls(reservation, usage, ok=ok):
            call()

    def settle_calls(
        self, reservation: Reservation, usage: TokenUsage | None, *, ok: bool
    ) -> list[Callable[[], None]]:
        """The independent writes of `settle`, for a caller that runs them concurrently."""
        usage = usage or TokenUsage()
        counters = {
            "requests": 1,
            "errors": 0 if ok else 1,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        }
        ttl, day = self.ttl(), reservation.day
        agent, key = reservation.agent_id, reservation.key_id
        held = dict(reservation.held)
        reservation.held.clear()
        record = partial(self.repo.record, counters=counters, ttl=ttl)
        return [
            partial(record, "agent", agent, day, reserved=held.get(("agent", agent), 0)),
            partial(record, "key", key, day, reserved=held.get(("key", key), 0)),
            partial(self.repo.record_detail, day, agent, key, counters=counters, ttl=ttl),
        ]

    # -- admin -------------------------------------------------------------------------------------------
    def set_quota(self, data: QuotaSet) -> Quota | None:
        """Set (or with `daily_tokens: null` remove) the daily token quota of an agent or API key."""
        if data.daily_tokens is None:
            self.repo.delete_quota(data.scope, data.id)
            result = None
        else:
            item = self.repo.put_quota(data.scope, data.id, data.daily_tokens, now=clock.iso())
            result = Quota(
                scope=data.scope, id=data.id, daily_tokens=item["daily_tokens"], updated_at=item["updated_at"]
            )
        with self._lock:
            self._quota_cache.pop((data.scope, data.id), None)
        return result

    def list_quotas(self) -> list[Quota]:
        return [
            Quota(
                scope=i["scope"], id=i["id"], daily_tokens=i["daily_tokens"], updated_at=i.get("updated_at")
            )
            for i in self.repo.list_quotas()
        ]

    def report(self, query: UsageQuery | None = None) -> UsageReport:
        """Usage rows per (day, agent, key) between two days (default: today), with totals."""
        query = query or UsageQuery()
        day_to = query.day_to or today()
        day_from = query.day_from or day_to
        days = _days(day_from, day_to)
        rows: list[UsageRow] = []
        for day in days:
            for item in self.repo.day_rows(day):
                row = UsageRow(
                    day=day,
                    **{k: item.get(k, 0) for k in COUNTERS},
                    agent_id=item["agent_id"],
                    key_id=item["key_id"],
                )
                if query.agent_id and row.agent_id != query.agent_id:
                    continue
                if query.key_id and row.key_id != query.key_id:
                    continue
                rows.append(row)
        totals = UsageRow(day=f"{day_from}..{day_to}", agent_id="*", key_id="*")
        for row in rows:
            for name in COUNTERS:
                setattr(totals, name, getattr(totals, name) + getattr(row, name))
        return UsageReport(day_from=day_from, day_to=day_to, rows=rows, totals=totals)

    def ledger(self, scope: str, ident: str, day: str | None = None) -> dict[str, int]:
        """One agent's or key's counters for a day (tests and the admin console read this)."""
        item = self.repo.ledger(scope, ident, day or today()) or {}
        return {k: int(item.get(k, 0)) for k in (*COUNTERS, "committed", "reserved")}


def _days(day_from: str, day_to: str) -> list[str]:
    try:
        start, end = dt.date.fromisoformat(day_from), dt.date.fromisoformat(day_to)
    except ValueError:
        raise BadRequest("Days must be YYYY-MM-DD", code="invalid_day") from None
    if end < start:
        raise BadRequest("day_from must not be after day_to", code="invalid_day")
    if (end - start).days >= MAX_REPORT_DAYS:
        raise BadRequest(f"At most {MAX_REPORT_DAYS} days per report", code="invalid_day")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
