"""The local stack's state across restarts: a backup of every table on stop, restored on the next start.

The snapshots are ordinary backups (`chatbot.backup`, same format and checks) in a folder:
`.local/snapshots/<id>/` by default, `LOCAL_SNAPSHOTS=PATH` elsewhere, `LOCAL_SNAPSHOTS=off` for none (the
test harness turns them off, so no test sees a developer's data). The newest few are kept.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.backup import BackupService

log = logging.getLogger("infra.local.snapshots")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / ".local" / "snapshots"
KEEP = 5
_OFF = ("off", "0", "false", "no", "none")


def snapshot_dir() -> Path | None:
    """Where snapshots live, or None when they are off (`LOCAL_SNAPSHOTS`)."""
    value = os.environ.get("LOCAL_SNAPSHOTS", "").strip()
    if value.lower() in _OFF:
        return None
    return Path(value).expanduser() if value else DEFAULT_DIR


def restore_latest(directory: Path) -> str | None:
    """Restore the newest complete snapshot into the (empty, just provisioned) tables; its id, or None when
    there is none. Costs a directory listing when there is nothing to restore. Raises when it is damaged."""
    if not directory.is_dir() or not any(directory.iterdir()):
        return None
    started = time.perf_counter()
    service = _service(directory)
    latest = service.latest()
    if latest is None:
        return None
    manifest = service.manifest(latest)
    # A table the template no longer has is skipped; one it gained since stays empty.
    tables = [t.name for t in manifest.tables if t.name in service.tables]
    report = service.restore(latest, tables=tables, pre_restore_backup=False)
    log.info(
        "restored snapshot %s from %s: %d items in %.2f s",
        latest,
        directory,
        sum(t.items for t in report.tables),
        time.perf_counter() - started,
    )
    return latest


def take(directory: Path) -> str:
    """Back up every table into `directory` and keep the newest few snapshots; the new snapshot's id."""
    started = time.perf_counter()
    service = _service(directory)
    manifest = service.create(source="local-stack")
    service.keep_newest(KEEP)
    log.info(
        "snapshot %s of %d items in %s (%.2f s)",
        manifest.backup_id,
        manifest.items,
        directory,
        time.perf_counter() - started,
    )
    return manifest.backup_id


def _service(directory: Path) -> BackupService:
    from chatbot.backup import BackupService, DirStore, table_names
    from chatbot.config import get_settings

    return BackupService(DirStore(directory), table_names(get_settings()))
