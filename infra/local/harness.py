"""`StackProcess`: the local stack as `make run` starts it (`python -m infra.local`), in a child process, on
free ports — for tests, benchmarks and load runs.

The fake OpenAI runs in the calling process (so a test can steer it: faults, replies, latency) and the
stack reaches it through OPENAI_BASE_URL. The child's stdout (the functions' and the stack's JSON log
lines) is collected and searchable. `stack` is the provisioned template as seen from this process
(provisioning is idempotent, so it is simply run again against the child's emulator).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_REGION = "us-east-1"
_MAX_LINES = 200_000


class StackProcess:
    def __init__(
        self,
        *,
        template: str | Path | None = None,
        workdir: str | Path | None = None,
        fake_openai: bool = True,
        env: dict[str, str] | None = None,
        startup_timeout: float = 90.0,
        args: list[str] | None = None,
    ) -> None:
        self.template = Path(template or ROOT / "template.yaml")
        self.workdir = Path(workdir) if workdir else None
        self.use_fake_openai = fake_openai
        self.extra_env = dict(env or {})
        self.extra_args = list(args or [])
        self.startup_timeout = startup_timeout
        self.fake_openai: Any = None
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.lines: list[str] = []
        self._lines_lock = threading.Lock()
        self.dropped = 0  # lines forgotten from the front (positions from mark() stay valid)
        self._stack: Any = None
        self.startup_s: float | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> StackProcess:
        import tempfile

        started = time.perf_counter()
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="local-stack-"))
        workdir.mkdir(parents=True, exist_ok=True)
        ready_file = workdir / "ready.json"
        ready_file.unlink(missing_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
                "PYTHONUNBUFFERED": "1",
                "LOCAL_SCHEDULES": env.get("LOCAL_SCHEDULES", "off"),
                # Never a developer's .local/snapshots: a test that wants snapshots passes a folder in `env`.
                "LOCAL_SNAPSHOTS": "off",
            }
        )
        if self.use_fake_openai:
            from infra.local.fake_openai import FakeOpenAI

            self.fake_openai = FakeOpenAI(port=0, token_latency_ms=0)
            self.fake_openai.start()
            env["OPENAI_BASE_URL"] = self.fake_openai.api_base
            env["OPENAI_API_KEY"] = "sk-test-fake-openai-key-000000000000"
        env.update(self.extra_env)
        cmd = [
            sys.executable,
            "-m",
            "infra.local",
            "--port",
            "0",
            "--emulator-port",
            "0",
            "--template",
            str(self.template),
            "--ready-file",
            str(ready_file),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            info = _read_json(ready_file)
            if info and info.get("complete"):
                self.info = info
                if info.get("provision_error"):
                    self.stop()
                    raise RuntimeError(f"the local stack could not provision: {info['provision_error']}")
                break
            if self.proc.poll() is not None:
                output = "\n".join(self.lines[-30:])
                self.stop()
                raise RuntimeError(f"the local stack exited with {self.proc.returncode}:\n{output}")
            if time.monotonic() > deadline:
                output = "\n".join(self.lines[-30:])
                self.stop()
                raise RuntimeError(
                    f"the local stack did not start within {self.startup_timeout} s:\n{output}"
                )
            time.sleep(0.05)
        self.startup_s = time.perf_counter() - started
        if self.fake_openai is not None:
            self.fake_openai.configure(
                webhook_url=f"{self.base_url}/webhooks/openai", webhook_secret=self.webhook_secret()
            )
        return self

    def _collect(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lines_lock:
                self.lines.append(line.rstrip("\n"))
                if len(self.lines) > _MAX_LINES:  # a long load run must not grow without bound
                    drop = len(self.lines) - _MAX_LINES
                    del self.lines[:drop]
                    self.dropped += drop

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self.fake_openai is not None:
            with contextlib.suppress(Exception):
                self.fake_openai.stop()
            self.fake_openai = None

    def __enter__(self) -> StackProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what tests use ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return str(self.info["base_url"])

    @property
    def emulator_url(self) -> str:
        return str(self.info["emulator_url"])

    @property
    def admin_token(self) -> str:
        return str(self.info["admin_token"])

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    @property
    def env(self) -> dict[str, str]:
        """Environment for code in this process to use the stack: endpoint, credentials, and the
        functions' variables (table names, queue URLs, secret ids)."""
        base = {
            "AWS_ENDPOINT_URL": self.emulator_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": _REGION,
            "AWS_REGION": _REGION,
        }
        functions_env = self.info.get("environment") or self.stack.environment()
        return {**base, **functions_env}

    @property
    def stack(self) -> Any:
        """The provisioned template (`infra.local.provision.Stack`), computed once in this process."""
        if self._stack is None:
            from infra.local.provision import provision

            with _environ(
                {
                    "AWS_ENDPOINT_URL": self.emulator_url,
                    "AWS_ACCESS_KEY_ID": "local",
                    "AWS_SECRET_ACCESS_KEY": "local",
                }
            ):
                self._stack = provision(
                    self.template,
                    stack_name=self.info.get("stack_name", "chatbot-local"),
                    parameters={"Stage": "local"},
                    region=_REGION,
                )
        return self._stack

    def client(self, service: str) -> Any:
        """A boto3 client for the stack's emulator (explicit endpoint: works whatever the environment)."""
        import boto3

        return boto3.session.Session().client(
            service,
            endpoint_url=self.emulator_url,
            region_name=_REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the emulator takes any credentials
        )

    def http(self, **kwargs: Any) -> Any:
        """An httpx.Client on the gateway (close it, or use it as a context manager)."""
        import httpx

        return httpx.Client(base_url=self.base_url, timeout=kwargs.pop("timeout", 30.0), **kwargs)

    def url(self, path: str) -> str:
        return self.base_url + path

    def invoke(self, function: str, event: Any) -> Any:
        """Invoke a function by logical id or name through the gateway's Lambda Invoke API."""
        import httpx

        r = httpx.post(self.url(f"/2015-03-31/functions/{function}/invocations"), json=event, timeout=60)
        r.raise_for_status()
        if r.headers.get("x-amz-function-error"):
            raise RuntimeError(f"{function} failed: {r.text}")
        return r.json()

    def fire(self, schedule: str) -> Any:
        """Run a schedule (its logical id, or its function's) now; returns the function's result."""
        import httpx

        r = httpx.post(self.url(f"/_local/schedules/{schedule}/fire"), timeout=120)
        r.raise_for_status()
        return r.json()["data"]

    def webhook_secret(self) -> str:
        secret_id = (self.info.get("environment") or self.stack.environment())["WEBHOOK_SECRET_ID"]
        value = self.client("secretsmanager").get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        return str(value["SecretString"]).split()[0]

    def logs(self, since: int = 0) -> list[dict[str, Any]]:
        """The child's JSON log lines (functions and stack), from line index `since`."""
        with self._lines_lock:
            lines = self.lines[max(0, since - self.dropped) :]
        out = []
        for line in lines:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict):
                    out.append(doc)
        return out

    def mark(self) -> int:
        """A position in the log, for `logs(since=...)` / `wait_for_log(since=...)`."""
        with self._lines_lock:
            return len(self.lines) + self.dropped

    def wait_for_log(
        self, predicate: Callable[[dict[str, Any]], bool], *, since: int = 0, timeout: float = 10.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.logs(since):
                if predicate(entry):
                    return entry
            if time.monotonic() > deadline:
                raise TimeoutError("no matching log line")
            time.sleep(0.05)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None
