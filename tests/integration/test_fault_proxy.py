"""The fault proxy itself: each fault reaches boto3 as the error the real service would give, botocore
retries what it should (and not `deny`), and the command line starts it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from infra.local.fault_proxy import FaultProxy, parse_rule

THREE_TRIES = Config(retries={"total_max_attempts": 3, "mode": "standard"}, read_timeout=5)


@pytest.fixture(scope="module")
def proxy(emulator: Any) -> Iterator[FaultProxy]:
    with FaultProxy(emulator.url, seed=1) as proxy:
        yield proxy


@pytest.fixture
def clients(proxy: FaultProxy, emulator: Any) -> Iterator[dict[str, Any]]:
    proxy.reset()
    direct = {
        s: boto3.client(s, endpoint_url=emulator.url, region_name="us-east-1") for s in ("dynamodb", "sqs")
    }
    table, queue = f"t{uuid.uuid4().hex[:8]}", f"q{uuid.uuid4().hex[:8]}"
    direct["dynamodb"].create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    url = direct["sqs"].create_queue(QueueName=queue)["QueueUrl"]
    via = {
        s: boto3.client(s, endpoint_url=proxy.url, region_name="us-east-1", config=THREE_TRIES)
        for s in ("dynamodb", "sqs", "s3")
    }
    yield {"table": table, "queue": url, "direct": direct, **via}
    proxy.clear()


@pytest.mark.parametrize(
    ("service", "fault", "code", "tries"),
    [
        ("dynamodb", "throttle", "ProvisionedThroughputExceededException", 3),
        ("dynamodb", "error", "InternalServerError", 3),
        ("dynamodb", "deny", "AccessDeniedException", 1),
        ("sqs", "throttle", "RequestThrottled", 3),
        ("sqs", "deny", "AccessDenied", 1),
        ("s3", "throttle", "SlowDown", 3),
        ("s3", "deny", "AccessDenied", 1),
    ],
)
def test_each_fault_is_the_services_own_error_retried_as_botocore_would(
    proxy, clients, service, fault, code, tries
):
    call = {
        "dynamodb": lambda: clients["dynamodb"].get_item(TableName=clients["table"], Key={"pk": {"S": "a"}}),
        "sqs": lambda: clients["sqs"].send_message(QueueUrl=clients["queue"], MessageBody="x"),
        "s3": lambda: clients["s3"].put_object(Bucket="any-bucket", Key="k", Body=b"x"),
    }[service]
    proxy.inject(service=service, fault=fault)
    with pytest.raises(ClientError) as failure:
        call()
    assert failure.value.response["Error"]["Code"] == code
    assert proxy.count(fault, service) == tries


def test_drop_after_forwards_the_request_but_loses_the_answer(proxy, clients):
    proxy.inject(service="dynamodb", fault="drop_after", operations={"PutItem"})
    put = {"TableName": clients["table"], "Item": {"pk": {"S": "landed"}}}
    with pytest.raises(ConnectionClosedError):
        clients["dynamodb"].put_item(**put)
    stored = clients["direct"]["dynamodb"].get_item(TableName=clients["table"], Key={"pk": {"S": "landed"}})
    assert "Item" in stored  # the write happened; the client cannot know


def test_drop_loses_the_request_and_slow_only_delays(proxy, clients):
    proxy.inject(service="sqs", fault="drop", operations={"SendMessage"})
    with pytest.raises(ConnectionClosedError):
        clients["sqs"].send_message(QueueUrl=clients["queue"], MessageBody="lost")
    proxy.clear()
    proxy.inject(service="sqs", fault="slow", delay=0.2)
    clients["sqs"].send_message(QueueUrl=clients["queue"], MessageBody="late")
    bodies = [
        m["Body"]
        for m in clients["sqs"].receive_message(QueueUrl=clients["queue"], MaxNumberOfMessages=10)["Messages"]
    ]
    assert bodies == ["late"]


def test_slow_beyond_the_clients_timeout_is_a_read_timeout(proxy, clients):
    proxy.inject(service="dynamodb", fault="slow", delay=1.5)
    impatient = boto3.client(
        "dynamodb",
        endpoint_url=proxy.url,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, read_timeout=0.5),
    )
    with pytest.raises(ReadTimeoutError):
        impatient.describe_table(TableName=clients["table"])


def test_rules_from_the_command_line_and_the_command_starts(emulator):
    assert parse_rule("dynamodb:throttle:0.3:PutItem,UpdateItem") == {
        "service": "dynamodb",
        "fault": "throttle",
        "rate": 0.3,
        "operations": {"PutItem", "UpdateItem"},
    }
    with pytest.raises(ValueError, match="unknown fault"):
        FaultProxy(emulator.url).inject(**parse_rule("s3:explode"))
    command = [
        sys.executable,
        "-m",
        "infra.local.fault_proxy",
        "--upstream",
        emulator.url,
        "--fault",
        "sqs:deny",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            banner = process.stdout.readline()
            assert banner.startswith("fault proxy on http://127.0.0.1:"), banner
            url = banner.split()[3]
            sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1")
            with pytest.raises(ClientError, match="AccessDenied"):
                sqs.list_queues()
        finally:
            process.terminate()
