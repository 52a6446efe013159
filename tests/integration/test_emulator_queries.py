"""The emulator's Query reads only the partition it asks for (a patch over moto's scan of the whole table):
results, order, limits, pagination and index queries must stay what DynamoDB returns."""

from __future__ import annotations

import uuid

import boto3
import pytest


@pytest.fixture(scope="module")
def table(emulator):
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"queries-{uuid.uuid4().hex[:8]}"
    ddb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    for p in range(5):
        for s in range(12):
            item = {"pk": {"S": f"P{p}"}, "sk": {"S": f"S{s:02d}"}}
            if s % 3 == 0:  # a sparse index: a third of the items, across partitions
                item |= {"gsi1pk": {"S": "EVERY3"}, "gsi1sk": {"S": f"{s:02d}#{p}"}}
            ddb.put_item(TableName=name, Item=item)
    return ddb, name


def keys(items: list[dict]) -> list[tuple[str, str]]:
    return [(i["pk"]["S"], i["sk"]["S"]) for i in items]


def pages(ddb, **kwargs) -> list[list[tuple[str, str]]]:
    out, start = [], None
    while True:
        resp = ddb.query(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        out.append(keys(resp["Items"]))
        start = resp.get("LastEvaluatedKey")
        if not start:
            return out


def test_query_returns_its_partition_in_order_both_ways(table):
    ddb, name = table
    condition = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "P3"}}}

    forward = ddb.query(TableName=name, **condition)["Items"]
    backward = ddb.query(TableName=name, ScanIndexForward=False, **condition)["Items"]
    missing = ddb.query(
        TableName=name, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "nope"}}
    )

    assert keys(forward) == [("P3", f"S{s:02d}") for s in range(12)]
    assert keys(backward) == keys(forward)[::-1]
    assert missing["Items"] == [] and missing["Count"] == 0


def test_query_range_conditions_limits_and_pages(table):
    ddb, name = table

    got = pages(
        ddb,
        TableName=name,
        KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
        ExpressionAttributeValues={":p": {"S": "P1"}, ":s": {"S": "S0"}},
        ScanIndexForward=False,
        Limit=4,
    )

    assert got == [
        [("P1", "S09"), ("P1", "S08"), ("P1", "S07"), ("P1", "S06")],
        [("P1", "S05"), ("P1", "S04"), ("P1", "S03"), ("P1", "S02")],
        [("P1", "S01"), ("P1", "S00")],
    ]


def test_index_query_sees_every_partition_sorted_by_index_keys(table):
    ddb, name = table

    got = pages(
        ddb,
        TableName=name,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :g",
        ExpressionAttributeValues={":g": {"S": "EVERY3"}},
        Limit=7,
    )

    expected = [(f"P{p}", f"S{s:02d}") for s in range(0, 12, 3) for p in range(5)]
    assert [k for page in got for k in page] == expected
    assert [len(page) for page in got] == [7, 7, 6]
