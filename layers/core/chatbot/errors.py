"""Domain errors. Services raise these; one table (chatbot.http) maps them to HTTP responses.

Each error carries a stable machine `code`, the HTTP `status` that means the same thing, and a message
safe to show a client (never a secret, never a stack trace).
"""

from __future__ import annotations

from typing import Any


class ChatbotError(Exception):
    status: int = 500
    code: str = "internal_error"
    default_message: str = "Internal server error"

    def __init__(self, message: str | None = None, *, code: str | None = None, details: Any = None) -> None:
        self.message = message or self.default_message
        if code:
            self.code = code
        self.details = details
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "code": self.code, "status": self.status}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


class BadRequest(ChatbotError):
    status, code, default_message = 400, "bad_request", "Bad request"


class ValidationFailed(ChatbotError):
    status, code, default_message = 422, "validation_error", "Validation failed"


class Unauthorized(ChatbotError):
    status, code, default_message = 401, "unauthorized", "Authentication required"


class Forbidden(ChatbotError):
    status, code, default_message = 403, "forbidden", "Insufficient permissions"


class NotFound(ChatbotError):
    status, code, default_message = 404, "not_found", "Not found"


class MethodNotAllowed(ChatbotError):
    status, code, default_message = 405, "method_not_allowed", "Method not allowed"


class Conflict(ChatbotError):
    status, code, default_message = 409, "conflict", "Conflict"


class PayloadTooLarge(ChatbotError):
    status, code, default_message = 413, "payload_too_large", "Request body too large"


class RateLimited(ChatbotError):
    status, code, default_message = 429, "rate_limited", "Rate limit exceeded"

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))


class QuotaExceeded(RateLimited):
    code, default_message = "quota_exceeded", "Usage quota exceeded"


class UpstreamError(ChatbotError):
    status, code, default_message = 502, "upstream_error", "An error occurred while processing your request."


class UpstreamTimeout(UpstreamError):
    status, code = 504, "upstream_timeout"


class ServiceUnavailable(ChatbotError):
    status, code, default_message = 503, "service_unavailable", "Service unavailable"


class PersistenceError(ChatbotError):
    """An unexpected storage failure, wrapped once at the repository boundary."""

    status, code, default_message = 503, "persistence_error", "Storage temporarily unavailable"
