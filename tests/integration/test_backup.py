"""Backups of every table and verified restores, against moto with the template's tables and bucket."""

from __future__ import annotations

import gzip
import io
import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chatbot.backup import BackupInvalid, BackupService, DirStore, S3Store, table_names
from chatbot.backup.__main__ import main as cli
from chatbot.config import get_settings


def service(**kwargs: Any) -> BackupService:
    settings = get_settings()
    return BackupService(S3Store(settings.backup_bucket), table_names(settings), **kwargs)


def fill(rng: random.Random, per_table: int = 12) -> dict[str, list[dict[str, Any]]]:
    """Items with every attribute type (and one near the 400 KB item limit) in every table."""
    ddb = boto3.resource("dynamodb")
    written: dict[str, list[dict[str, Any]]] = {}
    for name, table in table_names(get_settings()).items():
        items = []
        for i in range(per_table):
            items.append(
                {
                    "pk": f"{name}#{i % 4}",
                    "sk": f"item#{i:04d}",
                    "s": f"text {rng.random()} ünïcødé ✓",
                    "n": Decimal(str(rng.randint(-(10**12), 10**12))) / 1000,
                    "b": bytes(rng.randrange(256) for _ in range(16)),
                    "bool": i % 2 == 0,
                    "null": None,
                    "m": {"nested": {"deep": [1, "two", b"\x00\x01", {"B": "not binary: a map key"}]}},
                    "l": [Decimal(1), "x", True, None, {"k": "v"}],
                    "ss": {"a", f"b{i}"},
                    "ns": {Decimal(1), Decimal("2.5"), Decimal(i + 3)},
                    "bs": {b"\x01", b"\xff" * (i + 1)},
                }
            )
        items.append({"pk": f"{name}#big", "sk": "big", "blob": "x" * 395_000})
        with ddb.Table(table).batch_writer() as batch:
            for item in items:
                batch.put_item(Item=item)
        written[name] = items
    return written


def snapshot() -> dict[str, list[dict[str, Any]]]:
    ddb = boto3.client("dynamodb")
    out = {}
    for name, table in table_names(get_settings()).items():
        items = [i for page in ddb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]]
        out[name] = sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
    return out


def wipe() -> None:
    ddb = boto3.resource("dynamodb")
    for table in table_names(get_settings()).values():
        t = ddb.Table(table)
        with t.batch_writer() as batch:
            for item in t.scan(ProjectionExpression="pk, sk")["Items"]:
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def s3_objects(prefix: str = "backups/") -> dict[str, bytes]:
    s3 = boto3.client("s3")
    bucket = get_settings().backup_bucket
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def put_object(key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=get_settings().backup_bucket, Key=key, Body=body)


def test_round_trip_of_every_table_and_attribute_type(aws_env):
    fill(random.Random(7))
    before = snapshot()

    manifest = service().create(source="test")
    wipe()
    assert all(not items for items in snapshot().values())
    report = service().restore(manifest.backup_id, pre_restore_backup=False)

    assert snapshot() == before  # item by item, every type, the 400 KB ones too
    assert {t.name: t.items for t in manifest.tables} == {n: len(items) for n, items in before.items()}
    assert all(t.before == 0 for t in report.tables)
    assert [(t.name, t.items) for t in report.tables] == [(t.name, t.items) for t in manifest.tables]


def test_backup_layout_manifest_last_and_checksums(aws_env):
    fill(random.Random(1), per_table=3)

    manifest = service().create()

    objects = s3_objects(f"backups/{manifest.backup_id}/")
    names = {k.rsplit("/", 1)[1] for k in objects}
    assert names == {"manifest.json", *(f"{t}.jsonl.gz" for t in table_names(get_settings()))}
    stored = json.loads(objects[f"backups/{manifest.backup_id}/manifest.json"])
    assert stored["format"] == "chatbot-dynamodb-backup" and stored["schema_version"] == 1
    agents = gzip.decompress(objects[f"backups/{manifest.backup_id}/agents.jsonl.gz"]).splitlines()
    assert len(agents) == 4 and all(json.loads(line)["pk"]["S"].startswith("agents#") for line in agents)


def test_restore_makes_tables_equal_to_the_backup_and_takes_a_pre_restore_backup(aws_env):
    fill(random.Random(2), per_table=5)
    before = snapshot()
    backup = service().create()
    # later changes: one item changed, one added
    agents = boto3.resource("dynamodb").Table(get_settings().agents_table)
    agents.put_item(Item={"pk": "agents#0", "sk": "item#0000", "s": "changed"})
    agents.put_item(Item={"pk": "agents#new", "sk": "new"})

    plan = service().restore(backup.backup_id, tables=["agents"], dry_run=True)
    assert snapshot()["agents"] != before["agents"]  # a dry run writes nothing
    (row,) = plan.tables
    assert (row.before, row.items, row.new, row.replaced, row.removed) == (7, 6, 0, 6, 1)

    report = service().restore(backup.backup_id, tables=["agents"])

    assert snapshot() == before
    assert report.pre_restore_backup_id and report.pre_restore_backup_id != backup.backup_id
    assert service().verify(report.pre_restore_backup_id).items == sum(len(v) for v in before.values()) + 1


