"""The emulator's HTTP server (`EmulatorServer`): what werkzeug's did, plus kept-alive connections, and a
long poll never holds up a DynamoDB request."""

from __future__ import annotations

import http.client
import threading
import time
import uuid
from urllib.parse import urlsplit

import boto3
import pytest


def _client(emulator, service):
    return boto3.client(
        service,
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_connections_stay_open_between_requests(emulator):
    url = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables",
        "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20261205/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host, Signature=x",
    }
    sockets = set()
    for _ in range(3):
        connection.request("POST", "/", body=b"{}", headers=headers)
        response = connection.getresponse()
        assert response.status == 200 and b"TableNames" in response.read()
        assert response.getheader("connection") != "close"
        sockets.add(id(connection.sock))
    connection.close()
    assert len(sockets) == 1


def test_s3_keys_metadata_and_head_survive_the_server(emulator):
    s3 = _client(emulator, "s3")
    bucket = f"server-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    key = "dir/a key+with%2Fodd chars é.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 1234, Metadata={"my_key": "v1", "plain": "v2"})

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 1234
    assert head["Metadata"] == {"my_key": "v1", "plain": "v2"}
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x" * 1234
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_a_long_poll_does_not_hold_up_dynamodb(emulator):
    sqs, ddb = _client(emulator, "sqs"), _client(emulator, "dynamodb")
    queue = sqs.create_queue(QueueName=f"server-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    table = f"server-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )
    polls = [threading.Thread(target=sqs.receive_message, kwargs={"QueueUrl": queue, "WaitTimeSeconds": 3})]
    polls += [
        threading.Thread(
            target=_client(emulator, "sqs").receive_message, kwargs={"QueueUrl": queue, "WaitTimeSeconds": 3}
        )
        for _ in range(7)
    ]
    for poll in polls:
        poll.start()
    time.sleep(0.3)  # the polls are waiting in the emulator now
    started = time.monotonic()
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}})
    assert ddb.get_item(TableName=table, Key={"pk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert time.monotonic() - started < 1.0
    for poll in polls:
        poll.join()


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_unknown_paths_answer_like_moto(emulator, method):
    url = urlsplit(emulator.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request(method, "/moto-api/data.json")
    response = connection.getresponse()
    response.read()
    connection.close()
    assert response.status == 200
