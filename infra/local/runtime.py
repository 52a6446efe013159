"""A Lambda-like runtime in this process: each function of the Stack, imported lazily, invoked with a real
event and a Lambda-like context.

Handlers are imported from their CodeUri by file path under the module name Python would give them from the
repository root (`functions/chat/app.py` → `functions.chat.app`), so a test that imports the module itself
gets the very same module object. All functions share this process's environment (the template's Globals
plus the variables the functions agree on; see `Stack.environment`), because os.environ cannot differ per
thread.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from infra.local.observability import invocation
from infra.local.provision import FunctionSpec, Stack

log = logging.getLogger("infra.local.runtime")

Handler = Callable[[Any, Any], Any]


class FunctionNotFound(KeyError):
    pass


@dataclass
class LambdaContext:
    """The attributes and method handlers (and Powertools) read from Lambda's context object."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_s: float
    log_group_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_stream_name: str = field(
        default_factory=lambda: time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
    )
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Runtime:
    """Imports and invokes the Stack's functions; `register` swaps in a test double for one function."""

    def __init__(self, stack: Stack, *, root: Path | None = None) -> None:
        self.stack = stack
        self.root = (root or stack.template_path.parent).resolve()
        self._modules: dict[str, ModuleType] = {}
        self._overrides: dict[str, Handler] = {}
        self._lock = threading.RLock()

    # lookup

    def spec(self, function: str) -> FunctionSpec:
        spec = self.stack.functions.get(function) or self.stack.function_by_name(function)
        if spec is None:
            raise FunctionNotFound(function)
        return spec

    def module(self, function: str) -> ModuleType:
        spec = self.spec(function)
        with self._lock:
            mod = self._modules.get(spec.logical_id)
            if mod is None:
                mod = self._import(spec)
                self._modules[spec.logical_id] = mod
            return mod

    def is_loaded(self, function: str) -> bool:
        """True once the function's module is imported (looking it up then cannot block)."""
        return self.spec(function).logical_id in self._modules

    def _import(self, spec: FunctionSpec) -> ModuleType:
        if spec.handler_file is None or not spec.handler_file.is_file():
            raise FunctionNotFound(f"{spec.logical_id}: handler file {spec.handler_file} not found")
        # No shortcut through sys.modules: a module another thread is still importing is already there,
        # half initialized; import_module returns a module already imported and waits for one in progress.
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))
        started = time.perf_counter()
        try:
            mod = importlib.import_module(spec.module)
            if not _same_file(getattr(mod, "__file__", None), spec.handler_file):
                raise ImportError(f"{spec.module} resolves to {mod.__file__}, not {spec.handler_file}")
        except ImportError:
            # Code outside the repository's package layout: load the file itself under the same name.
            loader_spec = importlib.util.spec_from_file_location(spec.module, spec.handler_file)
            if loader_spec is None or loader_spec.loader is None:
                raise
            mod = importlib.util.module_from_spec(loader_spec)
            sys.modules[spec.module] = mod
            try:
                loader_spec.loader.exec_module(mod)
            except BaseException:
                sys.modules.pop(spec.module, None)
                raise
        log.debug("imported %s in %.0f ms", spec.module, (time.perf_counter() - started) * 1000)
        return mod

    def preload(self, functions: list[str] | None = None) -> dict[str, BaseException]:
        """Import handler modules now (start-up), returning the failures instead of raising them."""
        failures: dict[str, BaseException] = {}
        for function in functions or list(self.stack.functions):
            try:
                self.module(function)
            except Exception as exc:  # noqa: BLE001 - reported by the caller, retried on first use
                failures[function] = exc
        return failures

    def handler(self, function: str) -> Handler:
        spec = self.spec(function)
        override = self._overrides.get(spec.logical_id)
        if override is not None:
            return override
        handler = getattr(self.module(function), spec.handler_attr, None)
        if not callable(handler):
            raise FunctionNotFound(f"{spec.logical_id}: {spec.module} has no callable {spec.handler_attr!r}")
        return handler  # type: ignore[no-any-return]

    def asgi_app(self, function: str) -> Any | None:
        """The function's ASGI app (`app` in its module) when it has one and no test double is registered."""
        spec = self.spec(function)
        if spec.logical_id in self._overrides:
            return None
        app = getattr(self.module(function), "app", None)
        return app if callable(app) else None

    # test doubles

    def register(self, function: str, handler: Handler) -> None:
        """Invoke `handler` instead of the function's own (for tests)."""
        self._overrides[self.spec(function).logical_id] = handler

    def unregister(self, function: str) -> None:
        self._overrides.pop(self.spec(function).logical_id, None)

    # invoke

    def context(self, function: str) -> LambdaContext:
        spec = self.spec(function)
        return LambdaContext(
            function_name=spec.name,
            invoked_function_arn=spec.arn,
            memory_limit_in_mb=spec.memory_size,
            timeout_s=float(spec.timeout),
            log_group_name=spec.log_group_name,
        )

    def invoke(self, function: str, event: Any, context: LambdaContext | None = None) -> Any:
        """Call the handler synchronously in this thread, like one Lambda invocation; exceptions propagate."""
        spec = self.spec(function)
        handler = self.handler(function)
        ctx = context or self.context(function)
        _give_thread_an_event_loop()
        started = time.perf_counter()
        try:
            with invocation(spec.logical_id):  # its log lines go through its log group's metric filters
                return handler(event, ctx)
        finally:
            elapsed = time.perf_counter() - started
            if elapsed > spec.timeout:
                # Lambda would have killed this invocation; a thread cannot be killed, so say it loudly.
                log.warning(
                    "%s ran %.1f s, beyond its %d s timeout (Lambda would have stopped it)",
                    spec.logical_id,
                    elapsed,
                    spec.timeout,
                )


def _give_thread_an_event_loop() -> None:
    """Mangum asks for the current event loop, which Lambda's main thread has and worker threads lack."""
    policy = asyncio.get_event_loop_policy()
    try:
        policy.get_event_loop()
    except RuntimeError:
        policy.set_event_loop(policy.new_event_loop())


def _same_file(a: str | None, b: Path) -> bool:
    if not a:
        return False
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


# The runtime of the local stack running in this process (set by LocalStack), for `invoke(...)`.
_current: Runtime | None = None


def set_current(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("no local stack runtime in this process")
    return _current


def invoke(function: str, event: Any) -> Any:
    """Invoke a function of the local stack running in this process (logical id, name or ARN)."""
    return current().invoke(function, event)
