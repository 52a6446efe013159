"""SQS event source mappings, locally: poller threads that drive a function with real SQS batch events.

Each mapping (JobsQueue → WorkerFunction) gets N threads. A thread long-polls the queue for up to the
mapping's batch size, builds the event Lambda would build, invokes the handler and then does what the
event source mapping does with ReportBatchItemFailures: delete every message not listed in
`batchItemFailures` (all of them when the handler reports none; none when it raises or returns a malformed
response). Failed messages are left alone: their visibility timeout (which the worker may have changed)
brings them back, and the queue's RedrivePolicy moves them to the DLQ after maxReceiveCount receives.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from infra.local.provision import EventSourceMapping, Stack, new_session

log = logging.getLogger("infra.local.pollers")

# Lambda starts five pollers per SQS event source; four keep a batch in flight while others wait on the
# emulator, which is what the jobs benchmark needs for 3,000 jobs a minute (LOCAL_POLLERS overrides).
DEFAULT_POLLERS = 4
DEFAULT_WAIT_SECONDS = 1


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event for a batch of SQS messages (as returned by ReceiveMessage)."""
    records = []
    for msg in messages:
        record: dict[str, Any] = {
            "messageId": msg["MessageId"],
            "receiptHandle": msg["ReceiptHandle"],
            "body": msg.get("Body", ""),
            "attributes": dict(msg.get("Attributes") or {}),
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in (msg.get("MessageAttributes") or {}).items()
            },
            "md5OfBody": msg.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        if msg.get("MD5OfMessageAttributes"):
            record["md5OfMessageAttributes"] = msg["MD5OfMessageAttributes"]
        records.append(record)
    return {"Records": records}


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stringListValues": list(value.get("StringListValues") or []),
        "binaryListValues": [_b64(v) for v in value.get("BinaryListValues") or []],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = _b64(value["BinaryValue"])
    return out


def _b64(value: Any) -> str:
    return base64.b64encode(value if isinstance(value, bytes) else str(value).encode()).decode()


def failed_ids(result: Any, message_ids: list[str], report_item_failures: bool) -> set[str]:
    """The message ids the event source mapping keeps on the queue after the handler returned `result`."""
    if not report_item_failures:
        return set()
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(message_ids)  # an invalid response fails the whole batch
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(message_ids)
    out = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in message_ids:
            return set(message_ids)  # Lambda treats an empty or unknown identifier as a batch failure
        out.add(ident)
    return out


class QueuePoller:
    """Poller threads for one event source mapping."""

    def __init__(
        self,
        mapping: EventSourceMapping,
        invoke: Callable[[str, Any], Any],
        *,
        region: str,
        pollers: int | None = None,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
        client: Any = None,
    ) -> None:
        if not mapping.queue_url:
            raise ValueError(f"event source mapping {mapping.logical_id} has no SQS queue")
        self.mapping = mapping
        self.invoke = invoke
        self.region = region
        self.pollers = pollers or int(os.environ.get("LOCAL_POLLERS", DEFAULT_POLLERS))
        self.wait_seconds = wait_seconds
        self._client = client
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.batches = 0
        self.invocations_failed = 0
        self._stats_lock = threading.Lock()

    def _sqs(self) -> Any:
        if self._client is None:
            from botocore.config import Config

            # A session sharing provisioning's parsed service models: a fresh one costs ~0.2 s of start-up.
            self._client = new_session(self.region).client(
                "sqs",
                region_name=self.region,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    read_timeout=self.wait_seconds + 10,
                    max_pool_connections=self.pollers + 2,
                ),
            )
        return self._client

    def start(self) -> None:
        self._sqs()  # create the client once, here: client creation is not thread-safe
        self._stop.clear()
        for i in range(self.pollers):
            t = threading.Thread(target=self._run, name=f"poller-{self.mapping.logical_id}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        deadline = time.monotonic() + (timeout if timeout is not None else self.wait_seconds + 5)
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("poller for %s failed; retrying", self.mapping.logical_id)
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """Receive one batch, invoke the function, delete what succeeded. Returns the batch size."""
        sqs = self._sqs()
        mapping = self.mapping
        response = sqs.receive_message(
            QueueUrl=mapping.queue_url,
            MaxNumberOfMessages=max(1, min(mapping.batch_size, 10)),
            WaitTimeSeconds=self.wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        event = sqs_event(messages, mapping.source_arn, self.region)
        ids = [m["MessageId"] for m in messages]
        try:
            result = self.invoke(mapping.function, event)
        except Exception:
            with self._stats_lock:
                self.invocations_failed += 1
            log.exception(
                "%s failed on a batch of %d from %s", mapping.function, len(messages), mapping.queue
            )
            return len(messages)
        finally:
            with self._stats_lock:
                self.batches += 1
        keep = failed_ids(result, ids, mapping.report_batch_item_failures)
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            reply = sqs.delete_message_batch(
                QueueUrl=mapping.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in reply.get("Failed") or []:
                log.warning("could not delete a message from %s: %s", mapping.queue, failure.get("Message"))
        return len(messages)


class Pollers:
    """All the stack's SQS event source mappings."""

    def __init__(
        self,
        stack: Stack,
        invoke: Callable[[str, Any], Any],
        *,
        pollers: int | None = None,
        wait_seconds: int = DEFAULT_WAIT_SECONDS,
    ) -> None:
        self.pollers = [
            QueuePoller(m, invoke, region=stack.region, pollers=pollers, wait_seconds=wait_seconds)
            for m in stack.event_source_mappings
            if m.enabled and m.queue_url
        ]

    def start(self) -> None:
        for p in self.pollers:
            p.start()

    def stop(self) -> None:
        for p in self.pollers:
            p._stop.set()
        for p in self.pollers:
            p.stop()
