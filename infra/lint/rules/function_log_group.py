"""cfn-lint rule: every Lambda function logs to a log group declared in the template with a retention.

Lambda otherwise creates `/aws/lambda/<name>` on first invocation with infinite retention, outside the stack,
and the template's metric filters would have nothing to attach to. cfn-lint hands custom rules the template
before the SAM transform, so both AWS::Serverless::Function (with Globals) and AWS::Lambda::Function are
checked. Enabled by .cfnlintrc (append_rules).
"""

from __future__ import annotations

from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template


def _ref(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"} and isinstance(value["Ref"], str):
        return value["Ref"]
    return None


def _sub_names_function(name_value: Any, function_id: str) -> bool:
    """True when a LogGroupName is `!Sub /aws/lambda/${Function}` for this function."""
    if isinstance(name_value, dict) and "Fn::Sub" in name_value:
        sub = name_value["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) and sub else sub
        return isinstance(text, str) and text == f"/aws/lambda/${{{function_id}}}"
    return False


class FunctionLogGroupRetention(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "Lambda functions need a template log group with RetentionInDays"
    description = (
        "Every AWS::Lambda::Function and AWS::Serverless::Function must log to an AWS::Logs::LogGroup "
        "declared in the template (LoggingConfig.LogGroup or /aws/lambda/${Function}) with RetentionInDays."
    )
    source_url = "docs/conventions.md"
    tags = ["lambda", "logs", "project"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        log_groups = cfn.get_resources(["AWS::Logs::LogGroup"])
        global_function = (cfn.template.get("Globals") or {}).get("Function") or {}
        global_logging = global_function.get("LoggingConfig") or {}
        functions = cfn.get_resources(["AWS::Lambda::Function", "AWS::Serverless::Function"])
        for function_id, function in functions.items():
            props = function.get("Properties") or {}
            logging_config = props.get("LoggingConfig") or {}
            if function.get("Type") == "AWS::Serverless::Function" and "LogGroup" not in logging_config:
                logging_config = global_logging
            target = _ref(logging_config.get("LogGroup"))
            candidates = []
            if target is not None:
                if target not in log_groups:
                    matches.append(
                        RuleMatch(
                            ["Resources", function_id, "Properties", "LoggingConfig", "LogGroup"],
                            f"{function_id} logs to {target}, not an AWS::Logs::LogGroup of this template",
                        )
                    )
                    continue
                candidates = [target]
            else:
                candidates = [
                    group_id
                    for group_id, group in log_groups.items()
                    if _sub_names_function((group.get("Properties") or {}).get("LogGroupName"), function_id)
                ]
            if not candidates:
                matches.append(
                    RuleMatch(
                        ["Resources", function_id],
                        f"{function_id} has no log group in the template (set LoggingConfig.LogGroup)",
                    )
                )
                continue
            for group_id in candidates:
                if "RetentionInDays" not in (log_groups[group_id].get("Properties") or {}):
                    matches.append(
                        RuleMatch(
                            ["Resources", group_id, "Properties"],
                            f"{group_id} (log group of {function_id}) has no RetentionInDays",
                        )
                    )
        return matches
