"""The AWS emulator: moto's server in its own process on 127.0.0.1.

Its own process, so the emulator never competes with the gateway and the handlers for one interpreter lock.
The parent starts `python -m infra.local.emulator --port N` (in a session of its own, so a Ctrl-C reaches
the parent only, which stops the emulator last), reads one ready line with the bound port from the child's
stdout, and keeps the child's stdin open: when the parent dies, the child sees EOF and exits, so a crashed
test run never leaves an emulator behind.

`launch(translate=...)` also has the child translate the SAM template into the template cache before it
boots moto (`infra.local.template.load_and_transform`), and say so on stdout (`wait_translated()`). The
translator imports boto3, which moto imports anyway, so there it costs ~0.6 s of CPU on the child's core
instead of ~1 s of the parent's interpreter lock (or ~1.5 s in a process of its own) — a cold start's
largest single cost. The parent then reads the cache; if the child could not translate, the parent's
`load_and_transform` translates and reports the error.

The child serves moto's WSGI app with `EmulatorServer` (uvicorn) rather than moto's own werkzeug server, which
closes every connection and starts a thread per request: here connections stay open, DynamoDB's item and
query requests run on the event loop (they are applied one at a time anyway), and every other request runs
in a thread (an SQS long poll waits there). From boto3, an `UpdateItem` took 2.09 ms instead of 2.45, a
`Query` 1.61 instead of 2.01, and the two started together 2.89 instead of 4.19 (p50, 2026-12-05).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from infra.local.asgi_server import BackgroundServer, Receive, Scope, Send, read_body

ROOT = Path(__file__).resolve().parents[2]
_READY = "emulator_ready"
_TRANSLATED = "template_translated"


class EmulatorError(RuntimeError):
    """The emulator could not start or stopped answering."""


class PortInUseError(EmulatorError):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"port {port} on {host} is already in use")
        self.host = host
        self.port = port


def port_available(host: str, port: int) -> bool:
    """True when `port` can be bound on `host` (same SO_REUSEADDR rule as the servers we start)."""
    if port == 0:
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now (another process may still take it; only for tests and defaults)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class Emulator:
    """moto server in a child process.

    >>> emu = Emulator(port=0).start()   # doctest: +SKIP
    >>> emu.url                          # 'http://127.0.0.1:54321'
    >>> emu.stop()
    """

    def __init__(self, port: int = 0, host: str = "127.0.0.1", *, startup_timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready_port: int | None = None
        self._ready = threading.Event()  # set on the ready line, or when stdout ends without one
        self._translated = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Emulator:
        """Start the child and wait until it answers HTTP. Raises PortInUseError or EmulatorError."""
        self.launch()
        return self.wait_ready()

    def launch(self, *, translate: tuple[str | Path, dict[str, Any], str] | None = None) -> None:
        """Spawn the child without waiting (so the caller can do other work while moto imports).

        `translate=(template, parameters, region)`: the child first fills the template cache (module doc).
        """
        if self._proc is not None:
            raise EmulatorError("emulator already started")
        if not port_available(self.host, self.port):
            raise PortInUseError(self.host, self.port)
        self._ready_port = None
        self._ready.clear()
        self._translated.clear()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        command = [
            sys.executable,
            "-m",
            "infra.local.emulator",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--watch-stdin",
        ]
        if translate is not None:
            template, parameters, region = translate
            command += ["--translate", str(template), "--parameters", json.dumps(parameters, default=str)]
            command += ["--region", region]
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = region  # the translator asks boto3 for one
        else:
            self._translated.set()
        # Its own session: a Ctrl-C or a signal to the caller's process group must not stop the emulator
        # before the caller's pollers and requests have ended (they would retry against it for seconds);
        # the caller stops it (stop()), or it exits when the caller's end of stdin closes.
        self._proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        threading.Thread(target=self._read_stdout, args=(self._proc,), daemon=True).start()

    def wait_translated(self, timeout: float | None = None) -> bool:
        """Wait until the child has translated the template given to `launch` (or gave up, or exited)."""
        return self._translated.wait(self.startup_timeout if timeout is None else timeout)

    def wait_ready(self) -> Emulator:
        proc = self._proc
        if proc is None or proc.stdout is None:
            raise EmulatorError("emulator not launched")
        self._ready.wait(self.startup_timeout)
        if self._ready_port is None:
            err = self._stop_and_collect_error()
            if "in use" in err:
                raise PortInUseError(self.host, self.port)
            raise EmulatorError(f"emulator did not start: {err or 'no ready signal'}")
        self.port = self._ready_port
        # Keep draining stderr so a chatty child never blocks on a full pipe (stdout: see _read_stdout).
        threading.Thread(target=_drain, args=(proc.stderr, sys.stderr.buffer), daemon=True).start()
        self._wait_answering()
        return self

    def _read_stdout(self, proc: subprocess.Popen[bytes]) -> None:
        """Note the child's announcements, then keep draining its stdout."""
        assert proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in proc.stdout:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    continue
                event = msg.get("event") if isinstance(msg, dict) else None
                if event == _TRANSLATED:
                    self._translated.set()
                elif event == _READY:
                    self._ready_port = int(msg["port"])
                    self._translated.set()
                    self._ready.set()
        self._translated.set()
        self._ready.set()

    def _stop_and_collect_error(self) -> str:
        proc = self._proc
        self._proc = None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.kill()
        try:
            _, err = proc.communicate(timeout=5)
        except (subprocess.TimeoutExpired, ValueError):
            err = b""
        lines = [ln for ln in (err or b"").decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def _wait_answering(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                # Any HTTP answer proves the WSGI app is serving; moto answers 404 on an unknown path.
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2).close()  # noqa: S310
                return
            except urllib.error.HTTPError:
                return
            except OSError as exc:
                if not self.running or time.monotonic() > deadline:
                    self._stop_and_collect_error()
                    raise EmulatorError(f"emulator at {self.url} does not answer: {exc}") from exc
                time.sleep(0.05)

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")  # noqa: S310 - our http URL
        urllib.request.urlopen(req, timeout=10).close()  # noqa: S310

    def stop(self, timeout: float = 5.0) -> None:
        proc = self._proc
        self._proc = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> Emulator:
        return self.start() if self._proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _drain(stream: object, sink: object = None) -> None:
    with contextlib.suppress(OSError, ValueError):
        for chunk in iter(lambda: stream.readline(), b""):  # type: ignore[attr-defined]
            if sink is not None:
                sink.write(chunk)  # type: ignore[attr-defined]
                sink.flush()  # type: ignore[attr-defined]


# --- child process ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("EMULATOR_PORT", "5000")))
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (parent gone)")
    parser.add_argument("--translate", metavar="TEMPLATE", help="first translate TEMPLATE into the cache")
    parser.add_argument("--parameters", default="{}", help="its parameters, a JSON object")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)

    if not port_available(args.host, args.port):
        print(f"emulator: port {args.port} on {args.host} is already in use", file=sys.stderr, flush=True)
        return 2
    # Until the warm-up ends: imports make long-lived objects only, which the cyclic collector would scan
    # again and again for nothing (~5-10 % of this start-up's CPU).
    gc.disable()
    if args.translate:
        _translate(args.translate, json.loads(args.parameters), args.region)

    # Per-request access lines would drown the function logs of the local stack.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    serialise_dynamodb()
    query_one_partition()
    skip_per_request_rework()
    return_stored_attribute_values()
    keep_alarm_state_on_update()
    server = EmulatorServer(args.host, args.port)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 2
    port = server.port

    stop = threading.Event()  # set by the stdin watcher
    # The handlers only record the signal: one calling stop.set() runs again inside itself when a second
    # signal follows quickly, and then waits forever for the Event's lock, which its first run holds.
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    if args.watch_stdin:
        threading.Thread(target=_wait_parent_gone, args=(stop,), daemon=True).start()

    print(json.dumps({"event": _READY, "port": port}), flush=True)
    threading.Thread(target=_warm_up, args=(server,), daemon=True).start()
    while not signals and not stop.wait(0.2):  # a timeout, so a handler run is noticed soon
        pass
    server.stop()
    sys.stdout.flush()
    # The stdin watcher thread may still block in read(); a normal interpreter exit would abort on it.
    os._exit(0)


