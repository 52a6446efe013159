"""An in-process AWS (moto `mock_aws`) with the template's DynamoDB tables, for the admin resource tests.

Used by tests/unit/test_agents*.py, test_prompts*.py, test_vector_stores*.py when the shared `aws_env`
fixture is not available; the tables are created from template.yaml, so keys and indexes are the real ones.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from chatbot import aws
from chatbot.config import get_settings
from infra.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
_ENV_OF_TABLE = {
    "AgentsTable": "AGENTS_TABLE",
    "PromptsTable": "PROMPTS_TABLE",
    "VectorStoresTable": "VECTOR_STORES_TABLE",
    "ConversationsTable": "CONVERSATIONS_TABLE",
    "JobsTable": "JOBS_TABLE",
    "AuditLogTable": "AUDIT_TABLE",
    "AdminUsersTable": "USERS_TABLE",
    "ApiKeysTable": "API_KEYS_TABLE",
    "WebhookEventsTable": "WEBHOOK_EVENTS_TABLE",
    "RateLimitsTable": "RATE_LIMITS_TABLE",
    "UsageTable": "USAGE_TABLE",
}


def _snake(logical_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()


@lru_cache(maxsize=1)
def _template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


@contextmanager
def mocked_tables(*logical_ids: str, **extra_env: str) -> Iterator[dict[str, str]]:
    """Yield env var → table name, with the named tables of the template created in a fresh `mock_aws`.

    Creating a table costs ~30 ms in moto, so only the tables asked for (default: agents, prompts, vector
    stores, jobs) exist; the others get a name and no table.
    """
    wanted = set(logical_ids or ("AgentsTable", "PromptsTable", "VectorStoresTable", "JobsTable"))
    saved = dict(os.environ)
    env = {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "JOBS_QUEUE_URL": "unused",
        "JOBS_DLQ_URL": "unused",
        "ADMIN_TOKEN_SECRET_ID": "admin-token",
        "OPENAI_SECRET_ID": "openai-key",
        "WEBHOOK_SECRET_ID": "webhook-secret",
        "BACKUP_BUCKET": "backups",
        **extra_env,
    }
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(env)
    template = _template()
    try:
        with mock_aws():
            aws.reset()
            get_settings.cache_clear()
            ddb = boto3.client("dynamodb")
            tables: dict[str, str] = {}
            for logical_id, var in _ENV_OF_TABLE.items():
                name = f"test-{_snake(logical_id)}"
                os.environ[var] = name
                tables[var] = name
                if logical_id not in wanted:
                    continue
                props: dict[str, Any] = template["Resources"][logical_id]["Properties"]
                kwargs: dict[str, Any] = {
                    "TableName": name,
                    "KeySchema": props["KeySchema"],
                    "AttributeDefinitions": props["AttributeDefinitions"],
                    "BillingMode": "PAY_PER_REQUEST",
                }
                if props.get("GlobalSecondaryIndexes"):
                    kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
                ddb.create_table(**kwargs)
            # The jobs queue (file ingestion is enqueued through the real jobs service).
            sqs = boto3.client("sqs")
            dlq = sqs.create_queue(QueueName="test-jobs-dlq")["QueueUrl"]
            os.environ["JOBS_DLQ_URL"] = dlq
            os.environ["JOBS_QUEUE_URL"] = sqs.create_queue(QueueName="test-jobs")["QueueUrl"]
            get_settings.cache_clear()
            yield tables
    finally:
        aws.reset()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@contextmanager
def serialised_dynamodb() -> Iterator[None]:
    """Make moto apply one DynamoDB request at a time, as DynamoDB's own isolation guarantees.

    moto's TransactWriteItems checks and writes item by item without a lock, and rolls a failed
    transaction back by restoring a copy of the whole table — which can erase another thread's committed
    write. Real DynamoDB serialises conflicting transactions, so concurrency tests run with this on.
    """
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


def wipe_tables() -> None:
    """Delete every item of the tables `mocked_tables` created: a clean slate at a fraction of a setup."""
    ddb = boto3.resource("dynamodb")
    for name in boto3.client("dynamodb").list_tables()["TableNames"]:
        table = ddb.Table(name)
        with table.batch_writer() as batch:
            for item in table.scan(ProjectionExpression="pk, sk").get("Items", []):
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
