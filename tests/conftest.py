"""Shared fixtures: an in-process AWS with the template's resources, and the real local stack.

- `aws_env` (function): moto `mock_aws` in this process, template.yaml provisioned into it (the resources
  the functions use at run time: tables with their keys and indexes, queues with their redrive policy,
  secrets, buckets, topics), the functions' environment set, the settings and boto3 caches reset. Yields
  the `Stack`. Lean for speed: settings without an effect in moto (TTL, PITR, encryption at rest, bucket
  lifecycle) are left out. For unit and service tests.
- `aws_env_full` (function): every data resource exactly as the template says (also log groups, metric
  filters, alarms, dashboard), for observability tests.
- `local_stack` (session per xdist worker, entered per test): `python -m infra.local` in a subprocess on
  free ports, exactly what `make run` starts, with the fake OpenAI in this process. Yields a
  `infra.local.harness.StackProcess` (base_url, admin_token, stack, fake_openai, emulator_url, helpers);
  during the test AWS_ENDPOINT_URL and the functions' environment point this process at its emulator.
- `emulator` (session per worker): a bare moto server process, for tests that drive pollers/runtime
  in-process against a real emulator over HTTP.

No test reaches a real AWS account: dummy credentials and a region are set here, before any boto3 client
exists, and AWS_ENDPOINT_URL is only ever set by these fixtures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from infra.local.emulator import Emulator
    from infra.local.harness import StackProcess
    from infra.local.provision import Stack

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
LOCAL_PARAMETERS = {"Stage": "local"}

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # No X-Ray daemon in tests; Powertools would only warn on every segment.
        "POWERTOOLS_TRACE_DISABLED": "true",
        # Local stacks started by tests neither restore nor overwrite a developer's .local/snapshots.
        "LOCAL_SNAPSHOTS": "off",
    }
)
for _var in [
    k for k in os.environ if k.startswith("AWS_ENDPOINT_URL") or k in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
]:
    os.environ.pop(_var)


def reset_caches() -> None:
    """Forget settings and boto3 clients built from an earlier environment."""
    from chatbot import aws
    from chatbot.config import get_settings

    get_settings.cache_clear()
    aws.reset()


def provision_into_emulator(emulator_url: str, env: pytest.MonkeyPatch, stack_name: str) -> Stack:
    """The template's runtime resources in a running emulator, and this process's environment set to use
    them (AWS_ENDPOINT_URL and the functions' variables)."""
    from infra.local.provision import RUNTIME_TYPES, provision

    for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        env.delenv(var)
    env.setenv("AWS_ENDPOINT_URL", emulator_url)
    reset_caches()
    stack = provision(
        TEMPLATE,
        stack_name=stack_name,
        parameters=LOCAL_PARAMETERS,
        region=REGION,
        include_types=RUNTIME_TYPES,
        lean=True,
    )
    for key, value in stack.environment().items():
        env.setenv(key, value)
    reset_caches()
    return stack


def _mocked_stack(
    monkeypatch: pytest.MonkeyPatch, include_types: frozenset[str] | None, *, lean: bool
) -> Iterator[Stack]:
    from moto import mock_aws

    from infra.local.provision import provision

    # mock_aws intercepts AWS host names only; an endpoint override would send calls past it.
    for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(var)
    with mock_aws():
        stack = provision(
            TEMPLATE, parameters=LOCAL_PARAMETERS, region=REGION, include_types=include_types, lean=lean
        )
        for key, value in stack.environment().items():
            monkeypatch.setenv(key, value)
        reset_caches()
        try:
            yield stack
        finally:
            reset_caches()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """moto in-process with the template's run-time resources; the functions' environment is set."""
    from infra.local.provision import RUNTIME_TYPES

    yield from _mocked_stack(monkeypatch, RUNTIME_TYPES, lean=True)


@pytest.fixture
def aws_env_full(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Like `aws_env`, with every data resource of the template (log groups, metric filters, alarms...)."""
    yield from _mocked_stack(monkeypatch, None, lean=False)


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """A moto server process on a free port (one per xdist worker)."""
    from infra.local.emulator import Emulator

    emu = Emulator(port=0).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture(scope="session")
def _local_stack_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    from infra.local.harness import StackProcess

    proc = StackProcess(template=TEMPLATE, workdir=tmp_path_factory.mktemp("local-stack"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def local_stack(
    _local_stack_process: StackProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StackProcess]:
    """The running local stack; this test's boto3 clients and settings point at its emulator."""
    for var in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(var)
    for key, value in _local_stack_process.env.items():
        monkeypatch.setenv(key, value)
    reset_caches()
    try:
        yield _local_stack_process
    finally:
        reset_caches()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run minutes-long tests first: under `-n 2` one worker carries them while the other runs the rest,
    instead of the suite waiting for them at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long_running") is None)
