"""Backup and restore on the local emulator: 10,000 and 100,000 items, items/s and peak memory of each.

The items (about 330 bytes, like conversation messages) fill one table; the other tables of the template
are backed up and restored too, empty. A run: fill, back up every table to the bucket, drop and recreate
the tables (empty), restore every table, compare counts. Memory: the peak of Python's heap during each
operation (tracemalloc: exact, and blind to what happened before), and for information the growth of this
process's peak resident size (the kernel's high-water mark, reset before each operation; it also counts
thread stacks, zlib's buffers and the allocator's fragmentation). The heap peak must not grow with the item
count: the 100k peak stays within BENCH_MEMORY_RATIO (default 1.5) of the 10k peak plus 2 MB. A small
warm-up round runs first, so neither size pays for first-use costs (clients, thread pools).

Targets (docs/performance.md, DESIGN): memory flat; 100k items each way within a minute. BENCH_ENFORCE=1
fails when a run is slower; BENCH_BACKUP_SIZES (default "10000,100000") changes the sizes.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chatbot import aws
from chatbot.backup import BackupService, S3Store, table_names
from chatbot.config import get_settings
from tests.conftest import provision_into_emulator, reset_caches

TABLE = "conversations"
BATCH = 25
MEMORY_RATIO = float(os.environ.get("BENCH_MEMORY_RATIO", "1.5"))
MEMORY_SLACK_MB = 2.0
TARGET_SECONDS = 60.0


@pytest.fixture
def emulator_stack(emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    provision_into_emulator(emulator.url, monkeypatch, f"bench-backup-{int(time.time())}")
    yield
    reset_caches()


def _memory_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _measure(operation: Callable[[], Any]) -> tuple[Any, float, float, float]:
    """(result, seconds, Python heap peak MB, resident peak growth MB) of `operation`."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets the high-water mark (VmHWM) to the current resident size
    start_kb = _memory_kb("VmRSS")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        result = operation()
        seconds = time.perf_counter() - started
        heap_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, seconds, heap_peak / 2**20, (_memory_kb("VmHWM") - start_kb) / 1024


def _fill(table: str, start: int, stop: int) -> None:
    ddb = aws.client("dynamodb")

    def write(first: int) -> None:
        items = [
            {
                "pk": {"S": f"CONV#{i // 20:07d}"},
                "sk": {"S": f"MSG#{i:09d}"},
                "role": {"S": "user" if i % 2 else "assistant"},
                "content": {"S": f"message {i} " + "lorem ipsum dolor sit amet " * 9},
                "tokens": {"N": str(i % 997)},
                "ttl": {"N": str(1_900_000_000 + i)},
                "version": {"N": "1"},
            }
            for i in range(first, min(first + BATCH, stop))
        ]
        pending = {table: [{"PutRequest": {"Item": item}} for item in items]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(start, stop, BATCH)))


def _recreate_empty(tables: list[str]) -> None:
    """Drop and recreate the tables: faster than deleting 100,000 items one request per 25."""
    ddb = aws.client("dynamodb")
    for name in tables:
        desc = ddb.describe_table(TableName=name)["Table"]
        ddb.delete_table(TableName=name)
        spec: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": desc["AttributeDefinitions"],
            "KeySchema": desc["KeySchema"],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if desc.get("GlobalSecondaryIndexes"):
            keep = ("IndexName", "KeySchema", "Projection")
            spec["GlobalSecondaryIndexes"] = [{k: g[k] for k in keep} for g in desc["GlobalSecondaryIndexes"]]
        ddb.create_table(**spec)


def _run(service: BackupService, count: int) -> dict[str, float]:
    manifest, backup_s, backup_mb, backup_rss = _measure(lambda: service.create(source="bench"))
    assert {t.name: t.items for t in manifest.tables}[TABLE] == count
    _recreate_empty(list(service.tables.values()))
    restore = lambda: service.restore(manifest.backup_id, pre_restore_backup=False)  # noqa: E731
    report, restore_s, restore_mb, restore_rss = _measure(restore)
    assert {t.name: t.items for t in report.tables}[TABLE] == count  # and the restore counted the table
    return {
        "items": count,
        "backup_s": backup_s,
        "backup_per_s": count / backup_s,
        "backup_mb": backup_mb,
        "backup_rss": backup_rss,
        "restore_s": restore_s,
        "restore_per_s": count / restore_s,
        "restore_mb": restore_mb,
        "restore_rss": restore_rss,
        "file_mb": manifest.size / 1e6,
    }


@pytest.mark.timeout(3600)
def test_backup_and_restore_memory_stays_flat_as_tables_grow(emulator_stack):
    sizes = sorted(int(s) for s in os.environ.get("BENCH_BACKUP_SIZES", "10000,100000").split(",") if s)
    settings = get_settings()
    service = BackupService(S3Store(settings.backup_bucket), table_names(settings))
    table = service.tables[TABLE]
    _fill(table, 0, 500)
    _run(service, 500)  # warm-up
    rows, filled = [], 500
    for count in sizes:
        fill_started = time.perf_counter()
        _fill(table, filled, count)  # the restore left `filled` items in place; add the rest
        filled = count
        print(f"\nfilled {count} items in {time.perf_counter() - fill_started:.1f} s", flush=True)
        rows.append(_run(service, count))

    print("\n\nBackup and restore, every table of the template (one holds the items), local emulator")
    print("heap = Python heap peak (tracemalloc), rss = growth of the process's peak resident size, MB")
    print(
        f"{'items':>7} | {'file MB':>7} | {'backup s':>8} | {'items/s':>7} | {'heap':>5} | {'rss':>5} | "
        f"{'restore s':>9} | {'items/s':>7} | {'heap':>5} | {'rss':>5}"
    )
    for r in rows:
        print(
            f"{r['items']:>7} | {r['file_mb']:>7.2f} | {r['backup_s']:>8.1f} | {r['backup_per_s']:>7.0f} | "
            f"{r['backup_mb']:>5.1f} | {r['backup_rss']:>5.1f} | {r['restore_s']:>9.1f} | "
            f"{r['restore_per_s']:>7.0f} | {r['restore_mb']:>5.1f} | {r['restore_rss']:>5.1f}"
        )
    small, large = rows[0], rows[-1]
    for op in ("backup", "restore"):
        limit = small[f"{op}_mb"] * MEMORY_RATIO + MEMORY_SLACK_MB
        assert large[f"{op}_mb"] <= limit, f"{op} peak memory grew with the item count: {small} vs {large}"
    if os.environ.get("BENCH_ENFORCE") == "1" and large["items"] >= 100_000:
        assert large["backup_s"] <= TARGET_SECONDS and large["restore_s"] <= TARGET_SECONDS, large
