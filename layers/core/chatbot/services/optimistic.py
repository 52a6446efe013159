"""Optimistic concurrency for admin updates: the version a client read, from the body or `If-Match`."""

from __future__ import annotations

from chatbot.errors import BadRequest, Conflict


def expected_version(body_version: int | None, if_match: int | None) -> int | None:
    """The version the client expects (None: last writer wins); both given and different is a 409."""
    if body_version is not None and if_match is not None and body_version != if_match:
        raise Conflict("version and If-Match disagree", code="version_mismatch")
    return body_version if body_version is not None else if_match


def check_version(entity: str, current: int, expected: int | None) -> None:
    if expected is not None and current != expected:
        raise Conflict(
            f"{entity} was changed by someone else; reload it and try again",
            details={"current_version": current},
        )


def parse_if_match(value: str | None) -> int | None:
    """`If-Match: 3`, `"3"` or `W/"3"` → 3; absent or `*` → None; anything else is a 400."""
    if value is None or not value.strip() or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise BadRequest("If-Match must be the version number of the resource", code="invalid_if_match")
    return int(text)
