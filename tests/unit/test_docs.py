"""The docs against the repository: links resolve, shell blocks say whether they run, and the reference
tables (resources, parameters, alarms, admin routes, log events) cover what template.yaml and the code have.

The runnable shell blocks themselves run in tests/integration/test_docs_commands.py.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from infra.local.template import load_template
from tests.docs_support import (
    ROOT,
    SHELL_TAGS,
    admin_openapi,
    admin_operations,
    anchors,
    doc_files,
    links,
    replace_route_table,
    route_table,
    shell_blocks,
)

DOCS = ROOT / "docs"
ARCHITECTURE = DOCS / "architecture.md"
API = DOCS / "api.md"
PERMISSIONS = DOCS / "permissions.md"
DEPLOY = DOCS / "operations" / "deploy.md"
ALARMS = DOCS / "operations" / "alarms.md"
LOGS = DOCS / "operations" / "logs.md"
# Resource types architecture.md must name one by one (plus the rules SAM makes from Schedule events).
ARCHITECTURE_TYPES = {
    "AWS::Serverless::Function",
    "AWS::Lambda::Function",
    "AWS::Serverless::LayerVersion",
    "AWS::SQS::Queue",
    "AWS::DynamoDB::Table",
    "AWS::SecretsManager::Secret",
    "AWS::SecretsManager::RotationSchedule",
    "AWS::Events::Rule",
    "AWS::Scheduler::Schedule",
    "AWS::S3::Bucket",
    "AWS::SNS::Topic",
}
SCHEDULE_EVENT_TYPES = {"Schedule", "ScheduleV2"}


@cache
def _template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def _resources() -> dict[str, Any]:
    return dict(_template().get("Resources") or {})


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text) is not None


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# --- links -------------------------------------------------------------------------------------------


def _link_problems(path: Path) -> list[str]:
    """`line: target: problem` for every relative link of `path` that does not resolve."""
    problems = []
    for line, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{line}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{line}: {target}: no heading with anchor #{anchor}")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=_rel)
def test_docs_links_resolve(path):
    assert _link_problems(path) == []


def test_link_check_reports_a_missing_file_and_a_missing_anchor_but_not_code_or_urls(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Real `section`\n")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "[ok](other.md#real-section) [web](https://example.com) `[code](ignored.md)`\n"
        "[gone](missing.md) [bad](other.md#nope) [self](#top)\n"
        "```md\n[inside a block](ignored.md)\n```\n"
        "# Top\n"
    )

    assert _link_problems(doc) == [
        "2: missing.md: no such file",
        "2: other.md#nope: no heading with anchor #nope",
    ]


# --- shell blocks ------------------------------------------------------------------------------------


def test_every_shell_block_says_whether_it_runs_here():
    untagged = [
        f"{b.where}: ```{b.language} {' '.join(b.tags)}".rstrip()
        for b in shell_blocks()
        if not set(b.tags) & SHELL_TAGS
    ]

    assert untagged == [], f"tag each shell block with one of {sorted(SHELL_TAGS)} (docs/conventions.md)"


# --- reference tables against their sources ---------------------------------------------------------


def test_architecture_names_every_function_queue_table_secret_bucket_topic_and_schedule():
    text = ARCHITECTURE.read_text()
    expected = {rid for rid, res in _resources().items() if res.get("Type") in ARCHITECTURE_TYPES}
    for rid, res in _resources().items():
        if res.get("Type") == "AWS::Serverless::Function":
            events = (res.get("Properties") or {}).get("Events") or {}
            # SAM names the EventBridge rule of a Schedule event <function id><event name>.
            expected |= {rid + name for name, ev in events.items() if ev.get("Type") in SCHEDULE_EVENT_TYPES}

    missing = sorted(rid for rid in expected if not _mentions(text, rid))

    assert len(expected) > 20
    assert missing == []


def test_deploy_guide_lists_every_template_parameter():
    text = DEPLOY.read_text()
    parameters = list((_template().get("Parameters") or {}).keys())

    assert [p for p in parameters if not _mentions(text, p)] == []


def test_alarms_page_maps_every_alarm_in_the_template():
    text = ALARMS.read_text()
    alarms = [rid for rid, res in _resources().items() if res.get("Type") == "AWS::CloudWatch::Alarm"]

    assert alarms
    assert [a for a in alarms if not _mentions(text, a)] == []


def test_logs_queries_use_event_names_the_code_logs():
    code = "\n".join(
        p.read_text() for d in ("layers/core/chatbot", "functions") for p in (ROOT / d).rglob("*.py")
    )
    lines = LOGS.read_text().splitlines()
    filters = [line for line in lines if re.match(r"\s*\|?\s*filter\b.*\bevent\b", line)]
    names = {name for line in filters for name in re.findall(r'"([a-z][a-z0-9_]+)"', line)}

    unknown = sorted(n for n in names if f'"{n}"' not in code)

    assert len(names) >= 8
    assert unknown == []


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return admin_openapi()


def test_every_admin_route_is_documented_in_api_or_permissions(openapi):
    text = API.read_text() + (PERMISSIONS.read_text() if PERMISSIONS.exists() else "")
    documented = set(re.findall(r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`]+)`", text))
    missing = [
        f"{op.method} {op.path}"
        for op in admin_operations(openapi)
        if f"{op.method} {op.path}" not in documented and not op.path.startswith("/admin-api.php")
    ]

    assert missing == [], "run: .venv/bin/python -m tests.docs_support"


def test_admin_route_table_in_api_md_is_the_generated_one(openapi):
    text = API.read_text()

    regenerated = replace_route_table(text, route_table(openapi))

    assert regenerated == text, "run: .venv/bin/python -m tests.docs_support"
