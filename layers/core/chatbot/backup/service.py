"""Export every table to a backup store and restore from it, safely.

A backup is a folder `<id>/` holding one `<table>.jsonl.gz` per table (one item per line, DynamoDB's typed
JSON, binary values base64) and a `manifest.json` written last: a folder without a manifest is incomplete
by definition. Tables are read page by page with parallel scan segments and written straight to a
compressed temporary file, so memory stays flat however large a table grows.

A restore checks the manifest and every file (SHA-256, size, item count) before it writes anything, takes a
pre-restore backup, then replaces each selected table's items with the backup's: the current items are
deleted and the backup's written, page by page in batches (unprocessed ones retried), so memory stays flat
here too; it ends by counting each table against the manifest. A dry run writes nothing and says, per
table, how many items would be added, replaced and removed (it holds the table's keys to say so).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from botocore.config import Config
from pydantic import BaseModel, ValidationError

from chatbot import aws, clock
from chatbot.config import Settings
from chatbot.errors import BadRequest, ChatbotError, NotFound
from chatbot.observability import get_logger, log_event

from .store import BackupStore, S3Store

FORMAT = "chatbot-dynamodb-backup"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
# Every `<name>_table` setting is a table of the stack: a table added to Settings is backed up too.
TABLES = tuple(field[: -len("_table")] for field in Settings.model_fields if field.endswith("_table"))
ID_FORMAT = "%Y%m%dT%H%M%SZ"
BATCH = 25  # BatchWriteItem's limit
# Items per scan page: DynamoDB caps a page at 1 MB, this caps it for small items too, so each segment holds
# at most this many items at a time whatever the table's size.
PAGE_ITEMS = 1000
CHUNK = 1 << 20

logger = get_logger("backup")
# A batch job, not a request: generous timeouts and retries. A page of a parallel scan comes back from
# DynamoDB in milliseconds, but from the local emulator (one process serving every segment) in seconds.
_CLIENT_CONFIG = Config(
    retries={"max_attempts": 8, "mode": "standard"},
    connect_timeout=5,
    read_timeout=120,
    max_pool_connections=16,
)
_client_lock = threading.Lock()
Progress = Callable[[str, int, int], None]  # table, items done, items in all


class BackupInvalid(BadRequest):
    """A backup that is damaged, incomplete or not ours: refused, nothing written."""

    code = "backup_invalid"


class RestoreMismatch(ChatbotError):
    """A restored table does not hold the manifest's item count (something wrote to it meanwhile?)."""

    code = "restore_count_mismatch"


class TableEntry(BaseModel):
    name: str  # the Settings name (`agents`): a backup restores into the same table of another stack
    table: str = ""  # the physical table it was exported from, for information
    file: str
    items: int
    bytes: int
    sha256: str


class Manifest(BaseModel):
    format: str
    schema_version: int
    backup_id: str
    source: str = "schedule"
    started_at: str
    finished_at: str
    tables: list[TableEntry]

    @property
    def items(self) -> int:
        return sum(t.items for t in self.tables)

    @property
    def size(self) -> int:
        return sum(t.bytes for t in self.tables)


class BackupSummary(BaseModel):
    backup_id: str
    complete: bool
    started_at: str | None = None
    finished_at: str | None = None
    source: str | None = None
    items: int | None = None
    bytes: int | None = None


class TableRestore(BaseModel):
    name: str
    items: int  # written from the backup (would be, in a dry run)
    before: int  # items the table held before
    new: int | None = None  # dry run only: backup items whose key the table lacks
    replaced: int | None = None  # dry run only: backup items whose key the table has
    removed: int | None = None  # dry run only: table items the backup lacks


class RestoreReport(BaseModel):
    backup_id: str
    dry_run: bool
    pre_restore_backup_id: str | None
    tables: list[TableRestore]


def table_names(settings: Settings) -> dict[str, str]:
    return {name: getattr(settings, f"{name}_table") for name in TABLES}


