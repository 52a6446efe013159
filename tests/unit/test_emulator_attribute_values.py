"""`return_stored_attribute_values`: DynamoDB answers are the same with and without it, for every type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.serialize import BaseJSONSerializer

from infra.local.emulator import in_wire_format, return_stored_attribute_values

EVERY_TYPE: dict[str, Any] = {
    "pk": "CONV#1",
    "sk": "MSG#0001",
    "text": "héllo",
    "empty": "",
    "count": 3,
    "ratio": Decimal("0.25"),
    "yes": True,
    "no": False,
    "nothing": None,
    "blob": b"\x00\xffbinary",
    "tags": {"a", "b"},
    "numbers": {1, 2},
    "blobs": {b"x", b"y"},
    "messages": [{"role": "user", "content": "hi", "n": 1}, {"role": "assistant", "content": "hello"}],
    "nested": {"inner": {"deep": [1, "two", None, True, b"\x01"]}},
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"S": "x"}, True),
        ({"N": "1"}, True),
        ({"N": 1}, False),
        ({"BOOL": False}, True),
        ({"NULL": True}, True),
        ({"SS": ["a", "b"]}, True),
        ({"NS": ["1", 2]}, False),
        ({"B": "AAE="}, False),
        ({"BS": ["AAE="]}, False),
        ({"M": {"a": {"S": "x"}, "b": {"L": [{"N": "1"}]}}}, True),
        ({"M": {"a": {"B": "AAE="}}}, False),
        ({"L": [{"S": "x"}, {"NULL": True}]}, True),
        ({"L": [{"S": "x"}, {"BS": []}]}, False),
        ({}, False),
        ({"S": "x", "N": "1"}, False),
        ("x", False),
    ],
)
def test_in_wire_format(value, expected):
    assert in_wire_format(value) is expected


def _answers() -> list[Any]:
    with mock_aws():
        ddb = boto3.resource("dynamodb", region_name="us-east-1")
        table = ddb.create_table(
            TableName="t",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        table.put_item(Item=EVERY_TYPE)
        key = {"pk": "CONV#1", "sk": "MSG#0001"}
        updated = table.update_item(
            Key=key,
            UpdateExpression="ADD #count :one SET #text = :text",
            ExpressionAttributeNames={"#count": "count", "#text": "text"},
            ExpressionAttributeValues={":one": 1, ":text": "again"},
            ReturnValues="ALL_NEW",
        )["Attributes"]
        return [
            table.get_item(Key=key, ConsistentRead=True)["Item"],
            table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "CONV#1"})[
                "Items"
            ],
            table.scan()["Items"],
            updated,
            ddb.batch_get_item(RequestItems={"t": {"Keys": [key]}})["Responses"]["t"],
        ]


def test_answers_are_the_same_with_and_without_it(monkeypatch):
    original = BaseJSONSerializer._serialize_type_structure
    assert not getattr(original, "as_stored", False), "applied for the whole process: compare with moto's own"
    monkeypatch.setattr(BaseJSONSerializer, "_serialize_type_structure", original)
    expected = _answers()

    return_stored_attribute_values()
    assert BaseJSONSerializer._serialize_type_structure is not original
    assert _answers() == expected
    assert expected[0] == expected[3] == EVERY_TYPE | {"count": 4, "text": "again"}