@pytest.mark.parametrize("damage", ["flipped byte", "missing file", "missing manifest", "wrong counts"])
def test_damaged_backups_are_refused_and_nothing_is_written(aws_env, damage):
    fill(random.Random(3), per_table=4)
    backup = service().create()
    prefix = f"backups/{backup.backup_id}/"
    bucket = get_settings().backup_bucket
    s3 = boto3.client("s3")
    if damage == "flipped byte":
        data = bytearray(s3_objects(prefix + "jobs.jsonl.gz")[prefix + "jobs.jsonl.gz"])
        data[len(data) // 2] ^= 0xFF
        put_object(prefix + "jobs.jsonl.gz", bytes(data))
    elif damage == "missing file":
        s3.delete_object(Bucket=bucket, Key=prefix + "usage.jsonl.gz")
    elif damage == "missing manifest":
        s3.delete_object(Bucket=bucket, Key=prefix + "manifest.json")
    else:  # a manifest whose counts (and only those) were changed
        manifest = json.loads(s3_objects(prefix + "manifest.json")[prefix + "manifest.json"])
        manifest["tables"][0]["items"] += 1
        put_object(prefix + "manifest.json", json.dumps(manifest).encode())
    wipe()

    with pytest.raises(BackupInvalid):
        service().restore(backup.backup_id)

    assert all(not items for items in snapshot().values())  # nothing written
    assert [b.backup_id for b in service().list()] == [backup.backup_id]  # no pre-restore backup either


def test_a_foreign_backup_is_refused(aws_env):
    put_object("backups/20260101T000000Z/manifest.json", b'{"hello": "world"}')
    put_object("backups/20260102T000000Z/manifest.json", json.dumps({"format": "pg_dump"}).encode())

    for backup_id in ("20260101T000000Z", "20260102T000000Z"):
        with pytest.raises(BackupInvalid, match="not one of ours"):
            service().verify(backup_id)


def test_retention_keeps_recent_backups_and_always_the_newest_complete_one(aws_env):
    fill(random.Random(4), per_table=1)
    day = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
    ids = [service(now=lambda d=d: day + timedelta(days=d)).create().backup_id for d in range(6)]
    put_object("backups/20260313T120000Z/agents.jsonl.gz", b"incomplete: no manifest")

    # Six daily backups at 03:00 (10th to 15th), keep 3 days, on the 15th at noon: the 13th and later stay,
    # and the incomplete one (over a day old)
    deleted = service(now=lambda: day + timedelta(days=5, hours=9)).prune(keep_days=3)

    assert sorted(deleted) == [*ids[:3], "20260313T120000Z"]
    assert [b.backup_id for b in service().list()] == ids[:2:-1]
    # Long after the last backup, the newest complete one still stays
    assert sorted(service(now=lambda: day + timedelta(days=90)).prune(keep_days=3)) == ids[3:5]
    assert [b.backup_id for b in service().list()] == [ids[5]]


def test_cli_backup_list_verify_and_restore_with_yes(aws_env, capsys, tmp_path):
    fill(random.Random(5), per_table=2)
    before = snapshot()

    assert cli(["backup"]) == 0
    backup_id = capsys.readouterr().out.split()[1].rstrip(":")
    assert cli(["list"]) == 0 and backup_id in capsys.readouterr().out
    assert cli(["verify", backup_id]) == 0 and "intact" in capsys.readouterr().out
    wipe()
    assert cli(["restore", backup_id, "--dry-run"]) == 0
    assert "dry run: nothing written" in capsys.readouterr().out and not any(snapshot().values())
    assert cli(["restore", backup_id, "--tables", "agents,users", "--yes"]) == 0
    assert snapshot()["agents"] == before["agents"] and snapshot()["users"] == before["users"]
    assert not snapshot()["jobs"]
    assert cli(["verify", "nope"]) == 1 and "No backup nope" in capsys.readouterr().err

    # The same commands on a folder of backups (the local stack's snapshots)
    assert cli(["--dir", str(tmp_path), "backup"]) == 0
    assert len(DirStore(tmp_path).ids()) == 1


def test_backup_function_backs_up_prunes_and_restores(aws_env):
    from functions.backup.app import handler
    from tests.unit._jobs_support import FakeLambdaContext as LambdaContext

    fill(random.Random(6), per_table=2)
    result = handler({"source": "aws.events"}, LambdaContext())
    assert result["items"] == sum(len(v) for v in snapshot().values()) and result["pruned"] == []
    wipe()
    restored = handler({"action": "restore", "backup_id": result["backup_id"]}, LambdaContext())
    assert sum(t["items"] for t in restored["tables"]) == result["items"]


def test_cli_restore_asks_first_and_shows_progress(aws_env, capsys, monkeypatch):
    fill(random.Random(8), per_table=2)
    before = snapshot()
    backup_id = service().create().backup_id
    wipe()

    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert cli(["restore", backup_id, "--tables", "agents"]) == 1
    assert "aborted: nothing written" in capsys.readouterr().err and not snapshot()["agents"]

    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert cli(["restore", backup_id, "--tables", "agents"]) == 0
    err = capsys.readouterr().err
    assert "Replace every item of agents" in err and f"agents           [{'#' * 30}] 3/3" in err
    assert snapshot()["agents"] == before["agents"]


def test_cli_refuses_a_damaged_backup_before_asking(aws_env, capsys, monkeypatch):
    fill(random.Random(9), per_table=1)
    backup_id = service().create().backup_id
    boto3.client("s3").delete_object(
        Bucket=get_settings().backup_bucket, Key=f"backups/{backup_id}/agents.jsonl.gz"
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))

    assert cli(["restore", backup_id]) == 1

    err = capsys.readouterr().err
    assert "agents.jsonl.gz is missing" in err and "Replace every item" not in err
