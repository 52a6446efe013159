"""Backups of every table: export to S3 (or a local folder), retention, verified restore.

`python -m chatbot.backup --help` is the command line; the backup function and the admin actions call
`BackupService`.
"""

from __future__ import annotations

from .service import (
    BackupInvalid,
    BackupService,
    BackupSummary,
    Manifest,
    RestoreMismatch,
    RestoreReport,
    table_names,
)
from .store import BackupStore, DirStore, S3Store

__all__ = [
    "BackupInvalid",
    "BackupService",
    "BackupStore",
    "BackupSummary",
    "DirStore",
    "Manifest",
    "RestoreMismatch",
    "RestoreReport",
    "S3Store",
    "table_names",
]