class BackupService:
    def __init__(
        self,
        store: BackupStore,
        tables: dict[str, str],
        *,
        segments: int = 4,
        now: Callable[[], datetime] = clock.now,
    ) -> None:
        self.store, self.tables, self.segments, self.now = store, tables, segments, now

    @classmethod
    def from_settings(cls, settings: Settings) -> BackupService:
        return cls(S3Store(settings.backup_bucket), table_names(settings))

    # -- backup --------------------------------------------------------------------------------------------
    def create(self, *, source: str = "schedule", progress: Progress | None = None) -> Manifest:
        started = self.now()
        backup_id = None
        t0 = time.perf_counter()
        try:  # every failure, from the first listing on, is logged: the BackupFailures alarm counts them
            backup_id = self._new_id(started)
            entries = []
            with tempfile.TemporaryDirectory(prefix="backup-") as tmp:
                for name, table in self.tables.items():
                    path = Path(tmp) / f"{name}.jsonl.gz"
                    entries.append(self._export(name, table, path, progress))
                    self.store.upload(f"{backup_id}/{path.name}", path)
                    path.unlink()  # disk stays as flat as memory: one table's file at a time
                manifest = Manifest(
                    format=FORMAT,
                    schema_version=SCHEMA_VERSION,
                    backup_id=backup_id,
                    source=source,
                    started_at=clock.iso(started),
                    finished_at=clock.iso(self.now()),
                    tables=entries,
                )
                path = Path(tmp) / MANIFEST
                path.write_text(manifest.model_dump_json(indent=2))
                self.store.upload(f"{backup_id}/{MANIFEST}", path)  # last: the backup is complete now
        except Exception as exc:
            log_event(logger, "backup_failed", "error", backup_id=backup_id, error=type(exc).__name__)
            raise
        log_event(
            logger,
            "backup_completed",
            backup_id=backup_id,
            source=source,
            tables=len(entries),
            items=manifest.items,
            bytes=manifest.size,
            duration_ms=round((time.perf_counter() - t0) * 1000, 1),
            store=self.store.describe(),
        )
        return manifest

    def _new_id(self, moment: datetime) -> str:
        base = moment.strftime(ID_FORMAT)
        taken = set(self.store.ids())
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        return candidate

    def _export(self, name: str, table: str, path: Path, progress: Progress | None) -> TableEntry:
        lock = threading.Lock()
        count = 0
        with gzip.open(path, "wb", compresslevel=6) as out:

            def segment(number: int) -> None:
                nonlocal count
                pages = _dynamodb().get_paginator("scan")
                for page in pages.paginate(
                    TableName=table,
                    Segment=number,
                    TotalSegments=self.segments,
                    ConsistentRead=True,
                    Limit=PAGE_ITEMS,
                ):
                    lines = b"".join(
                        json.dumps(_encode(item), separators=(",", ":")).encode() + b"\n"
                        for item in page.get("Items", [])
                    )
                    with lock:
                        out.write(lines)
                        count += len(page.get("Items", []))
                        if progress:
                            progress(name, count, 0)

            with ThreadPoolExecutor(self.segments) as pool:
                list(pool.map(segment, range(self.segments)))
        digest, size = _file_digest(path)
        return TableEntry(name=name, table=table, file=path.name, items=count, bytes=size, sha256=digest)

    # -- listing and retention -----------------------------------------------------------------------------
    def list(self) -> list[BackupSummary]:
        """Every backup, newest first; incomplete ones (no manifest) too."""
        out = []
        for backup_id in sorted(self.store.ids(), reverse=True):
            try:
                m = self._load_manifest(backup_id)
            except BackupInvalid:
                out.append(BackupSummary(backup_id=backup_id, complete=False))
                continue
            out.append(
                BackupSummary(
                    backup_id=backup_id,
                    complete=True,
                    started_at=m.started_at,
                    finished_at=m.finished_at,
                    source=m.source,
                    items=m.items,
                    bytes=m.size,
                )
            )
        return out

    def latest(self) -> str | None:
        return next((b.backup_id for b in self.list() if b.complete), None)

    def prune(self, keep_days: int) -> list[str]:
        """Delete backups older than `keep_days` (and incomplete ones older than a day); never the newest
        complete backup, whatever its age."""
        now = self.now()
        backups = self.list()
        newest = next((b.backup_id for b in backups if b.complete), None)
        deleted = []
        for b in backups:
            when = _id_time(b.backup_id)
            if b.backup_id == newest or when is None:
                continue
            limit = timedelta(days=keep_days) if b.complete else timedelta(days=1)
            if now - when > limit:
                self.store.delete(b.backup_id)
                deleted.append(b.backup_id)
        if deleted:
            log_event(logger, "backups_pruned", deleted=len(deleted), keep_days=keep_days)
        return deleted

    def keep_newest(self, count: int) -> list[str]:
        """Delete all but the `count` newest complete backups and any incomplete one but the newest (the
        local stack's snapshots, taken on every stop, are kept by number rather than by age)."""
        backups = self.list()
        complete = [b.backup_id for b in backups if b.complete]
        keep = set(complete[: max(1, count)])
        if backups:
            keep.add(backups[0].backup_id)  # it may be a snapshot being written right now
        deleted = [b.backup_id for b in backups if b.backup_id not in keep]
        for backup_id in deleted:
            self.store.delete(backup_id)
        return deleted

    # -- verification --------------------------------------------------------------------------------------
    def manifest(self, backup_id: str) -> Manifest:
        if "/" in backup_id or backup_id in ("", ".", ".."):
            raise BackupInvalid(f"Not a backup id: {backup_id!r}")
        if backup_id not in self.store.ids():
            raise NotFound(f"No backup {backup_id} in {self.store.describe()}", code="backup_not_found")
        return self._load_manifest(backup_id)

    def _load_manifest(self, backup_id: str) -> Manifest:
        try:
            with self.store.open(f"{backup_id}/{MANIFEST}") as stream:
                raw = stream.read()
        except FileNotFoundError:
            raise BackupInvalid(f"Backup {backup_id} has no manifest: it is incomplete") from None
        try:
            manifest = Manifest.model_validate_json(raw)
        except ValidationError:
            raise BackupInvalid(f"Backup {backup_id}: the manifest is not one of ours") from None
        if manifest.format != FORMAT or manifest.backup_id != backup_id:
            raise BackupInvalid(f"Backup {backup_id}: the manifest is not one of ours")
        if manifest.schema_version > SCHEMA_VERSION:
            raise BackupInvalid(
                f"Backup {backup_id} has schema version {manifest.schema_version}, newer than this code"
            )
        return manifest

    def verify(self, backup_id: str, tables: list[str] | None = None) -> Manifest:
        """The manifest, once every selected file matches it (size, SHA-256, items); else BackupInvalid."""
        manifest = self.manifest(backup_id)
        for entry in self._selected(manifest, tables):
            digest, size, lines = hashlib.sha256(), 0, 0
            inflate = zlib.decompressobj(wbits=31)
            try:
                with self.store.open(f"{backup_id}/{entry.file}") as stream:
                    while chunk := stream.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        while chunk:  # inflated a megabyte at a time: a page of zeros may grow a thousandfold
                            lines += inflate.decompress(chunk, CHUNK).count(b"\n")
                            chunk = inflate.unconsumed_tail
                    while pending := inflate.decompress(b"", CHUNK):  # what zlib still holds
                        lines += pending.count(b"\n")
            except FileNotFoundError:
                raise BackupInvalid(f"Backup {backup_id}: {entry.file} is missing") from None
            except zlib.error:
                raise BackupInvalid(f"Backup {backup_id}: {entry.file} is damaged") from None
            if size != entry.bytes or digest.hexdigest() != entry.sha256 or not inflate.eof:
                raise BackupInvalid(f"Backup {backup_id}: {entry.file} does not match its checksum")
            if lines != entry.items:
                raise BackupInvalid(
                    f"Backup {backup_id}: {entry.file} holds {lines} items, the manifest says {entry.items}"
                )
        return manifest

    def _selected(self, manifest: Manifest, tables: list[str] | None) -> list[TableEntry]:
        known = {t.name: t for t in manifest.tables}
        wanted = tables or [t.name for t in manifest.tables]
        unknown = [t for t in wanted if t not in known or t not in self.tables]
        if unknown:
            raise BackupInvalid(
                f"Not in backup {manifest.backup_id} or not a table here: {', '.join(unknown)}"
            )
        return [known[t] for t in wanted]

    # -- restore -------------------------------------------------------------------------------------------
    def restore(
        self,
        backup_id: str,
        *,
        tables: list[str] | None = None,
        dry_run: bool = False,
        pre_restore_backup: bool = True,
        progress: Progress | None = None,
    ) -> RestoreReport:
        """Make the selected tables (default: all in the backup) hold exactly the backup's items."""
        manifest = self.verify(backup_id, tables)  # before anything is written
        entries = self._selected(manifest, tables)
        if dry_run:
            results = [self._compare_table(backup_id, entry) for entry in entries]
            return RestoreReport(
                backup_id=backup_id, dry_run=True, pre_restore_backup_id=None, tables=results
            )
        pre = self.create(source=f"pre-restore of {backup_id}").backup_id if pre_restore_backup else None
        t0 = time.perf_counter()
        try:
            results = [self._restore_table(backup_id, entry, progress) for entry in entries]
        except Exception as exc:
            log_event(
                logger,
                "restore_failed",
                "error",
                backup_id=backup_id,
                pre_restore_backup_id=pre,
                error=type(exc).__name__,
            )
            raise
        log_event(
            logger,
            "restore_completed",
            backup_id=backup_id,
            pre_restore_backup_id=pre,
            tables=len(results),
            items=sum(r.items for r in results),
            removed=sum(r.before for r in results),
            duration_ms=round((time.perf_counter() - t0) * 1000, 1),
        )
        return RestoreReport(backup_id=backup_id, dry_run=False, pre_restore_backup_id=pre, tables=results)

    def _restore_table(self, backup_id: str, entry: TableEntry, progress: Progress | None) -> TableRestore:
        table = self.tables[entry.name]
        before = self._wipe(table)
        done = 0
        batch: list[dict[str, Any]] = []
        for item in self._items(backup_id, entry):
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == BATCH:
                _write(table, batch)
                batch = []
            done += 1
            if progress and done % 500 == 0:
                progress(entry.name, done, entry.items)
        if batch:
            _write(table, batch)
        if progress:
            progress(entry.name, done, entry.items)
        count = self._count(table)
        if count != entry.items:
            raise RestoreMismatch(
                f"Restored table {entry.name} holds {count} items, backup {backup_id} has {entry.items}"
            )
        return TableRestore(name=entry.name, items=done, before=before)

    def _compare_table(self, backup_id: str, entry: TableEntry) -> TableRestore:
        table = self.tables[entry.name]
        current = set(self._keys(table))
        before, new = len(current), 0
        for item in self._items(backup_id, entry):
            key = (_key_text(item["pk"]), _key_text(item["sk"]))
            if key in current:
                current.discard(key)
            else:
                new += 1
        return TableRestore(
            name=entry.name,
            items=entry.items,
            before=before,
            new=new,
            replaced=entry.items - new,
            removed=len(current),
        )

    def _wipe(self, table: str) -> int:
        """Delete every item of `table`, a page at a time; the number deleted."""
        deleted = 0
        pages = _dynamodb().get_paginator("scan")
        for page in pages.paginate(TableName=table, ProjectionExpression="pk, sk", ConsistentRead=True):
            keys = page.get("Items", [])
            for i in range(0, len(keys), BATCH):
                _write(table, [{"DeleteRequest": {"Key": key}} for key in keys[i : i + BATCH]])
            deleted += len(keys)
        return deleted

    def _items(self, backup_id: str, entry: TableEntry) -> Iterator[dict[str, Any]]:
        with self.store.open(f"{backup_id}/{entry.file}") as raw, gzip.open(raw, "rb") as lines:
            for line in lines:
                yield _decode(json.loads(line))

    def _keys(self, table: str) -> Iterator[tuple[str, str]]:
        pages = _dynamodb().get_paginator("scan")
        for page in pages.paginate(TableName=table, ProjectionExpression="pk, sk", ConsistentRead=True):
            for item in page.get("Items", []):
                yield _key_text(item["pk"]), _key_text(item["sk"])

    def _count(self, table: str) -> int:
        pages = _dynamodb().get_paginator("scan")
        return sum(p["Count"] for p in pages.paginate(TableName=table, Select="COUNT", ConsistentRead=True))


