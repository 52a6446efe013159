"""Backups: list, create, verify and restore (super-admins: a restore replaces every item of its tables).

These run inside the admin request (29 s on AWS): fine for the tables of a typical deployment. For very
large tables use the backup function or `python -m chatbot.backup` (docs/operations/backups.md).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from chatbot.admin.framework import ActionContext, actions, requires
from chatbot.backup import BackupService, BackupSummary, Manifest, RestoreReport
from chatbot.errors import BadRequest
from chatbot.models.auth import Permission

# Backups hold every secret-adjacent record (API key hashes, users): super-admin only, like token rotation.
PERMISSION: Permission = "rotate_tokens"


class BackupList(BaseModel):
    backups: list[BackupSummary]
    retention_days: int


class BackupCreated(BaseModel):
    manifest: Manifest
    pruned: list[str] = Field(description="Backups deleted by the retention rule after this one")


class BackupIdParams(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="The backup id (its UTC start time)")


class RestoreRequest(BaseModel):
    tables: list[str] | None = Field(None, description="Only these tables (e.g. agents); default all")
    dry_run: bool = Field(False, description="Say what would change; write nothing")
    confirm: bool = Field(False, description="Must be true unless dry_run: the tables' items are replaced")


@actions.action(
    "list_backups",
    "GET",
    "/admin/backups",
    access=requires(PERMISSION),
    resource="system",
    response=BackupList,
)
def list_backups(ctx: ActionContext, params: None, body: None) -> BackupList:
    """Backups in the backup bucket, newest first (incomplete ones too: they have no manifest)."""
    service = BackupService.from_settings(ctx.settings)
    return BackupList(backups=service.list(), retention_days=ctx.settings.backup_retention_days)


@actions.action(
    "create_backup",
    "POST",
    "/admin/backups",
    access=requires(PERMISSION),
    resource="system",
    response=BackupCreated,
    status_code=201,
    audit="backup.create",
)
def create_backup(ctx: ActionContext, params: None, body: None) -> BackupCreated:
    """Back up every table now, then prune backups older than the retention (never the newest)."""
    service = BackupService.from_settings(ctx.settings)
    manifest = service.create(source="admin")
    ctx.resource_id = manifest.backup_id
    return BackupCreated(manifest=manifest, pruned=service.prune(ctx.settings.backup_retention_days))


@actions.action(
    "verify_backup",
    "GET",
    "/admin/backups/{id}",
    access=requires(PERMISSION),
    resource="system",
    params=BackupIdParams,
    response=Manifest,
    errors=(400,),
)
def verify_backup(ctx: ActionContext, params: BackupIdParams, body: None) -> Manifest:
    """A backup's manifest, once its files match it (size, SHA-256, item counts).

    400 `backup_invalid` when it is damaged, incomplete or not one of ours.
    """
    return BackupService.from_settings(ctx.settings).verify(params.id)


@actions.action(
    "restore_backup",
    "POST",
    "/admin/backups/{id}/restore",
    access=requires(PERMISSION),
    resource="system",
    params=BackupIdParams,
    body=RestoreRequest,
    response=RestoreReport,
    audit="backup.restore",
    errors=(400, 500),
)
def restore_backup(ctx: ActionContext, params: BackupIdParams, body: RestoreRequest) -> RestoreReport:
    """Replace the items of every table (or `tables`) with the backup's.

    Verifies the backup first (400 `backup_invalid`, nothing written, when it is damaged, incomplete or
    foreign), takes a pre-restore backup (its id is in the answer), then restores and checks the counts.
    `dry_run` writes nothing and says per table how many items would be new, replaced and removed;
    otherwise `confirm: true` is required.
    """
    if not body.dry_run and not body.confirm:
        raise BadRequest(
            "A restore replaces the tables' items: send confirm=true (or dry_run=true to see the changes)",
            code="confirmation_required",
        )
    service = BackupService.from_settings(ctx.settings)
    return service.restore(params.id, tables=body.tables, dry_run=body.dry_run)
