"""Reading template.yaml and provisioning it (moto in-process): intrinsics, names, records, idempotency.

The check that every resource exists in a real emulator process over HTTP is in
tests/integration/test_local_stack.py.
"""

from __future__ import annotations

import json
import logging
import string
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra.local import provision as provision_module
from infra.local.provision import RUNTIME_TYPES, generate_secret_string, provision
from infra.local.template import Resolver, TemplateError, load_template, parse_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(text)
    return path


SMALL = """
AWSTemplateFormatVersion: 2010-09-09
Parameters:
  Stage: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Retries: {Type: Number, Default: 4}
  Origins: {Type: CommaDelimitedList, Default: "a,b"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
  Both: !And [!Condition NotProd, !Or [!Equals [a, a], !Condition IsProd]]
Mappings:
  Sizes: {dev: {Days: 1}, prod: {Days: 30}}
Resources:
  Dlq:
    Type: AWS::SQS::Queue
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-jobs"
      VisibilityTimeout: 45
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: !Ref Retries
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
  Token:
    Type: AWS::SecretsManager::Secret
    Properties:
      Name: !Sub "${AWS::StackName}/token"
      GenerateSecretString: {PasswordLength: 40, ExcludePunctuation: true}
  ProdOnly:
    Type: AWS::SNS::Topic
    Condition: IsProd
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Join ["/", ["", app, !Select [1, !Ref Origins], !FindInMap [Sizes, !Ref Stage, Days]]]
      RetentionInDays: !If [IsProd, 30, !Ref AWS::NoValue]
  Odd:
    Type: AWS::Made::Up
    Properties:
      Name: !Select [0, !Split [",", "x,y"]]
Outputs:
  Url:
    Value: !Ref Jobs
"""


