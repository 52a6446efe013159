"""Admin API Lambda: the FastAPI app from `chatbot.admin` behind Mangum (API Gateway HTTP API v2 events)."""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from chatbot.admin.app import create_app
from chatbot.observability import get_logger

logger = get_logger("admin")
app = create_app()
_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _asgi(event, context)  # type: ignore[no-any-return]