def _translate(template: str, parameters: dict[str, Any], region: str) -> None:
    """Fill the template cache, before moto's import (the parent needs the template before the emulator)."""
    # The translator's metrics warn when collected unpublished; nothing the person running the stack can use.
    logging.getLogger("samtranslator").setLevel(logging.ERROR)
    try:
        from infra.local.template import load_and_transform

        load_and_transform(template, parameters=parameters, region=region)
    except Exception:  # noqa: BLE001, S110 - the parent translates again and reports the error
        pass
    print(json.dumps({"event": _TRANSLATED}), flush=True)


# DynamoDB applies each write atomically and isolates transactions; moto checks a write's condition and then
# writes without a lock, applies an update's actions one by one, and undoes a cancelled TransactWriteItems by
# restoring a copy of the whole table (erasing what other requests wrote meanwhile). Under the threaded
# server, two concurrent conditional writes could both succeed (two default agents, a job claimed twice), a
# read could see half an update, and a query could iterate a partition while a write resizes it. moto's
# DynamoDB is pure Python under one interpreter lock anyway, so applying requests one at a time costs nothing.
# Reentrant: `EmulatorServer` takes it before running a DynamoDB request on its event loop.
DYNAMODB_LOCK = threading.RLock()


def serialise_dynamodb() -> None:
    """Make moto's DynamoDB handle one request at a time; idempotent."""
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialised", False):
        return

    def call_action(self: DynamoHandler) -> object:
        with DYNAMODB_LOCK:
            return original(self)

    call_action.serialised = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]