# -- loading -----------------------------------------------------------------------------------------
def test_load_template_reads_short_tags_as_long_forms(tmp_path):
    doc = load_template(_write(tmp_path, SMALL))

    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"
    jobs = doc["Resources"]["Jobs"]["Properties"]
    assert jobs["QueueName"] == {"Fn::Sub": "${AWS::StackName}-jobs"}
    assert jobs["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["Dlq", "Arn"]}
    assert doc["Conditions"]["NotProd"] == {"Fn::Not": [{"Condition": "IsProd"}]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Resources: [unclosed", "is not valid YAML (line 2, column 1)"),
        ("Description: no resources\n", "has no Resources section"),
        ("Resources:\n  A: {Properties: {}}\n", "resource A has no Type"),
    ],
)
def test_load_template_rejects_bad_input_with_one_line(tmp_path, text, message):
    with pytest.raises(TemplateError) as err:
        load_template(_write(tmp_path, text))

    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_load_template_missing_file_says_so(tmp_path):
    with pytest.raises(TemplateError, match="template not found"):
        load_template(tmp_path / "nope.yaml")


# -- intrinsics --------------------------------------------------------------------------------------
def test_resolver_evaluates_conditions_and_functions():
    template = parse_template(SMALL)
    resolver = Resolver(
        template, stack_name="s", region="eu-west-1", account_id="111122223333", parameters={"Stage": "prod"}
    )

    assert resolver.condition("IsProd") is True
    assert resolver.condition("NotProd") is False
    assert resolver.condition("Both") is False
    assert resolver.resolve(
        {"Fn::Sub": "${AWS::StackName}:${AWS::Region}:${AWS::AccountId}:${!Literal}"}
    ) == ("s:eu-west-1:111122223333:${Literal}")
    assert resolver.resolve({"Fn::Sub": ["${A}-${Stage}", {"A": {"Ref": "Retries"}}]}) == "4-prod"
    assert resolver.resolve(template["Resources"]["Logs"]["Properties"]) == {
        "LogGroupName": "/app/b/30",
        "RetentionInDays": 30,
    }
    assert resolver.resolve({"Fn::Select": [0, {"Fn::Split": [",", "x,y"]}]}) == "x"


def test_resolver_drops_no_value_and_rejects_unknown_parameters():
    template = parse_template(SMALL)
    resolver = Resolver(template, stack_name="s", region="us-east-1", account_id="1")

    assert resolver.resolve(template["Resources"]["Logs"]["Properties"]) == {"LogGroupName": "/app/b/1"}
    with pytest.raises(TemplateError, match="unknown template parameter"):
        Resolver(template, stack_name="s", region="us-east-1", account_id="1", parameters={"Nope": "x"})
    with pytest.raises(TemplateError, match="not one of"):
        Resolver(template, stack_name="s", region="us-east-1", account_id="1", parameters={"Stage": "qa"})


# -- provisioning a small template ----------------------------------------------------------------
def test_provision_creates_resources_with_template_names_and_attributes(tmp_path, caplog):
    path = _write(tmp_path, SMALL)
    provision_module._warned_types.discard("AWS::Made::Up")

    with mock_aws(), caplog.at_level(logging.WARNING, "infra.local.provision"):
        stack = provision(path, stack_name="demo")
        sqs = boto3.client("sqs")
        jobs_url = stack.resources["Jobs"].physical_id
        attrs = sqs.get_queue_attributes(QueueUrl=jobs_url, AttributeNames=["All"])["Attributes"]
        ttl = boto3.client("dynamodb").describe_time_to_live(TableName=stack.physical_id("Table"))
        secret = boto3.client("secretsmanager").get_secret_value(SecretId=stack.physical_id("Token"))
        groups = boto3.client("logs").describe_log_groups(logGroupNamePrefix="/app/")["logGroups"]

    assert jobs_url.endswith("/demo-jobs")
    assert stack.physical_id("Table") == "demo-Table"
    assert attrs["VisibilityTimeout"] == "45"
    assert json.loads(attrs["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.resources["Dlq"].arn,
        "maxReceiveCount": 4,
    }
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "ttl"
    assert len(secret["SecretString"]) == 40 and secret["SecretString"].isalnum()
    assert [g["logGroupName"] for g in groups] == ["/app/b/1"]
    assert stack.skipped == {"ProdOnly": "IsProd"}
    assert stack.unsupported == {"Odd": "AWS::Made::Up"}
    assert stack.resources["Odd"].status == "unsupported"
    assert stack.outputs == {"Url": jobs_url}
    assert [r.message for r in caplog.records].count(
        "resource type AWS::Made::Up is not provisioned locally (recorded only)"
    ) == 1


def test_provision_twice_is_idempotent_and_keeps_secret_values(tmp_path):
    path = _write(tmp_path, SMALL)

    with mock_aws():
        first = provision(path, stack_name="demo")
        value = boto3.client("secretsmanager").get_secret_value(SecretId=first.physical_id("Token"))
        second = provision(path, stack_name="demo")
        again = boto3.client("secretsmanager").get_secret_value(SecretId=second.physical_id("Token"))
        queues = boto3.client("sqs").list_queues()["QueueUrls"]

    assert {r.status for lid, r in second.resources.items() if r.type != "AWS::Made::Up"} == {
        "existing",
        "created",
    }
    assert second.resources["Table"].status == "existing"
    assert second.physical_id("Token") == first.physical_id("Token")
    assert again["SecretString"] == value["SecretString"]
    assert len(queues) == 2


def test_generate_secret_string_follows_its_rules():
    plain = generate_secret_string({"PasswordLength": 64, "ExcludePunctuation": True})
    templated = json.loads(
        generate_secret_string(
            {
                "SecretStringTemplate": '{"user": "u"}',
                "GenerateStringKey": "password",
                "ExcludeCharacters": "abc",
            }
        )
    )

    assert len(plain) == 64 and set(plain) <= set(string.ascii_letters + string.digits)
    assert templated["user"] == "u" and len(templated["password"]) == 32
    assert not set("abc") & set(templated["password"])


# -- the real template ----------------------------------------------------------------------------
def test_provision_template_sets_the_functions_environment(aws_env):
    source = load_template(TEMPLATE)
    globals_env = source["Globals"]["Function"]["Environment"]["Variables"]
    env = aws_env.environment()

    # Every Globals variable is there, unless a function overrides it with a value of its own.
    for key in globals_env:
        values = {spec.environment.get(key) for spec in aws_env.functions.values()}
        assert (key in env) == (len(values) == 1), key
    assert "POWERTOOLS_SERVICE_NAME" not in env
    tables = boto3.client("dynamodb").list_tables()["TableNames"]
    for var, logical_id in (
        ("AGENTS_TABLE", "AgentsTable"),
        ("JOBS_TABLE", "JobsTable"),
        ("USAGE_TABLE", "UsageTable"),
    ):
        assert env[var] == aws_env.physical_id(logical_id) and env[var] in tables
    assert env["JOBS_QUEUE_URL"] == aws_env.resources["JobsQueue"].attrs["QueueUrl"]
    assert env["ADMIN_TOKEN_SECRET_ID"] == aws_env.resources["AdminTokenSecret"].arn


def test_provision_template_records_functions_routes_schedules_and_mappings(aws_env):
    source = load_template(TEMPLATE)
    sam_functions = {
        lid for lid, r in source["Resources"].items() if r["Type"] == "AWS::Serverless::Function"
    } - set(aws_env.skipped)
    http_events = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"], lid)
        for lid, r in source["Resources"].items()
        if lid in sam_functions
        for e in (r["Properties"].get("Events") or {}).values()
        if e["Type"] == "HttpApi"
    }

    assert set(aws_env.functions) == sam_functions
    for spec in aws_env.functions.values():
        assert spec.handler_file is not None and spec.handler_file.is_file(), spec.logical_id
        assert spec.module == f"functions.{spec.code_dir.name}.app"
    assert {(r.method, r.path, r.function) for r in aws_env.routes} == http_events
    worker = [m for m in aws_env.event_source_mappings if m.function == "WorkerFunction"]
    assert len(worker) == 1 and worker[0].queue == "JobsQueue" and worker[0].report_batch_item_failures
    assert {s.function for s in aws_env.schedules} >= {"MetricsPushFunction", "BackupFunction"}


def test_provision_runtime_types_only_records_the_rest_with_names():
    with mock_aws():
        stack = provision(TEMPLATE, parameters={"Stage": "local"}, include_types=RUNTIME_TYPES)
        alarms = boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]

    assert alarms == []
    created = {r.type for r in stack.resources.values() if r.status == "created"}
    assert created <= RUNTIME_TYPES
    alarm = next(r for r in stack.resources.values() if r.type == "AWS::CloudWatch::Alarm")
    assert alarm.status == "recorded" and alarm.physical_id
