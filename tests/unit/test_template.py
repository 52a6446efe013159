"""template.yaml against the contracts in docs/conventions.md and chatbot.config.Settings.

Fast checks only (no cfn-lint run, no sam build): `make lint` and `make build` cover those.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from cfnlint.template import Template
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from chatbot.config import Settings
from infra.lint.rules.function_log_group import FunctionLogGroupRetention

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
# Globals env vars that are not Settings fields: read by Powertools itself.
POWERTOOLS_ENV = {"LOG_LEVEL", "POWERTOOLS_METRICS_NAMESPACE"}
FUNCTIONS = {
    "ChatFunction": "chat",
    "AdminFunction": "admin",
    "WebhookFunction": "webhook",
    "WorkerFunction": "worker",
    "MetricsPushFunction": "metrics_push",
    "BackupFunction": "backup",
    "RotationFunction": "rotation",
}


@cache
def _template_text() -> str:
    return TEMPLATE.read_text()


@cache
def _parsed() -> dict[str, Any]:
    return yaml_parse(_template_text())


def _template() -> dict[str, Any]:
    return copy.deepcopy(_parsed())


class _NoManagedPolicies(ManagedPolicyLoader):
    def __init__(self) -> None:  # no IAM client: the template uses no managed policy names
        pass

    def load(self) -> dict[str, str]:
        return {}


def _translate(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    template = _template()
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://artifacts/{logical_id}.zip"
    return transform(template, parameters or {}, _NoManagedPolicies())


def _conventions_events() -> set[str]:
    text = (ROOT / "docs" / "conventions.md").read_text()
    section = text.split("## Log events", 1)[1]
    names = section.split("Names:", 1)[1]
    return set(re.findall(r"`([a-z_]+)`", names))


def test_globals_env_provides_every_required_setting() -> None:
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    required = {name.upper() for name, field in Settings.model_fields.items() if field.is_required()}

    assert required - env.keys() == set()


def test_globals_env_names_are_settings_fields() -> None:
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    fields = {name.upper() for name in Settings.model_fields}

    assert set(env) - fields - POWERTOOLS_ENV == set()


def test_function_env_overrides_are_settings_fields() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    # Lambda Web Adapter knobs of ChatStreamFunction.
    adapter = {"AWS_LAMBDA_EXEC_WRAPPER", "AWS_LWA_INVOKE_MODE", "AWS_LWA_READINESS_CHECK_PROTOCOL", "PORT"}

    for logical_id, resource in _template()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            env = resource["Properties"].get("Environment", {}).get("Variables", {})
            assert set(env) - fields - adapter == set(), logical_id


def test_globals_env_table_vars_ref_the_conventions_logical_ids() -> None:
    env = _template()["Globals"]["Function"]["Environment"]["Variables"]
    table = (ROOT / "docs/conventions.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| `([A-Za-z]+)` \|", table, re.M)

    assert rows
    for var, logical_id in rows:
        assert env[var] == {"Ref": logical_id}, var


def test_functions_use_core_layer_and_own_code_dirs() -> None:
    resources = _template()["Resources"]

    for logical_id, folder in FUNCTIONS.items():
        props = resources[logical_id]["Properties"]
        assert props["CodeUri"] == f"functions/{folder}/"
        assert resources[logical_id]["Metadata"]["BuildMethod"] == "makefile"
    assert _template()["Globals"]["Function"]["Layers"] == [{"Ref": "CoreLayer"}]


def test_http_routes_match_the_contract() -> None:
    resources = _template()["Resources"]
    routes = {
        (logical_id, event["Properties"]["Method"], event["Properties"]["Path"])
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "HttpApi"
    }

    assert routes == {
        ("ChatFunction", "POST", "/chat"),
        ("ChatFunction", "GET", "/chat"),
        ("ChatFunction", "OPTIONS", "/chat"),
        ("ChatFunction", "ANY", "/chat-unified.php"),
        ("ChatFunction", "POST", "/v1/chat/completions"),
        ("ChatFunction", "GET", "/v1/models"),
        ("ChatFunction", "OPTIONS", "/v1/{proxy+}"),
        ("AdminFunction", "ANY", "/admin/{proxy+}"),
        ("AdminFunction", "ANY", "/admin"),
        ("AdminFunction", "ANY", "/admin-api.php"),
        ("AdminFunction", "ANY", "/admin-api.php/{action}"),
        ("AdminFunction", "GET", "/health"),
        ("WebhookFunction", "POST", "/webhooks/openai"),
    }
    throttled = set(resources["HttpApi"]["Properties"]["RouteSettings"])
    assert throttled == {f"{method} {path}" for _, method, path in routes}


def test_every_route_has_admin_or_chat_throttling() -> None:
    settings = _template()["Resources"]["HttpApi"]["Properties"]["RouteSettings"]

    for route, limits in settings.items():
        chat = route.split(" ", 1)[1].startswith(("/chat", "/v1/"))
        expected = "ChatThrottleRate" if chat else "AdminThrottleRate"
        assert limits["ThrottlingRateLimit"] == {"Ref": expected}, route


def test_tables_follow_the_key_and_ttl_conventions() -> None:
    tables = {k: v for k, v in _template()["Resources"].items() if v["Type"] == "AWS::DynamoDB::Table"}

    assert len(tables) == 11
    for logical_id, table in tables.items():
        props = table["Properties"]
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ], logical_id
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    indexes = {
        logical_id: sorted(i["IndexName"] for i in t["Properties"].get("GlobalSecondaryIndexes", []))
        for logical_id, t in tables.items()
    }
    assert indexes["JobsTable"] == ["gsi1", "gsi2"]
    assert indexes["AuditLogTable"] == indexes["ApiKeysTable"] == indexes["VectorStoresTable"] == ["gsi1"]


def test_metric_filters_match_only_conventions_events() -> None:
    known = _conventions_events()
    filters = [r for r in _template()["Resources"].values() if r["Type"] == "AWS::Logs::MetricFilter"]

    assert filters
    for resource in filters:
        pattern = resource["Properties"]["FilterPattern"]
        events = re.findall(r'\$\.event = "([a-z_]+)"', pattern)
        assert events and set(events) <= known, pattern
        for transformation in resource["Properties"]["MetricTransformations"]:
            assert transformation["MetricNamespace"] == "Chatbot"
            assert len(transformation.get("Dimensions", [])) <= 3


def test_alarms_notify_the_alarm_topic() -> None:
    alarms = {k: v for k, v in _template()["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}

    assert len(alarms) >= 17 + 3 * len(FUNCTIONS)
    for logical_id, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}], logical_id


@pytest.mark.parametrize("streaming", ["false", "true"])
def test_transform_in_process_succeeds(streaming: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # samtranslator resolves pseudo parameters through a boto3 session: it needs a region.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    translated = _translate({"EnableStreamingUrl": streaming})
    resources = translated["Resources"]

    assert resources["ChatFunction"]["Type"] == "AWS::Lambda::Function"
    assert resources["ChatStreamFunctionUrl"]["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    # Conditions survive the transform; whoever provisions the result evaluates them.
    assert resources["ChatStreamFunction"]["Condition"] == "StreamingEnabled"
    mapping = resources["WorkerFunctionJobs"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def _lint_rule(text: str) -> list[str]:
    decoded, errors = decode_str(text)
    assert not errors
    cfn = Template("template.yaml", decoded, ["us-east-1"])
    return [match.message for match in FunctionLogGroupRetention().match(cfn)]


def test_log_group_rule_accepts_the_template() -> None:
    assert _lint_rule(_template_text()) == []


def test_log_group_rule_rejects_a_function_without_log_group() -> None:
    text = _template_text().replace("        LogGroup: !Ref WebhookLogGroup\n", "", 1)

    assert _lint_rule(text) == [
        "WebhookFunction has no log group in the template (set LoggingConfig.LogGroup)",
    ]


def test_log_group_rule_rejects_a_log_group_without_retention() -> None:
    name = "      LogGroupName: !Sub /aws/lambda/${AWS::StackName}-backup\n"
    retention = "      RetentionInDays: !Ref LogRetentionDays\n"
    text = _template_text().replace(name + retention, name, 1)

    assert _lint_rule(text) == ["BackupLogGroup (log group of BackupFunction) has no RetentionInDays"]
