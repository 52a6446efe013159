"""Fuzz the admin API from its own OpenAPI document (schemathesis) on a running local stack, over HTTP.

Every operation of `/admin/openapi.json` (the REST routes and both legacy forms, whose `action` enum names
every action) gets generated valid and invalid inputs, sent with the admin token; every response must be
no 5xx, have a documented status and content type, and match the documented schema.

The stack is this module's own (what `make run` starts, via the same harness as `local_stack`): the fuzzer
calls every action — it rotates the admin token, redrives the DLQ, deactivates users — which would pull
the rug from under other tests sharing the per-worker stack; and its hundreds of requests from one
address would spend their admin rate limit. The admin token is read from the stack's secret before each
call, so a fuzzed `rotate_admin_token` does not lock the fuzzer out.

Bounded for two cores (about 20 s): a few valid and a few invalid cases per operation
(`ADMIN_FUZZ_MAX_EXAMPLES`, default 5; 30 runs clean in under 2 minutes), derandomized, no shrinking.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.local.harness import StackProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("ADMIN_FUZZ_MAX_EXAMPLES", "5"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = StackProcess(
        template=ROOT / "template.yaml",
        workdir=tmp_path_factory.mktemp("fuzz-stack"),
        env={"ADMIN_RATE_LIMIT": "1000000"},
    )
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def test_admin_api_conforms_to_its_openapi_document(fuzz_stack):
    schema = schemathesis.openapi.from_url(fuzz_stack.url("/admin/openapi.json"))
    schema.config.update(base_url=fuzz_stack.base_url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 60
    secrets, secret_id = fuzz_stack.client("secretsmanager"), fuzz_stack.env["ADMIN_TOKEN_SECRET_ID"]

    def admin_headers() -> dict[str, str]:
        # The current token: the fuzzer may have rotated it (rotate_admin_token is an operation too).
        token = secrets.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
        return {"Authorization": f"Bearer {token}"}

    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation.as_strategy(mode), admin_headers)
            except Unsatisfiable:
                assert mode == GenerationMode.NEGATIVE, operation.label  # nothing in it can be invalid
            except (Exception, BaseExceptionGroup) as exc:  # report each operation's failure, fuzz the next
                failures.append(f"{operation.label} ({mode.value}): {type(exc).__name__}: {exc}"[:3000])

    errors = [
        f"{line.get('path')}: ...{str(line.get('exception') or line.get('message'))[-1500:]}"
        for line in fuzz_stack.logs()
        if line.get("level") in ("ERROR", "CRITICAL")
    ]
    assert failures == [], "\n\n".join(failures) + "\n\nThe stack's errors:\n" + "\n\n".join(errors[:5])


def _fuzz(cases: SearchStrategy[schemathesis.Case], headers: Callable[[], dict[str, str]]) -> None:
    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing case is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def call(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers(), checks=CHECKS)

    call()
