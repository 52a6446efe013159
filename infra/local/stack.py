"""`LocalStack`: the whole platform on one machine — what `make run` (`python -m infra.local`) starts.

Start-up is CPU-bound (imports, the SAM translator, botocore models), and all of this process's Python
work shares one interpreter lock, so the order spreads the work over the machine's cores and keeps off the
path to the first answers whatever nothing needs yet:

1. bind the gateway port; launch the emulator process, which boots moto on the other core (and, when the
   translated template is not cached yet, translates it first: see `infra.local.emulator`);
2. here, meanwhile: import the HTTP handlers (a thread), start the fake OpenAI, load the AWS service models;
3. provision what requests need (tables, queues, secrets, buckets, topic), seed the secrets, set the
   functions' environment, serve the gateway, start the SQS pollers and the scheduler: `start()` returns;
4. in a background thread: table/bucket settings, the observability resources (log groups, metric
   filters, alarms, dashboard) and the other handlers' imports (`wait_provisioned()` waits for them).

`stop()` undoes it in reverse and restores this process's environment.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from infra.local.emulator import Emulator, EmulatorError, PortInUseError, free_port, port_available
from infra.local.template import TemplateError, is_transform_cached, load_template

log = logging.getLogger("infra.local.stack")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = ROOT / "template.yaml"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_EMULATOR_PORT = 5100
DEFAULT_STACK_NAME = "chatbot-local"
LOCAL_PARAMETERS = {"Stage": "local"}
FAKE_OPENAI_KEY = "sk-local-fake-openai-key-0000000000"
_PLACEHOLDER_PREFIX = "REPLACE_WITH"
_REGION = "us-east-1"


class StartupError(RuntimeError):
    """The local stack cannot start; the message is one line meant for the person who ran it."""


class LocalStack:
    """The emulator, the provisioned template, the fake OpenAI, the gateway, the pollers and the scheduler.

    >>> with LocalStack(port=0, emulator_port=0) as stack:    # doctest: +SKIP
    ...     httpx.get(stack.base_url + "/health")
    """

    def __init__(
        self,
        *,
        template: str | Path | None = None,
        host: str | None = None,
        port: int | None = None,
        emulator_port: int | None = None,
        fake_openai: bool = True,
        stack_name: str = DEFAULT_STACK_NAME,
        parameters: dict[str, Any] | None = None,
        pollers: int | None = None,
        schedule_scale: float | None = None,
        schedules: bool | None = None,
        admin_token: str | None = None,
        openai_api_key: str | None = None,
        preload: bool = True,
    ) -> None:
        self.template_path = Path(template or os.environ.get("LOCAL_TEMPLATE") or DEFAULT_TEMPLATE)
        self.host = host or os.environ.get("HOST") or DEFAULT_HOST
        self.port = port if port is not None else int(os.environ.get("PORT") or DEFAULT_PORT)
        self.emulator_port = (
            emulator_port
            if emulator_port is not None
            else int(os.environ.get("EMULATOR_PORT") or DEFAULT_EMULATOR_PORT)
        )
        self.stack_name = stack_name
        self._given_parameters = dict(parameters or {})
        self.parameters = {**LOCAL_PARAMETERS, **self._given_parameters}
        self.pollers_per_queue = pollers
        self.schedule_scale = schedule_scale
        self.schedules_enabled = schedules
        self.preload = preload
        self.admin_token_override = (
            admin_token if admin_token is not None else os.environ.get("ADMIN_TOKEN") or None
        )
        real_key = openai_api_key if openai_api_key is not None else os.environ.get("OPENAI_API_KEY") or None
        self.openai_api_key = real_key
        self.use_fake_openai = fake_openai and not real_key

        self.emulator: Emulator | None = None
        self.stack: Any = None
        self.runtime: Any = None
        self.gateway: Any = None
        self.server: Any = None
        self.pollers: Any = None
        self.scheduler: Any = None
        self.fake_openai: Any = None
        self.observability: Any = None
        self.admin_token: str | None = None
        self.startup_s: float | None = None
        self._saved_env: dict[str, str] | None = None
        self._started = False
        self._background: threading.Thread | None = None
        self.provisioned = threading.Event()
        self._source: dict[str, Any] = {}
        self.phases: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self.provision_error: BaseException | None = None
        # State across restarts (infra.local.snapshots): restored in start(), taken in stop() — only when the
        # restore worked, so a failed start never saves empty tables over a developer's data.
        self.snapshot_dir: Path | None = None
        self.restored_snapshot: str | None = None

    # urls

    @property
    def base_url(self) -> str:
        return self.server.url if self.server else f"http://{self.host}:{self.port}"

    @property
    def emulator_url(self) -> str | None:
        return self.emulator.url if self.emulator else None

    @property
    def fake_openai_url(self) -> str | None:
        return self.fake_openai.api_base if self.fake_openai else None

    def urls(self) -> dict[str, str | None]:
        return {
            "gateway": self.base_url,
            "widget": f"{self.base_url}/widget/",
            "console": f"{self.base_url}/console/",
            "emulator": self.emulator_url,
            "openai": self.fake_openai_url
            or os.environ.get("OPENAI_BASE_URL")
            or "https://api.openai.com/v1",
        }

    # lifecycle

    def check(self) -> None:
        """Fail fast, with one line, on what would stop start-up: the template and the ports."""
        try:
            self._source = load_template(self.template_path)
        except TemplateError as exc:
            raise StartupError(str(exc)) from None
        # Stage=local only where the template has a Stage parameter; what the user gives is checked as is.
        declared = self._source.get("Parameters") or {}
        self.parameters = {
            **{k: v for k, v in LOCAL_PARAMETERS.items() if k in declared},
            **self._given_parameters,
        }
        if not port_available(self.host, self.port):
            raise StartupError(f"port {self.port} on {self.host} is already in use (gateway; try --port)")
        if self.emulator_port and not port_available(self.host, self.emulator_port):
            raise StartupError(
                f"port {self.emulator_port} on {self.host} is already in use (emulator; try --emulator-port)"
            )

    def start(self) -> LocalStack:
        started = time.perf_counter()
        self.check()
        self._saved_env = dict(os.environ)
        # Start-up creates a few hundred thousand objects that live as long as the process (modules,
        # classes, models); the cyclic collector would scan them over and over for next to no garbage:
        # ~10 % of start-up's CPU. It runs again from the end of start().
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        finally:
            if collecting:
                gc.enable()
        self.startup_s = time.perf_counter() - started
        self._started = True
        return self

    def _mark(self, phase: str) -> None:
        self.phases[phase] = round(time.perf_counter() - self._t0, 3)

    def _start(self) -> None:
        self._t0 = time.perf_counter()
        from infra.local.gateway import Gateway, GatewayServer

        self.server = GatewayServer(None, self.host, self.port)
        try:
            self.server.bind()
        except OSError as exc:
            raise StartupError(
                f"port {self.port} on {self.host} is already in use (gateway): {exc.strerror}"
            ) from None

        # The emulator's port is chosen here so AWS_ENDPOINT_URL is known before moto has booted.
        port = self.emulator_port or free_port(self.host)
        self.emulator = Emulator(port=port, host=self.host)
        cached = is_transform_cached(self.template_path, parameters=self.parameters, region=_REGION)
        translate = None if cached else (self.template_path, self.parameters, _REGION)
        try:
            self.emulator.launch(translate=translate)
        except PortInUseError as exc:
            raise StartupError(f"{exc} (emulator; try --emulator-port)") from None
        self._set_aws_env(self.emulator.url)
        self._mark("emulator_launched")
        from infra.local.observability import LocalObservability

        # Before any handler module is imported: the functions' stdout is their log group.
        self.observability = LocalObservability()
        self.observability.install()

        preloader = None
        if self.preload:
            preloader = threading.Thread(target=self._preload_http_modules, name="preload", daemon=True)
            preloader.start()
        self._start_fake_openai()
        self._mark("fake_openai")

        from infra.local.provision import RUNTIME_TYPES, ProvisionError, prepare, provision

        self.emulator.wait_translated()  # then prepare reads the cache (or translates, and says what failed)
        try:
            prepare(
                self.template_path, parameters=self.parameters, region=_REGION, include_types=RUNTIME_TYPES
            )
        except TemplateError as exc:
            raise StartupError(str(exc)) from None
        self._mark("template_loaded")
        try:
            self.emulator.wait_ready()
        except EmulatorError as exc:
            raise StartupError(str(exc)) from None
        self._mark("emulator_ready")
        try:
            self.stack = provision(
                self.template_path,
                stack_name=self.stack_name,
                parameters=self.parameters,
                region=_REGION,
                include_types=RUNTIME_TYPES,
                defer_settings=True,
            )
        except (TemplateError, ProvisionError) as exc:
            raise StartupError(str(exc)) from None
        log.info(
            "provisioned the run-time resources in %.2f s %s",
            self.stack.duration_s,
            json.dumps(self.stack.summary()),
        )
        self._mark("provisioned")

        self._seed_secrets()
        self._set_stack_env()
        self._restore_snapshot()

        from infra.local.pollers import Pollers
        from infra.local.runtime import Runtime, set_current
        from infra.local.scheduler import Scheduler

        self.runtime = Runtime(self.stack, root=ROOT)
        set_current(self.runtime)
        self.scheduler = Scheduler(
            self.stack, self.runtime.invoke, scale=self.schedule_scale, enabled=self.schedules_enabled
        )
        self.observability.attach(self.stack, clock=self.scheduler.now, scale=self.scheduler.scale)
        self.gateway = Gateway(self.stack, self.runtime, fire=self.scheduler.fire)
        self.server.app = self.gateway
        self._mark("secrets_env")
        if preloader is not None:
            preloader.join(60)
        self._mark("preloaded")
        http_functions = sorted({route.function for route in self.stack.routes})
        failures = self.runtime.preload(http_functions) if self.preload else {}
        for function, exc in failures.items():
            log.warning("could not import %s: %s: %s", function, type(exc).__name__, exc)
        self.server.start()
        self._mark("gateway")
        self.pollers = Pollers(self.stack, self.runtime.invoke, pollers=self.pollers_per_queue)
        self.pollers.start()
        self.scheduler.start()
        if self.scheduler.enabled:  # metrics to the emulator and alarm evaluation, once a (scaled) minute
            self.observability.start()
        # Last: its emulator calls and imports would otherwise compete with the steps above for the CPU.
        self._background = threading.Thread(
            target=self._finish_in_background, name="provision-rest", daemon=True
        )
        self._background.start()
        self._mark("ready")
        log.info("start-up phases (s since start): %s", json.dumps(self.phases))

    def _finish_in_background(self) -> None:
        """What no request needs at once: the deferred table and bucket settings, the log groups, metric
        filters, alarms and dashboard; then the handlers that only pollers and schedules run."""
        from infra.local.provision import OBSERVABILITY_TYPES, provision

        # Two threads, not eight: the work is CPU-bound on both sides (botocore here, moto there), and each
        # thread more is one more contender for the interpreter locks that the first requests need.
        workers = 2
        try:
            self.stack.apply_deferred(max_workers=workers)
            rest = provision(
                self.template_path,
                stack_name=self.stack_name,
                parameters=self.parameters,
                region=_REGION,
                include_types=OBSERVABILITY_TYPES,
                known=self.stack.resources,
                max_workers=workers,
            )
        except Exception as exc:
            self.provision_error = exc
            log.exception("provisioning the observability resources failed")
        else:
            for lid, res in rest.resources.items():
                if res.status in ("created", "existing"):
                    self.stack.resources[lid] = res
            log.info(
                "provisioned the observability resources in %.2f s %s",
                rest.duration_s,
                json.dumps(self.stack.summary()),
            )
        finally:
            self.provisioned.set()
        if self.preload:
            # Imported now rather than on a poller's or a schedule's first run.
            self._import_handlers(handler_modules(self._source, self.template_path.parent)[1])

    def wait_provisioned(self, timeout: float | None = None) -> bool:
        """Wait until every resource of the template exists in the emulator (start() returns earlier)."""
        return self.provisioned.wait(timeout)

    def _preload_http_modules(self) -> None:
        """Import the HTTP handlers (they decide when the stack answers) while the emulator boots."""
        self._import_handlers(handler_modules(self._source, self.template_path.parent)[0])

    @staticmethod
    def _import_handlers(modules: list[str]) -> None:
        """Import handler modules ahead of their first use, outside the runtime's lock (so requests never
        wait on them). A module that needs the stack's environment at import fails here and is imported
        again on first use, which reports the error."""
        import importlib

        for module in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(module)

    def _set_aws_env(self, endpoint: str) -> None:
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL_")]:
            del os.environ[key]
        for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(key, None)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                # The emulator accepts any credentials; real ones must never be sent anywhere from here.
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": _REGION,
                "AWS_REGION": _REGION,
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))

    def _set_stack_env(self) -> None:
        os.environ.update(self.stack.environment())
        os.environ.pop("POWERTOOLS_SERVICE_NAME", None)
        if self.use_fake_openai and self.fake_openai is not None:
            os.environ["OPENAI_BASE_URL"] = self.fake_openai.api_base
            os.environ["OPENAI_API_KEY"] = FAKE_OPENAI_KEY
        from chatbot import aws
        from chatbot.config import get_settings

        get_settings.cache_clear()
        aws.reset()
        from infra.local.provision import share_data_loader

        # The functions run in this process: their clients reuse the service models provisioning parsed.
        share_data_loader(aws.session())

    def _start_fake_openai(self) -> None:
        if not self.use_fake_openai:
            if not self.openai_api_key:
                log.warning("no fake OpenAI and no OPENAI_API_KEY: chat requests will fail upstream")
            return
        from infra.local.fake_openai import FakeOpenAI

        self.fake_openai = FakeOpenAI(port=int(os.environ.get("FAKE_OPENAI_PORT") or 0), host=self.host)
        try:
            self.fake_openai.start()
        except OSError as exc:
            raise StartupError(f"fake OpenAI cannot listen on {self.host}: {exc.strerror}") from None

    def _seed_secrets(self) -> None:
        from infra.local.provision import new_session

        env = self.stack.environment()
        sm = new_session(_REGION).client("secretsmanager", region_name=_REGION)

        def current(secret_id: str) -> str:
            # Always name the stage: moto returns a stale version after a stage move otherwise.
            return str(
                sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT").get("SecretString", "")
            )

        def put(secret_id: str, value: str) -> None:
            if current(secret_id) != value:
                sm.put_secret_value(SecretId=secret_id, SecretString=value)

        admin_id = env.get("ADMIN_TOKEN_SECRET_ID")
        if admin_id:
            if self.admin_token_override:
                put(admin_id, self.admin_token_override)
            self.admin_token = current(admin_id)
        openai_id = env.get("OPENAI_SECRET_ID")
        if openai_id:
            put(openai_id, self.openai_api_key or FAKE_OPENAI_KEY)
        webhook_id = env.get("WEBHOOK_SECRET_ID")
        if webhook_id:
            secret = current(webhook_id)
            if not secret or secret.startswith(_PLACEHOLDER_PREFIX):
                from infra.local.fake_openai import new_webhook_secret

                secret = new_webhook_secret()
                sm.put_secret_value(SecretId=webhook_id, SecretString=secret)
            if self.fake_openai is not None:
                # The fake announces vector store ingestion results to our webhook route, signed.
                self.fake_openai.configure(
                    webhook_url=f"http://{self.host}:{self.server.port}/webhooks/openai",
                    webhook_secret=secret.split()[0],
                )

    def stop(self) -> None:
        if self._background is not None:
            self._background.join(30)  # never kill the emulator under a provisioning pass
            self._background = None
        for name, part in (
            ("observability", self.observability),
            ("scheduler", self.scheduler),
            ("pollers", self.pollers),
            ("gateway", self.server),
            ("fake OpenAI", self.fake_openai),
            ("emulator", self.emulator),
        ):
            if part is None:
                continue
            if name == "emulator":  # nothing writes any more; the emulator still answers
                self._take_snapshot()
            try:
                part.stop()
            except Exception:
                log.exception("stopping the %s failed", name)
        self.scheduler = self.pollers = self.fake_openai = self.observability = None
        self.emulator = None
        if self.runtime is not None:
            from infra.local.runtime import current, set_current

            with contextlib.suppress(RuntimeError):
                if current() is self.runtime:
                    set_current(None)
        if self._saved_env is not None:
            os.environ.clear()
            os.environ.update(self._saved_env)
            self._saved_env = None
            with contextlib.suppress(Exception):
                from chatbot import aws
                from chatbot.config import get_settings

                get_settings.cache_clear()
                aws.reset()
        self._started = False

    def _restore_snapshot(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from chatbot.errors import ChatbotError
        from infra.local import snapshots

        directory = snapshots.snapshot_dir()
        try:
            self.restored_snapshot = snapshots.restore_latest(directory) if directory else None
        except (ChatbotError, BotoCoreError, ClientError, OSError, ValueError) as exc:
            log.warning(
                "could not restore the snapshot in %s (%s: %s); starting empty, and no snapshot will be "
                "taken on stop, so nothing newer hides it",
                directory,
                type(exc).__name__,
                exc,
            )
            return
        self.snapshot_dir = directory
        self._mark("snapshot_restored")

    def _take_snapshot(self) -> None:
        if self.snapshot_dir is None:
            return
        from infra.local import snapshots

        try:
            snapshots.take(self.snapshot_dir)
        except Exception:
            log.exception("taking a snapshot in %s failed", self.snapshot_dir)
        self.snapshot_dir = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # reporting

    def ready_info(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "emulator_url": self.emulator_url,
            "fake_openai_url": self.fake_openai_url,
            "admin_token": self.admin_token,
            "stack_name": self.stack_name,
            "region": _REGION,
            "startup_s": round(self.startup_s or 0.0, 3),
            "complete": self.provisioned.is_set(),
            "provision_error": None if self.provision_error is None else str(self.provision_error),
            "environment": self.stack.environment() if self.stack is not None else {},
            "pid": os.getpid(),
        }

    def banner(self) -> str:
        urls = self.urls()
        openai_note = "(fake)" if self.fake_openai else "(real, OPENAI_API_KEY)"
        lines = [
            f"chatbot local stack ready in {self.startup_s or 0:.1f} s",
            f"  gateway      {urls['gateway']}",
            f"  widget       {urls['widget']}",
            f"  console      {urls['console']}",
            f"  emulator     {urls['emulator']}   (AWS_ENDPOINT_URL; credentials: any)",
            f"  openai       {urls['openai']}   {openai_note}",
            f"  admin token  {self.admin_token}",
            "Ctrl-C stops everything.",
        ]
        return "\n".join(lines)


def handler_modules(source: dict[str, Any], base_dir: Path) -> tuple[list[str], list[str]]:
    """Import names of the SAM functions' handler modules: (functions with HTTP events, the others)."""
    defaults = (source.get("Globals") or {}).get("Function") or {}
    http: list[str] = []
    other: list[str] = []
    for res in (source.get("Resources") or {}).values():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        code = props.get("CodeUri", defaults.get("CodeUri"))
        handler = props.get("Handler", defaults.get("Handler", "app.handler"))
        if not isinstance(code, str) or not isinstance(handler, str) or code.startswith("s3://"):
            continue
        module_path = handler.rpartition(".")[0].replace(".", "/")
        if not (base_dir / code / f"{module_path}.py").is_file():
            continue
        module = ".".join([*Path(code).parts, *module_path.split("/")])
        events = (props.get("Events") or {}).values()
        group = http if any(e.get("Type") in ("HttpApi", "Api") for e in events) else other
        if module not in http and module not in other:
            group.append(module)
    return http, other


class JsonLogFormatter(logging.Formatter):
    """The local stack's own log lines, in the same JSON shape as the functions' Powertools lines."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": "local-stack",
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
            entry["exception_name"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(entry, default=str)


def configure_logging(stream: TextIO | None = None, level: str | None = None) -> None:
    """One stream (stdout) for everything: the stack's lines and the functions' Powertools JSON lines."""
    import time as _time

    JsonLogFormatter.converter = _time.gmtime  # type: ignore[assignment]
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLogFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("LOCAL_LOG_LEVEL") or "INFO").upper())
    noisy_loggers = (
        "botocore",
        "boto3",
        "urllib3",
        "werkzeug",
        "uvicorn.access",
        "httpx",
        "httpx2",
        "httpcore",
        "openai",
    )
    for noisy in noisy_loggers:
        logging.getLogger(noisy).setLevel(logging.WARNING)
