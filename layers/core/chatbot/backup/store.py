"""Where backups live: an S3 bucket (on AWS and in the local stack's emulator) or a local folder (the local
stack's own snapshots). Both hold the same layout: `<prefix>/<backup id>/<file>`."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import IO, Protocol

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from chatbot import aws

_TRANSFER = TransferConfig(max_concurrency=4)


class BackupStore(Protocol):
    def upload(self, key: str, path: Path) -> None: ...
    def open(self, key: str) -> IO[bytes]: ...
    def ids(self) -> list[str]: ...
    def delete(self, backup_id: str) -> None: ...
    def describe(self) -> str: ...


class S3Store:
    def __init__(self, bucket: str, prefix: str = "backups") -> None:
        self.bucket, self.prefix = bucket, prefix.strip("/")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}"

    def upload(self, key: str, path: Path) -> None:
        # Multipart when large; at most 4 parts of 8 MB in memory at once, however large the table.
        aws.client("s3").upload_file(str(path), self.bucket, self._key(key), Config=_TRANSFER)

    def open(self, key: str) -> IO[bytes]:
        try:
            return aws.client("s3").get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(key) from None
            raise

    def ids(self) -> list[str]:
        # From the keys, not CommonPrefixes: moto keeps listing a prefix whose objects were all deleted in a
        # versioned bucket. A backup holds a dozen objects, so listing them all stays cheap.
        pages = aws.client("s3").get_paginator("list_objects_v2")
        found: set[str] = set()
        for page in pages.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            for obj in page.get("Contents") or []:
                backup_id, _, rest = obj["Key"][len(self.prefix) + 1 :].partition("/")
                if rest:
                    found.add(backup_id)
        return sorted(found)

    def delete(self, backup_id: str) -> None:
        s3 = aws.client("s3")
        pages = s3.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=self._key(f"{backup_id}/")):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents") or []]
            if keys:
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


class DirStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def upload(self, key: str, path: Path) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def open(self, key: str) -> IO[bytes]:
        return (self.root / key).open("rb")

    def ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def delete(self, backup_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.root / backup_id)

    def describe(self) -> str:
        return str(self.root)
