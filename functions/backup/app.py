"""Backup (EventBridge schedule, or invoked on demand): exports every table to S3, then prunes old backups.

`{"action": "restore", "backup_id": "...", "tables": [...]}` restores one instead (verified first, after a
pre-restore backup): for restores too large for the admin API's 29 s.
"""

from __future__ import annotations

from typing import Any

from chatbot.backup import BackupService
from chatbot.config import get_settings
from chatbot.observability import get_logger

logger = get_logger("backup")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = get_settings()
    service = BackupService.from_settings(settings)
    if event.get("action") == "restore":
        report = service.restore(str(event.get("backup_id") or ""), tables=event.get("tables") or None)
        return report.model_dump()
    source = "schedule" if event.get("source") == "aws.events" else str(event.get("source") or "manual")
    manifest = service.create(source=source)
    pruned = service.prune(settings.backup_retention_days)
    return {
        "backup_id": manifest.backup_id,
        "items": manifest.items,
        "bytes": manifest.size,
        "pruned": pruned,
    }
