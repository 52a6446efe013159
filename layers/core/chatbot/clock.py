"""UTC time in one format everywhere: ISO-8601 with microseconds and `Z`, so stored strings sort by time."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None = None) -> str:
    return as_utc(moment or now()).strftime(_FORMAT)


def parse_iso(text: str) -> datetime:
    """Parse any ISO-8601 timestamp (a naive one is taken as UTC)."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
