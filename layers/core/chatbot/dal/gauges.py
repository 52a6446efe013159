"""Read-only counting for the metrics-push gauges and the health checks, each as cheap as DynamoDB allows.

- Jobs: one query per status partition of the jobs table's `gsi1` that returns only `type`, `created_at` and
  `available_at` (the same read units as a `Select=COUNT` of that partition), grouped here. Together they read
  the index once, whatever the number of job types.
- Agents, prompts, vector stores, admin users: configuration tables of a few hundred items at most; a
  `Select=COUNT` scan (or one projected attribute for users by role).
- Table sizes: DescribeTable's `TableSizeBytes` (DynamoDB refreshes it about every six hours).
- Queues: SQS's `ApproximateNumberOfMessages`.
Expired TTL items are skipped: DynamoDB deletes them lazily.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Attr, ConditionBase, Key

from chatbot import aws
from chatbot.dal.base import Repository
from chatbot.dal.jobs import JobRepository, status_pk


@dataclass(frozen=True)
class JobSummary:
    """The jobs of one status: how many per type, and the created/available times of each (active only)."""

    status: str
    by_type: Counter[str] = field(default_factory=Counter)
    # (type, created_at, available_at) of each job, kept only when asked for (queued and running jobs).
    times: list[tuple[str, str, str | None]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_type.values())


def summarize_jobs(repo: JobRepository, status: str, *, with_times: bool = False) -> JobSummary:
    summary = JobSummary(status)
    request: dict[str, Any] = {
        "IndexName": "gsi1",
        "KeyConditionExpression": Key("gsi1pk").eq(status_pk(status)),
        "ProjectionExpression": "#type, created_at, available_at, #ttl",
        "ExpressionAttributeNames": {"#type": "type", "#ttl": "ttl"},
    }
    now = time.time()
    for resp in repo.query_responses(request):
        for item in resp.get("Items", []):
            if item.get("ttl") is not None and int(item["ttl"]) <= now:
                continue
            job_type = str(item.get("type", "unknown"))
            summary.by_type[job_type] += 1
            if with_times:
                summary.times.append((job_type, str(item.get("created_at", "")), item.get("available_at")))
    return summary


def count_jobs_created_since(repo: JobRepository, status: str, since: str) -> int:
    """Jobs of a status created at or after `since` (ISO): a `Select=COUNT` query on a key range of gsi1."""
    return repo.count(Key("gsi1pk").eq(status_pk(status)) & Key("gsi1sk").gte(since), index="gsi1")


def count_items(repo: Repository, condition: ConditionBase) -> int:
    """Items of a small table matching `condition`: a `Select=COUNT` scan (nothing but counts returned)."""
    kwargs: dict[str, Any] = {"Select": "COUNT", "FilterExpression": condition}
    total = 0
    while True:
        resp = repo.table.scan(**kwargs)
        total += int(resp.get("Count", 0))
        start = resp.get("LastEvaluatedKey")
        if not start:
            return total
        kwargs["ExclusiveStartKey"] = start


def count_by(repo: Repository, condition: ConditionBase, attribute: str) -> Counter[str]:
    """Items of a small table matching `condition`, counted per value of `attribute` (only that is read)."""
    kwargs: dict[str, Any] = {
        "FilterExpression": condition,
        "ProjectionExpression": "#a",
        "ExpressionAttributeNames": {"#a": attribute},
    }
    counts: Counter[str] = Counter()
    while True:
        resp = repo.table.scan(**kwargs)
        for item in resp.get("Items", []):
            counts[str(item.get(attribute, "unknown"))] += 1
        start = resp.get("LastEvaluatedKey")
        if not start:
            return counts
        kwargs["ExclusiveStartKey"] = start


def active_users(repo: Repository) -> Counter[str]:
    """Active admin users per role."""
    return count_by(repo, Attr("sk").eq("USER") & Attr("is_active").eq(True), "role")


def table_sizes(table_names: Iterable[str]) -> dict[str, int]:
    client = aws.client("dynamodb")
    return {
        name: int(client.describe_table(TableName=name)["Table"].get("TableSizeBytes", 0))
        for name in table_names
    }


def queue_depth(queue_url: str) -> int:
    """Messages waiting (visible) in a queue."""
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))
