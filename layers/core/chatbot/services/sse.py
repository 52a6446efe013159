"""Server-sent event frames, byte for byte as the original emitted them.

`event: NAME\\ndata: JSON\\n\\n`, and `event: close\\n\\n` (no data line) last. JSON is encoded the way PHP's
`json_encode` does by default (compact, non-ASCII as `\\uXXXX`, `/` as `\\/`), so embeds that compare or
log the raw frames see exactly what they saw before.
"""

from __future__ import annotations

import json
from typing import Any

CLOSE = b"event: close\n\n"
CONTENT_TYPE = "text/event-stream; charset=utf-8"
# Proxies (nginx, CloudFront) must pass the frames on as they come.
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")


def frame(event: str, data: Any = None) -> bytes:
    if data is None:
        return f"event: {event}\n\n".encode()
    return f"event: {event}\ndata: {encode_json(data)}\n\n".encode()


def message(data: dict[str, Any]) -> bytes:
    return frame("message", data)


def openai_chunk(data: Any) -> bytes:
    """One frame of OpenAI's streaming format (`data: JSON` only)."""
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


OPENAI_DONE = b"data: [DONE]\n\n"
