"""Backup (EventBridge schedule): exports every table to S3 (the export comes with the backup service)."""

from __future__ import annotations

from typing import Any

from chatbot.config import get_settings
from chatbot.observability import get_logger, log_event

logger = get_logger("backup")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    log_event(logger, "backup_skipped", bucket=settings.backup_bucket, reason="export not implemented yet")
    return {"status": "skipped", "bucket": settings.backup_bucket}
