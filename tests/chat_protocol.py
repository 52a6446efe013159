"""The widget's SSE protocol as tests check it: a strict frame parser and the captured exchange.

The appendix of the original's inventory holds a verbatim exchange with the original; `assert_captured_shape`
checks a reply against it frame by frame and field by field (ids and the reply text aside).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# The original's frames for `{"message":"Hello there","conversation_id":"conv_test1"}` (Responses API).
CAPTURED_START = '{"conversation_id":"conv_test1","api_type":"responses","agent_id":""}'
CAPTURED_MESSAGE_START = '{"type":"start","response_id":"resp_5bf7c79075184a2c"}'
CAPTURED_CHUNK = '{"type":"chunk","content":"Hello","response_id":"resp_5bf7c79075184a2c"}'
CAPTURED_DONE = '{"type":"done","finish_reason":"completed","response_id":"resp_5bf7c79075184a2c"}'

_FRAME = re.compile(r"event: ([A-Za-z_]+)\n(?:data: ([^\n]*)\n)?\n")


@dataclass(frozen=True)
class Frame:
    event: str
    raw: str | None

    @property
    def data(self) -> Any:
        return None if self.raw is None else json.loads(self.raw)


def parse_frames(body: str | bytes) -> list[Frame]:
    """Frames of an SSE body; fails on anything that is not exactly `event: X\\n[data: JSON\\n]\\n`."""
    text = body.decode() if isinstance(body, bytes) else body
    frames, pos = [], 0
    while pos < len(text):
        match = _FRAME.match(text, pos)
        assert match is not None, f"malformed SSE at {pos}: {text[pos : pos + 80]!r}"
        frames.append(Frame(match.group(1), match.group(2)))
        pos = match.end()
    return frames


def keys(raw: str) -> list[str]:
    return list(json.loads(raw).keys())


def assert_captured_shape(
    frames: list[Frame], *, conversation_id: str, api_type: str = "responses", agent_id: str = ""
) -> str:
    """Check frames against the captured exchange; returns the reply text (the chunks joined)."""
    assert frames[0].event == "start"
    assert keys(frames[0].raw) == keys(CAPTURED_START)
    assert frames[0].data == {"conversation_id": conversation_id, "api_type": api_type, "agent_id": agent_id}
    assert frames[-1] == Frame("close", None)
    messages = frames[1:-1]
    assert all(f.event == "message" for f in messages), [f.event for f in messages]
    start, *chunks, done = messages
    if api_type == "responses":
        assert keys(start.raw) == keys(CAPTURED_MESSAGE_START)
        response_id = start.data["response_id"]
        assert response_id.startswith("resp_")
        for chunk in chunks:
            assert keys(chunk.raw) == keys(CAPTURED_CHUNK)
            assert chunk.data["type"] == "chunk" and chunk.data["response_id"] == response_id
        assert keys(done.raw) == keys(CAPTURED_DONE)
        assert done.data == {"type": "done", "finish_reason": "completed", "response_id": response_id}
    else:
        assert start.raw == '{"type":"start"}'
        for chunk in chunks:
            assert keys(chunk.raw) == ["type", "content"] and chunk.data["type"] == "chunk"
        assert done.raw == '{"type":"done","finish_reason":"stop"}'
    assert chunks, "no chunk frames"
    return "".join(c.data["content"] for c in chunks)


def message_types(frames: list[Frame]) -> list[str]:
    return [f.data["type"] for f in frames if f.event == "message"]
