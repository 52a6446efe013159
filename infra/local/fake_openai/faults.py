"""Faults a request can be given: `<kind>[:<arg>]`.

400…599        that HTTP status with an OpenAI error body (`429:<s>` sets retry-after to s seconds)
quota          429 `insufficient_quota` (no retry-after: retrying does not help)
timeout[:<s>]  answer nothing until the client gives up, the server stops or s seconds pass (then 504)
disconnect[:<n>]  streams: n token chunks, then the connection drops; others: headers, then it drops
error_event    streams: a few tokens, then an in-stream error; others: 500
none           no fault (useful in a queue: "fail the second call only")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KINDS = ("status", "quota", "timeout", "disconnect", "error_event", "none")

_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Fake fault: bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to perform this request.", "invalid_request_error", None),
    404: ("The requested resource does not exist.", "invalid_request_error", None),
    409: ("The resource was modified concurrently.", "invalid_request_error", None),
    422: ("Fake fault: unprocessable request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests. Please try again in a moment.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The server is overloaded or not ready yet.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


@dataclass(frozen=True)
class Fault:
    kind: str
    status: int | None = None
    arg: float | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """`Fault` from its text form; `ValueError` when the text names no fault."""
        name, _, raw_arg = str(spec).strip().lower().partition(":")
        arg = float(raw_arg) if raw_arg.strip() else None
        if name.isdigit():
            status = int(name)
            if not 400 <= status <= 599:
                raise ValueError(f"fault status must be 400-599, got {status}")
            return cls("status", status=status, arg=arg)
        if name not in KINDS or name == "status":
            raise ValueError(f"unknown fault {spec!r}")
        return cls(name, status=429 if name == "quota" else None, arg=arg)

    def __str__(self) -> str:
        head = str(self.status) if self.kind == "status" else self.kind
        return head if self.arg is None else f"{head}:{self.arg:g}"


def error_body(
    message: str, error_type: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def status_error(status: int) -> dict[str, Any]:
    message, error_type, code = _STATUS_ERRORS.get(
        status,
        (f"Fake fault: HTTP {status}.", "server_error" if status >= 500 else "invalid_request_error", None),
    )
    return error_body(message, error_type, code=code)


def quota_error() -> dict[str, Any]:
    return error_body(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        code="insufficient_quota",
    )