# -- helpers -----------------------------------------------------------------------------------------------
@cache
def _dynamodb() -> Any:
    with _client_lock:  # segment threads ask at once; creating a client is not thread-safe
        return aws.session().client("dynamodb", config=_CLIENT_CONFIG)


aws.on_reset(_dynamodb.cache_clear)


def _write(table: str, requests: list[dict[str, Any]]) -> None:
    """One BatchWriteItem, resending what DynamoDB left unprocessed with a growing pause."""
    pending = {table: requests}
    for attempt in range(10):
        resp = _dynamodb().batch_write_item(RequestItems=pending)
        pending = resp.get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(min(2.0, 0.05 * 2**attempt))
    raise RuntimeError(f"DynamoDB left {len(pending.get(table, []))} writes to {table} unprocessed")


def _key_text(value: dict[str, Any]) -> str:
    return str(value.get("S") or value.get("N") or "")


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    """An item in DynamoDB's typed JSON, binary values base64 (the client hands them over as bytes)."""
    return {name: _convert(value, base64.b64encode, bytes.decode) for name, value in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _convert(value, str.encode, base64.b64decode) for name, value in item.items()}


def _convert(
    value: dict[str, Any], first: Callable[[Any], Any], then: Callable[[Any], Any]
) -> dict[str, Any]:
    """One typed attribute value with its binary parts converted (`then(first(b))`), maps and lists deeply."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": then(first(inner))}
    if kind == "BS":
        return {"BS": [then(first(b)) for b in inner]}
    if kind == "M":
        return {"M": {k: _convert(v, first, then) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_convert(v, first, then) for v in inner]}
    return value


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _id_time(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id.split("-")[0], ID_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
