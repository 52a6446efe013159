"""`python -m chatbot.backup backup|list|verify|restore|prune`: the backups of every table, by hand.

Reads the functions' environment (table names, BACKUP_BUCKET) like the functions do; with `--dir PATH`
backups live in that folder instead of the bucket (the local stack keeps its snapshots in
`.local/snapshots`). Exit status: 0 done, 1 refused or failed (nothing written when refused), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from chatbot.config import get_settings
from chatbot.errors import ChatbotError

from .service import BackupService, RestoreReport, table_names
from .store import DirStore, S3Store


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chatbot.backup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, help="a local folder of backups instead of s3://BACKUP_BUCKET")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backup", help="back up every table now")
    listing = commands.add_parser("list", help="the backups, newest first")
    listing.add_argument("--json", action="store_true", help="as JSON")
    verify = commands.add_parser("verify", help="check a backup's manifest and every file's checksum")
    verify.add_argument("backup_id")
    verify.add_argument("--tables", nargs="+", metavar="TABLE")
    restore = commands.add_parser("restore", help="replace the tables' items with a backup's")
    restore.add_argument("backup_id")
    restore.add_argument("--tables", nargs="+", metavar="TABLE", help="only these (e.g. agents prompts)")
    restore.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    restore.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    restore.add_argument(
        "--no-pre-restore-backup", action="store_true", help="skip the backup taken before writing"
    )
    prune = commands.add_parser("prune", help="delete backups older than the retention")
    prune.add_argument("--keep-days", type=int, help="default BACKUP_RETENTION_DAYS (7)")
    return parser.parse_args(argv)


class ProgressBar:
    """`table [#####.....] done/total` on one stderr line (a line per table when stderr is no terminal)."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.live = stream, stream.isatty()

    def __call__(self, table: str, done: int, total: int) -> None:
        finished = total > 0 and done >= total
        if not self.live and not finished:
            return
        filled = self.WIDTH * done // total if total else self.WIDTH
        bar = "#" * filled + "." * (self.WIDTH - filled)
        end = "\n" if finished else ""
        self.stream.write(f"\r{table:<16} [{bar}] {done}/{total}{end}")
        self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if getattr(args, "tables", None):  # `--tables agents prompts` or `--tables agents,prompts`
        args.tables = [name for arg in args.tables for name in arg.split(",") if name]
    try:
        settings = get_settings()
    except ValidationError as exc:
        missing = sorted(str(e["loc"][0]).upper() for e in exc.errors() if e["type"] == "missing")
        print(
            f"error: the functions' environment is not set (missing: {', '.join(missing)})", file=sys.stderr
        )
        return 2
    store = DirStore(args.dir) if args.dir else S3Store(settings.backup_bucket)
    service = BackupService(store, table_names(settings))
    out, err = sys.stdout, sys.stderr
    try:
        if args.command == "backup":
            manifest = service.create(source="cli")
            print(f"backup {manifest.backup_id}: {manifest.items} items, {manifest.size} bytes", file=out)
        elif args.command == "list":
            backups = service.list()
            if args.json:
                print(json.dumps([b.model_dump() for b in backups], indent=2), file=out)
            for b in [] if args.json else backups:
                state = f"{b.items} items  {b.bytes} bytes  {b.source}" if b.complete else "INCOMPLETE"
                print(f"{b.backup_id}  {state}", file=out)
        elif args.command == "verify":
            manifest = service.verify(args.backup_id, args.tables)
            print(f"backup {manifest.backup_id} is intact: {manifest.items} items", file=out)
        elif args.command == "prune":
            deleted = service.prune(args.keep_days or settings.backup_retention_days)
            print(f"deleted {len(deleted)} backups" + (": " + " ".join(deleted) if deleted else ""), file=out)
        else:
            return _restore(service, args, out, err)
    except ChatbotError as exc:
        print(f"error: {exc.message}", file=err)
        return 1
    return 0


def _restore(service: BackupService, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Verified before the question, so nobody confirms a restore that would be refused anyway.
    manifest = service.verify(args.backup_id, args.tables)
    if args.dry_run:
        _print_report(service.restore(args.backup_id, tables=args.tables, dry_run=True), out)
        return 0
    tables = args.tables or [t.name for t in manifest.tables]
    if not args.yes:
        question = (
            f"Replace every item of {', '.join(tables)} ({service.store.describe()}) with backup "
            f"{manifest.backup_id} ({manifest.finished_at})? [y/N] "
        )
        print(question, end="", file=err, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            print("aborted: nothing written", file=err)
            return 1
    report = service.restore(
        args.backup_id,
        tables=args.tables,
        pre_restore_backup=not args.no_pre_restore_backup,
        progress=ProgressBar(err),
    )
    _print_report(report, out)
    return 0


def _print_report(report: RestoreReport, out: TextIO) -> None:
    if report.dry_run:
        print(f"restore of {report.backup_id}, dry run: nothing written", file=out)
        for t in report.tables:
            print(
                f"  {t.name:<16} now {t.before:>7}  after {t.items:>7}  "
                f"(new {t.new}, replaced {t.replaced}, removed {t.removed})",
                file=out,
            )
        return
    print(f"restored {report.backup_id} (pre-restore backup: {report.pre_restore_backup_id})", file=out)
    for t in report.tables:
        print(f"  {t.name:<16} {t.before:>7} items before, {t.items:>7} now", file=out)


if __name__ == "__main__":
    sys.exit(main())