def skip_per_request_rework() -> None:
    """Cache what moto recomputes on every request without need; idempotent.

    Under load these dominated the emulator's CPU per job: finding a request's service lists moto's package
    folder and tries hundreds of URL patterns, holding the lock every request takes; and ReceiveMessage
    builds every attribute of the queue again for each message it looks at, to read one number; and each
    UpdateItem parses its expression again (our repositories send a handful of distinct ones; the validator
    works on its own deep copy of the parsed tree, so sharing one is safe)."""
    from moto.core.utils import unix_time
    from moto.dynamodb.models import UpdateExpressionParser
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import SQSBackend

    lookup = DomainDispatcherApplication.get_backend_for_host
    if getattr(lookup, "cached", False):
        return
    backends: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in backends:
            backends[host] = lookup(self, host)
        return backends[host]

    def is_message_valid_based_on_retention_period(self: SQSBackend, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    parse_update = UpdateExpressionParser.make
    UpdateExpressionParser.make = staticmethod(functools.lru_cache(maxsize=512)(parse_update))  # type: ignore[method-assign]
    get_backend_for_host.cached = True  # type: ignore[attr-defined]
    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]


def query_one_partition() -> None:
    """Make moto's Query read the partition it asks for instead of the whole table; idempotent.

    moto gathers and sorts every item of the table for each Query, so a chat's history read (and any job
    listing) got slower with every item the local stack had stored. A base-table query now looks at its own
    partition, and an index query skips the sort (its results are sorted by the index keys afterwards).
    Needs `serialise_dynamodb`: the per-call view is set on the table object while the query runs."""
    from moto.dynamodb.models.table import Table

    original = Table.query
    if getattr(original, "one_partition", False):
        return

    def query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
        if not self.range_key_attr:  # our tables all have one; keep moto's path for the others
            return original(self, hash_key, *args, **kwargs)
        if index_name is None:
            partition = self.items.get(hash_key, {})
            view = lambda: list(partition.values())  # noqa: E731
        else:
            view = lambda: [i for p in self.items.values() for i in p.values()]  # noqa: E731
        self.all_items = view  # type: ignore[method-assign]
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    query.one_partition = True  # type: ignore[attr-defined]
    Table.query = query  # type: ignore[method-assign]


