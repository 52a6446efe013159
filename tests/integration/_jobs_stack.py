"""The local stack (`python -m infra.local`, as `make run` starts it) tuned for job tests, and helpers.

Tuned through the environment and the AWS API only, nothing the stack does not support anyway:
`JOB_BACKOFF_MAX_SECONDS=1` caps retry backoff at a second (the template's base of 60 s stays), the jobs
queue's visibility timeout is set to a few seconds so a crashed invocation's messages come back quickly, and
`LOCAL_POLLERS` sets the poller threads per queue. This process's boto3 clients and settings point at the
stack's emulator while the fixture is active.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from infra.local.harness import StackProcess
from infra.local.pollers import DEFAULT_WAIT_SECONDS

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_TIMEOUT = 8


@contextmanager
def job_stack(
    *, pollers: int = 4, visibility_timeout: int | None = VISIBILITY_TIMEOUT
) -> Iterator[StackProcess]:
    from chatbot import aws
    from chatbot.config import get_settings

    stack = StackProcess(
        template=ROOT / "template.yaml",
        env={"JOB_BACKOFF_MAX_SECONDS": "1", "LOCAL_POLLERS": str(pollers), "LOCAL_SCHEDULES": "off"},
    )
    stack.start()
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[key]
        os.environ.update(stack.env)
        os.environ["JOB_BACKOFF_MAX_SECONDS"] = "1"
        get_settings.cache_clear()
        aws.reset()
        if visibility_timeout is not None:
            stack.client("sqs").set_queue_attributes(
                QueueUrl=os.environ["JOBS_QUEUE_URL"],
                Attributes={"VisibilityTimeout": str(visibility_timeout)},
            )
            # A receive already waiting (the pollers long-poll up to DEFAULT_WAIT_SECONDS) applies the
            # timeout it read when it started (moto reads it then); let those end before the tests send.
            time.sleep(DEFAULT_WAIT_SECONDS + 0.5)
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
        aws.reset()
        stack.stop()


def clear_queues(stack: StackProcess) -> None:
    """Delete every visible message of the jobs queue and the DLQ (PurgeQueue is allowed once a minute)."""
    sqs = stack.client("sqs")
    for var in ("JOBS_QUEUE_URL", "JOBS_DLQ_URL"):
        while True:
            messages = sqs.receive_message(QueueUrl=os.environ[var], MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                break
            sqs.delete_message_batch(
                QueueUrl=os.environ[var],
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def queue_counts(stack: StackProcess, var: str) -> int:
    attrs = stack.client("sqs").get_queue_attributes(
        QueueUrl=os.environ[var],
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())


def feed(
    stack: StackProcess,
    payloads: list[dict[str, Any]],
    *,
    backlog: int = 100,
    chunk: int = 50,
    on_wait: Callable[[], Any] | None = None,
) -> list[str]:
    """Enqueue diagnostic jobs in chunks, keeping at most about `backlog` messages in the jobs queue.

    The emulator's SQS costs grow with queue depth (moto re-reads every message's state on each receive),
    so a steady, moderate backlog measures the worker rather than the emulator's worst case."""
    from chatbot.models.jobs import JobCreate
    from chatbot.services.jobs import JobService

    jobs = JobService()
    ids: list[str] = []
    for start in range(0, len(payloads), chunk):
        while queue_counts(stack, "JOBS_QUEUE_URL") > backlog - chunk:
            if on_wait is not None:
                on_wait()
            time.sleep(0.25)
        batch = [JobCreate(type="diagnostic", payload=p) for p in payloads[start : start + chunk]]
        ids += [job.id for job in jobs.enqueue_many(batch)]
    return ids


class JobEvents:
    """Job ids seen in the stack's `job_completed` / `job_dead` log lines, read incrementally (each line is
    parsed about once, so waiting costs little). Progress only: correctness is checked on the records."""

    def __init__(self, stack: StackProcess) -> None:
        self.stack = stack
        self.position = stack.mark()
        self.completed: set[str] = set()
        self.dead: set[str] = set()

    def poll(self) -> JobEvents:
        end = self.stack.mark()
        # Lines written between mark() and logs() are read again next time: harmless for sets.
        for entry in self.stack.logs(self.position):
            if entry.get("event") == "job_completed":
                self.completed.add(str(entry.get("job_id")))
            elif entry.get("event") == "job_dead":
                self.dead.add(str(entry.get("job_id")))
        self.position = end
        return self

    def finished(self) -> set[str]:
        return self.completed | self.dead


def admin(stack: StackProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, stack.url(path), headers=stack.admin_headers, timeout=60, **kwargs)


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]
