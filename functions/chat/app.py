"""Chat Lambda: a FastAPI app behind Mangum; locally the same ASGI app runs under uvicorn.

Imports stay light (no openai SDK at import time) for cold starts; the chat routes load their services
when first used.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from mangum import Mangum

from chatbot import http
from chatbot.observability import get_logger

logger = get_logger("chat")
app = FastAPI(title="Chatbot chat API", openapi_url=None, docs_url=None, redoc_url=None)
http.install(app, service="chat")


@app.get("/health")
def liveness() -> dict[str, str]:
    return {"status": "ok"}


try:
    from . import routes_chat, routes_openai
except ImportError:  # on Lambda the function folder itself is the import root
    import routes_chat  # type: ignore[no-redef]
    import routes_openai  # type: ignore[no-redef]

app.include_router(routes_chat.router)
app.include_router(routes_openai.router)


_asgi = Mangum(app, lifespan="off")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _asgi(event, context)  # type: ignore[no-any-return]
