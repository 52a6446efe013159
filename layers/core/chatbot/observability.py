"""Logger / Metrics / Tracer for every function, with one redaction rule for secrets.

Log lines are JSON (Powertools Logger): timestamp, level, service, function, request id, correlation id,
plus `event` (a stable event name that template.yaml's metric filters match) and its context.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

NAMESPACE = "Chatbot"
REDACTED = "[REDACTED]"

# Keys whose values never reach a log line (matched case-insensitively, anywhere in a key).
_SENSITIVE_KEY = re.compile(
    r"authorization|token|api[_-]?key|secret|password|signature|cookie|credential|file_data|^key$",
    re.IGNORECASE,
)
# Values that look like credentials even under an innocent key.
_SENSITIVE_VALUE = re.compile(r"(Bearer\s+\S+|chatbot_[0-9a-f]{16,}|sk-[A-Za-z0-9_-]{16,}|whsec_\S+)")
_MESSAGE_KEYS = {"message_text", "content", "prompt_text", "input_text"}
# Token *counts* (prompt_tokens, total_tokens, ...) are metrics, not credentials.
_COUNT_KEY = re.compile(r"(^|_)tokens$", re.IGNORECASE)


def redact(value: Any, *, keep_message_text: bool = False, _depth: int = 0) -> Any:
    """Return `value` with secrets replaced; recursion is bounded so hostile input cannot blow the stack."""
    if _depth > 12:
        return REDACTED
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            k = str(key)
            is_count = _COUNT_KEY.search(k) and isinstance(item, int | float) and not isinstance(item, bool)
            sensitive = _SENSITIVE_KEY.search(k) and not is_count
            if sensitive or (not keep_message_text and k in _MESSAGE_KEYS):
                out[k] = REDACTED if item not in (None, "") else item
            else:
                out[k] = redact(item, keep_message_text=keep_message_text, _depth=_depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact(v, keep_message_text=keep_message_text, _depth=_depth + 1) for v in value]
    if isinstance(value, str):
        return _SENSITIVE_VALUE.sub(REDACTED, value)
    return value


class RedactingFormatter(LambdaPowertoolsFormatter):
    def serialize(self, log: dict[str, Any]) -> str:
        return super().serialize(redact(log, keep_message_text=True))


@cache
def get_logger(service: str) -> Logger:
    return Logger(service=service, logger_formatter=RedactingFormatter(), use_rfc3339=True)


@cache
def get_metrics(service: str) -> Metrics:
    return Metrics(namespace=NAMESPACE, service=service)


@cache
def get_tracer(service: str) -> Tracer:
    return Tracer(service=service)


def log_event(logger: Logger, event: str, level: str = "info", **context: Any) -> None:
    """Log a named event; metric filters in template.yaml match on `$.event` and these context keys."""
    getattr(logger, level)(event, extra={"event": event, **context})
