"""The functions' log lines as written: the Powertools loggers' stream swapped for a buffer while inside."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from chatbot.observability import get_logger
from infra.local.observability import powertools_handlers

# Every logger name the code base passes to get_logger (created first, so none is missed).
SERVICES = (
    "chat",
    "admin",
    "webhook",
    "worker",
    "jobs",
    "metrics_push",
    "backup",
    "rotation",
    "chatbot",
    "storage",
)


class _Buffer(io.TextIOBase):
    def __init__(self) -> None:
        self.parts: list[str] = []
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.parts.append(text)
        return len(text)

    def text(self) -> str:
        with self._lock:
            return "".join(self.parts)


@contextmanager
def powertools_output() -> Iterator[Callable[[], str]]:
    """Yields a function returning everything the Powertools loggers wrote so far (raw text)."""
    for service in SERVICES:
        get_logger(service)
    buffer = _Buffer()
    saved = [(handler, handler.stream) for handler in powertools_handlers()]
    # Plain assignment, not setStream(): that flushes the old stream, which may be a capture file pytest has
    # closed since the logger was created by an earlier test.
    for handler, _ in saved:
        handler.stream = buffer
    try:
        yield buffer.text
    finally:
        for handler, stream in saved:
            handler.stream = stream


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
