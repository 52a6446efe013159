"""Helpers for the jobs, worker, DLQ and webhook tests: drive the worker Lambda with real SQS records.

`deliver()` receives from the jobs queue in the current AWS (moto in-process or the emulator) and invokes
`functions.worker.app.handler` with the records in the Lambda event shape, so the real BatchProcessor and
the real visibility/redrive behaviour of the queue are exercised; nothing is acknowledged unless the
handler's response says so (the records it does not report as failed are deleted, as Lambda's event source
mapping does).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

import boto3


@dataclass
class FakeLambdaContext:
    function_name: str = "chatbot-local-worker"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:chatbot-local-worker"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def sqs() -> Any:
    return boto3.client("sqs")


def receive_records(queue_url: str | None = None, max_n: int = 10, wait: int = 0) -> list[dict[str, Any]]:
    url = queue_url or os.environ["JOBS_QUEUE_URL"]
    messages = (
        sqs()
        .receive_message(
            QueueUrl=url, MaxNumberOfMessages=max_n, WaitTimeSeconds=wait, AttributeNames=["All"]
        )
        .get("Messages", [])
    )
    return [to_record(m, url) for m in messages]


def to_record(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[-1],
        "awsRegion": "us-east-1",
    }


def invoke(records: list[dict[str, Any]], *, ack: bool = True, remaining_ms: int = 30_000) -> dict[str, Any]:
    """Run the worker on `records`; like the event source mapping, delete those not reported failed."""
    from functions.worker.app import handler

    response = handler({"Records": records}, FakeLambdaContext(remaining_ms=remaining_ms))
    if ack:
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for record in records:
            if record["messageId"] not in failed:
                sqs().delete_message(
                    QueueUrl=os.environ["JOBS_QUEUE_URL"], ReceiptHandle=record["receiptHandle"]
                )
    return response


def deliver(max_n: int = 10) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    records = receive_records(max_n=max_n)
    if not records:
        return {"batchItemFailures": []}, []
    return invoke(records), records


def drain(rounds: int = 20) -> int:
    """Deliver until the queue has nothing visible; returns the number of records handled."""
    handled = 0
    for _ in range(rounds):
        _, records = deliver()
        if not records:
            return handled
        handled += len(records)
    return handled


def queue_depth(queue_url: str) -> int:
    attrs = sqs().get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def dlq_bodies() -> list[dict[str, Any]]:
    """Bodies of the DLQ's messages (read and made visible again at once)."""
    url = os.environ["JOBS_DLQ_URL"]
    seen: dict[str, dict[str, Any]] = {}
    handles = []
    while True:
        msgs = (
            sqs()
            .receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=5)
            .get("Messages", [])
        )
        fresh = [m for m in msgs if m["MessageId"] not in seen]
        if not fresh:
            break
        for m in fresh:
            seen[m["MessageId"]] = json.loads(m["Body"])
            handles.append(m["ReceiptHandle"])
    for handle in handles:
        sqs().change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
    return list(seen.values())


def api_event(
    body: bytes | str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/webhooks/openai",
    base64_encoded: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as the gateway passes it to a Lambda."""
    raw = body.encode() if isinstance(body, str) else body
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in (headers or {}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "OpenAI/1.0",
            },
            "requestId": "req-1",
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "timeEpoch": 0,
        },
        "body": base64.b64encode(raw).decode() if base64_encoded else raw.decode(),
        "isBase64Encoded": base64_encoded,
    }


def set_env(monkeypatch: Any, **values: str) -> None:
    """Change settings for one test (the settings and service caches are rebuilt)."""
    from chatbot import aws
    from chatbot.config import get_settings

    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    aws.reset()
