"""Webhook Lambda: `POST /webhooks/openai` (API Gateway HTTP API, payload format 2.0).

Thin: reads the raw body (the signature covers its exact bytes), hands body and headers to the webhook
service and maps domain errors to `{"error": {...}}` with their status. Answers as soon as the event is
stored and its job enqueued; the worker applies it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from chatbot.errors import BadRequest, ChatbotError, MethodNotAllowed
from chatbot.observability import get_logger
from chatbot.services.webhooks import get_webhook_service

logger = get_logger("webhook")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        method = (event.get("requestContext", {}).get("http", {}).get("method") or "POST").upper()
        if method != "POST":
            raise MethodNotAllowed("Method not allowed")
        result = get_webhook_service().receive(_raw_body(event), event.get("headers") or {})
    except ChatbotError as err:
        return _response(err.status, err.envelope())
    return _response(200, result)


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("Invalid request body encoding", code="invalid_body") from None
    return body.encode() if isinstance(body, str) else bytes(body)


def _response(status: int, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(payload, separators=(",", ":")),
    }