def return_stored_attribute_values() -> None:
    """Send DynamoDB attribute values that are already in the wire format as they are; idempotent.

    moto's response serializer walks the `AttributeValue` shape (ten members, each looked up under several
    names) for every attribute of every item it returns: 70 % of a `Query` returning 8 chat turns, most of a
    backup's `Scan`. Strings, numbers (kept as strings), booleans, their sets, and maps and lists of them
    need no encoding; anything else (binary values go out base64) still takes moto's way."""
    from moto.core.serialize import BaseJSONSerializer

    original = BaseJSONSerializer._serialize_type_structure
    if getattr(original, "as_stored", False):
        return

    def serialize_structure(
        self: BaseJSONSerializer, serialized: Any, value: Any, shape: Any, key: str
    ) -> None:
        if shape.name == "AttributeValue" and in_wire_format(value):
            if key:
                self._default_serialize(serialized, value, shape, key)
            else:
                serialized.update(value)
            return
        original(self, serialized, value, shape, key)

    serialize_structure.as_stored = True  # type: ignore[attr-defined]
    BaseJSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def in_wire_format(value: Any) -> bool:
    """Whether the DynamoDB attribute value `value` serialises to itself (see the function above)."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return type(inner) is str
    if kind in ("BOOL", "NULL"):
        return type(inner) is bool
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "M":
        return type(inner) is dict and all(type(k) is str and in_wire_format(v) for k, v in inner.items())
    if kind == "L":
        return type(inner) is list and all(in_wire_format(v) for v in inner)
    return False


_ALARM_STATE = ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp", "history")


def keep_alarm_state_on_update() -> None:
    """`PutMetricAlarm` on an existing alarm keeps its state, as CloudWatch does; idempotent.

    moto builds a new alarm in OK ("Unchecked: Initial alarm creation"), so provisioning the template again
    (a test's `StackProcess.stack`) wiped the states the local alarm evaluator had set, and the evaluator,
    which writes only changes, never set them again."""
    from moto.cloudwatch.models import CloudWatchBackend

    original = CloudWatchBackend.put_metric_alarm
    if getattr(original, "keeps_state", False):
        return

    def put_metric_alarm(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        previous = self.alarms.get(kwargs["name"] if "name" in kwargs else args[0])
        alarm = original(self, *args, **kwargs)
        if previous is not None:
            for field in _ALARM_STATE:
                setattr(alarm, field, getattr(previous, field))
        return alarm

    put_metric_alarm.keeps_state = True  # type: ignore[attr-defined]
    CloudWatchBackend.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]


# The services the template uses: moto builds each service's app and parses its model on the first
# request; doing it now overlaps with the parent's own start-up instead of delaying it. First those the
# parent provisions before it serves, then those of the observability resources it provisions later.
# Not SSM: its app loads every public AWS parameter (seconds) while holding the lock all requests take.
WARM_SERVICES = ("sqs", "dynamodb", "secretsmanager", "s3", "sns", "logs", "cloudwatch")


def _warm_up(server: EmulatorServer) -> None:
    try:
        _warm_services(server)
    finally:
        gc.enable()


def _warm_services(server: EmulatorServer) -> None:
    from moto.core.utils import get_service_model

    app = server.app
    for service in WARM_SERVICES:
        with contextlib.suppress(Exception):
            with app.lock:
                if service not in app.app_instances:
                    app.app_instances[service] = app.create_app(service)
            get_service_model(service)
        if service == "dynamodb":
            # An encrypted table's creation makes DynamoDB's default KMS key; set up moto's KMS backend
            # (~0.1 s) now rather than inside the first CreateTable, which the other tables wait for.
            with contextlib.suppress(Exception):
                from moto.core import DEFAULT_ACCOUNT_ID
                from moto.kms import kms_backends

                kms_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]  # looking it up creates it


# --- the HTTP server ----------------------------------------------------------------------------------------

# Run on the event loop: short, and what the chat path waits for. A Scan, a table's creation and the rest
# (which may take long, and would hold up every other request) run in threads like the other services.
_INLINE_DYNAMODB = frozenset(
    f"DynamoDB_20120810.{op}"
    for op in (
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    )
)
_NO_BODY_STATUSES = (204, 304)
# SQS long polls hold a thread each for up to 20 s; threads are only started when needed.
_MAX_THREADS = 512


class EmulatorServer:
    """moto's WSGI app as an ASGI app, served by uvicorn from a background thread (module doc)."""

    def __init__(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.app = DomainDispatcherApplication(create_backend_app)
        self._pool = ThreadPoolExecutor(max_workers=_MAX_THREADS, thread_name_prefix="emulator")
        # botocore keeps its connections open; closing them early only costs reconnects.
        self._server = BackgroundServer(self, host, port, name="emulator", timeout_keep_alive=120)

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        environ = wsgi_environ(scope, await read_body(receive))
        if environ.get("HTTP_X_AMZ_TARGET") in _INLINE_DYNAMODB and DYNAMODB_LOCK.acquire(blocking=False):
            try:
                status, headers, body = self._run(environ)
            finally:
                DYNAMODB_LOCK.release()
        else:
            loop = asyncio.get_running_loop()
            status, headers, body = await loop.run_in_executor(self._pool, self._run, environ)
        code = int(status.split(" ", 1)[0])
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        sized = any(k == b"content-length" for k, _ in raw)
        if not sized and scope["method"] != "HEAD" and code >= 200 and code not in _NO_BODY_STATUSES:
            raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": code, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def _run(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            started[:] = [status, headers]
            return lambda data: None  # the write() callable; moto's app returns its body instead

        result = self.app(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        return started[0], started[1], body


def wsgi_environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ werkzeug's server (with moto's request handler) builds for this request."""
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    query = scope.get("query_string", b"").decode("latin-1")
    raw_uri = scope.get("raw_path", b"").decode("latin-1") + (f"?{query}" if query else "")
    server = scope.get("server") or ("127.0.0.1", 0)
    client = scope.get("client") or ("127.0.0.1", 0)
    environ: dict[str, Any] = {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        # WSGI carries text as latin-1 code points of its UTF-8 bytes (PEP 3333).
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": query,
        "REQUEST_URI": raw_uri,
        "RAW_URI": raw_uri,
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": client[1],
        "SERVER_NAME": server[0],
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        # The body has been read whole (and de-chunked): its length is known.
        "CONTENT_LENGTH": str(len(body)),
    }
    names: dict[str, str] = {}
    preserved: dict[str, list[str]] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1").replace("\r\n", "")
        lowered = name.lower()
        if lowered in ("content-length", "transfer-encoding"):
            continue
        if "_" in name:
            # werkzeug drops these (X_Foo would pose as X-Foo); moto keeps S3 metadata names as sent.
            if should_preserve_original_header_name(name):
                key = environ_key_for_header(name)
                names.setdefault(key, name)
                preserved.setdefault(key, []).append(value)
            continue
        key = environ_key_for_header(name)
        environ[key] = f"{environ[key]},{value}" if key in environ and key.startswith("HTTP_") else value
    kept = {}
    for key, values in preserved.items():
        if key not in environ:  # never in place of a dashed header of the same key
            environ[key] = ",".join(values)
            kept[key] = names[key]
    if kept:
        environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = kept
    return environ


def _wait_parent_gone(stop: threading.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
