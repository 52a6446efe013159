"""Every shell block marked `bash run-local` in README.md and docs/ runs against a local stack and exits 0.

The blocks run in document order, each in its own `bash -euo pipefail`, from the repository root, with
`.venv/bin` first on PATH and the variables docs/conventions.md ("Docs") promises: CHATBOT_URL, ADMIN_TOKEN,
FAKE_OPENAI_URL, AWS_ENDPOINT_URL with dummy credentials, and the functions' environment.

The stack is this module's own (not the shared `local_stack`): the blocks create agents, users and jobs,
which other tests on the same stack must not see; and it retries jobs after 1 s instead of minutes
(`JOB_BACKOFF_MAX_SECONDS=1`, as docs/operations/dlq.md tells readers to start theirs), so the DLQ
walk-through finishes in seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.harness import StackProcess
from tests.docs_support import ROOT, Block, runnable_blocks

pytestmark = pytest.mark.slow

BLOCK_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def docs_stack() -> Iterator[StackProcess]:
    with StackProcess(template=ROOT / "template.yaml", env={"JOB_BACKOFF_MAX_SECONDS": "1"}) as stack:
        yield stack


def _environment(stack: StackProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(stack.env)
    # Read every time: a block may rotate the token (docs/operations/secrets.md).
    current = stack.client("secretsmanager").get_secret_value(
        SecretId=env["ADMIN_TOKEN_SECRET_ID"], VersionStage="AWSCURRENT"
    )
    env.update(
        {
            "CHATBOT_URL": stack.base_url,
            "ADMIN_TOKEN": str(current["SecretString"]),
            "FAKE_OPENAI_URL": stack.fake_openai.base_url,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    return env


def _run(block: Block, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


def test_the_docs_have_runnable_blocks():
    files = {b.path.name for b in runnable_blocks()}

    assert {"README.md", "api.md", "local-development.md", "dlq.md"} <= files


def test_runnable_blocks_exit_0_against_the_local_stack(docs_stack):
    # One test, blocks in document order on one stack: under pytest-xdist, parametrized cases would be
    # spread over workers, each starting its own stack.
    failures = []
    for block in runnable_blocks():
        result = _run(block, _environment(docs_stack))
        if result.returncode != 0:
            failures.append(
                f"{block.where} exited {result.returncode}\n--- block\n{block.text}\n"
                f"--- stdout\n{result.stdout[-2000:]}\n--- stderr\n{result.stderr[-2000:]}"
            )

    assert not failures, "\n\n".join(failures)


def test_a_failing_block_is_reported(docs_stack):
    block = Block(ROOT / "README.md", 1, "bash", ("run-local",), 'curl -s "$CHATBOT_URL/health"\nfalse')

    result = _run(block, _environment(docs_stack))

    assert result.returncode == 1 and '{"status":"ok"}' in result.stdout
