"""The local stack's CloudWatch: the functions' log lines become metrics, and the alarms are evaluated.

On Lambda, a function's stdout is its log group: CloudWatch applies the group's metric filters to each line
and extracts the EMF documents Powertools Metrics prints. Locally all functions share this process's stdout,
so `StdoutTap` (installed as `sys.stdout`) passes every line through and routes it: an EMF document to its
metrics, any other JSON line through the metric filters of the log group of the function running in this
thread (`current_function`, set by the runtime and the gateway). Datapoints go to a `MetricStore` (in
memory, for the alarm evaluator: the emulator's CloudWatch matches dimensions loosely and has no
percentiles) and are forwarded to the emulator with PutMetricData, so `get-metric-statistics` shows them.

`LocalObservability` runs it all: every minute of the scheduler's clock (`LOCAL_SCHEDULE_SCALE` speeds it
up) it publishes the SQS metrics AWS publishes for each queue (`ApproximateNumberOfMessagesVisible`,
`...NotVisible`, `...Delayed`), flushes the store to the emulator and evaluates the alarms
(`infra.local.alarms`). Timestamps are the scheduler's clock, so a scaled clock ages metrics and alarms
consistently.
"""

from __future__ import annotations

import bisect
import contextlib
import contextvars
import io
import json
import logging
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.local.alarms import AlarmEvaluator
from infra.local.metric_filters import Datapoint, MetricFilter, filters_of

log = logging.getLogger("infra.local.observability")

# The logical id of the function running in this thread / task (None outside any invocation).
current_function: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_function", default=None
)

MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]  # namespace, name, sorted dimensions
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MetricStore:
    """Datapoints per metric (exact dimensions), kept for `retention`; `flush` forwards new ones to the
    emulator's CloudWatch (PutMetricData, up to 1000 per call)."""

    def __init__(self, clock: Clock = _utcnow, retention: timedelta = timedelta(hours=3)) -> None:
        self.clock = clock
        self.retention = retention
        self._series: dict[MetricKey, list[tuple[datetime, float]]] = defaultdict(list)
        self._units: dict[MetricKey, str | None] = {}
        self._pending: list[tuple[MetricKey, datetime, float]] = []
        self._lock = threading.Lock()

    def put(self, point: Datapoint, at: datetime | None = None) -> None:
        key = (point.namespace, point.name, tuple(sorted(point.dimensions)))
        when = at or self.clock()
        with self._lock:
            series = self._series[key]
            if series and series[-1][0] > when:
                bisect.insort(series, (when, point.value))
            else:
                series.append((when, point.value))
            self._units.setdefault(key, point.unit)
            self._pending.append((key, when, point.value))

    def values(
        self, namespace: str, name: str, dimensions: Mapping[str, str], start: datetime, end: datetime
    ) -> list[float]:
        key = (namespace, name, tuple(sorted(dimensions.items())))
        with self._lock:
            series = self._series.get(key, [])
            lo = bisect.bisect_left(series, (start, float("-inf")))
            hi = bisect.bisect_left(series, (end, float("-inf")))
            return [v for _, v in series[lo:hi]]

    def metrics(self) -> list[MetricKey]:
        with self._lock:
            return list(self._series)

    def latest(self, key: MetricKey) -> tuple[datetime, float] | None:
        with self._lock:
            series = self._series.get(key)
            return series[-1] if series else None

    def prune(self) -> None:
        cutoff = self.clock() - self.retention
        with self._lock:
            for series in list(self._series.values()):
                drop = bisect.bisect_left(series, (cutoff, float("-inf")))
                if drop:
                    del series[:drop]

    def flush(self, cloudwatch: Any) -> int:
        """Send the datapoints added since the last flush to the emulator; returns how many."""
        with self._lock:
            pending, self._pending = self._pending, []
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (namespace, name, dims), when, value in pending:
            datum: dict[str, Any] = {
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                "Timestamp": when,
                "Value": value,
            }
            unit = self._units.get((namespace, name, dims))
            if unit:
                datum["Unit"] = unit
            by_namespace[namespace].append(datum)
        for namespace, data in by_namespace.items():
            for i in range(0, len(data), 1000):
                cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + 1000])
        return len(pending)


def emf_datapoints(doc: Mapping[str, Any]) -> list[Datapoint]:
    """The metrics of one CloudWatch embedded metric format document."""
    out: list[Datapoint] = []
    for directive in (doc.get("_aws") or {}).get("CloudWatchMetrics") or []:
        namespace = str(directive.get("Namespace", ""))
        for dimension_set in directive.get("Dimensions") or [[]]:
            dims = tuple(sorted((str(d), str(doc.get(d, ""))) for d in dimension_set))
            for metric in directive.get("Metrics") or []:
                raw = doc.get(metric.get("Name"))
                for value in raw if isinstance(raw, list) else [raw]:
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        out.append(
                            Datapoint(namespace, str(metric["Name"]), float(value), metric.get("Unit"), dims)
                        )
    return out


class LogRouter:
    """Routes the functions' log lines: EMF to metrics, JSON lines through their log group's filters."""

    # A line logged outside any invocation (a background thread) is attributed by its Powertools service.
    SERVICE_FUNCTIONS = {
        "chat": "ChatFunction",
        "admin": "AdminFunction",
        "webhook": "WebhookFunction",
        "worker": "WorkerFunction",
        "metrics_push": "MetricsPushFunction",
        "backup": "BackupFunction",
        "rotation": "RotationFunction",
    }

    def __init__(self, stack: Any, store: MetricStore) -> None:
        self.stack = stack
        self.store = store
        self.lines = 0
        # Off until the evaluation runs (LocalObservability.start): nothing would flush or prune the store.
        self.enabled = False
        self._filters: dict[str, list[MetricFilter]] = {}
        self._filter_count = -1
        self.filter_metrics: set[str] = set()  # names the metric filters produced (not EMF gauges)

    def filters_for(self, function: str) -> list[MetricFilter]:
        resources = [
            (lid, r.type, r.properties)
            for lid, r in list(self.stack.resources.items())
            if r.type == "AWS::Logs::MetricFilter"
        ]
        if len(resources) != self._filter_count:  # the observability resources arrive after start-up
            grouped: dict[str, list[MetricFilter]] = defaultdict(list)
            for f in filters_of(resources):
                grouped[f.log_group].append(f)
            self._filters, self._filter_count = dict(grouped), len(resources)
        spec = self.stack.functions.get(function)
        return self._filters.get(spec.log_group_name, []) if spec is not None else []

    def route(self, line: str, function: str | None) -> None:
        text = line.strip()
        if not self.enabled or not text.startswith("{") or self.stack is None:
            return
        try:
            doc = json.loads(text)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        self.lines += 1
        if "_aws" in doc:
            for point in emf_datapoints(doc):
                self.store.put(point)
            return
        function = function or self.SERVICE_FUNCTIONS.get(str(doc.get("service")))
        if function is None:
            return
        for f in self.filters_for(function):
            for point in f.apply(doc):
                self.filter_metrics.add(point.name)
                self.store.put(point)


class StdoutTap(io.TextIOBase):
    """A stdout that writes through to the real one and hands each complete line to `route`."""

    def __init__(self, target: Any, route: Callable[[str, str | None], None]) -> None:
        self.target = target
        self.route = route
        self._partial = threading.local()

    def write(self, text: str) -> int:
        written = self.target.write(text)
        buffered = getattr(self._partial, "text", "") + text
        *lines, rest = buffered.split("\n")
        self._partial.text = rest
        function = current_function.get()
        for line in lines:
            try:
                self.route(line, function)
            except Exception:  # metrics must never break a function's logging
                log.debug("routing a log line failed", exc_info=True)
        return written if isinstance(written, int) else len(text)

    def flush(self) -> None:
        self.target.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return bool(getattr(self.target, "isatty", lambda: False)())

    def fileno(self) -> int:
        return int(self.target.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.target, "encoding", "utf-8"))


def powertools_handlers() -> Iterator[logging.StreamHandler[Any]]:
    """The stream handlers of the Powertools loggers created so far (they write the functions' lines)."""
    from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

    for logger in list(logging.Logger.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler) and isinstance(
                handler.formatter, BasePowertoolsFormatter
            ):
                yield handler


@contextlib.contextmanager
def invocation(function: str) -> Iterator[None]:
    """Attribute the log lines written inside to `function`."""
    token = current_function.set(function)
    try:
        yield
    finally:
        current_function.reset(token)


class LocalObservability:
    """Create it early and `install()` the tap; `attach(stack, clock, scale)` once the stack is provisioned;
    `start()` ticks every `interval_s` of the clock (60 s: CloudWatch's alarm evaluation period)."""

    def __init__(
        self,
        stack: Any = None,
        *,
        clock: Clock = _utcnow,
        scale: float = 1.0,
        interval_s: float = 60.0,
        session: Any = None,
    ) -> None:
        self.stack = stack
        self.clock = clock
        self.scale = scale
        self.interval_s = interval_s
        self.store = MetricStore(lambda: self.clock())
        self.router = LogRouter(stack, self.store)
        self._session = session
        self._clients: dict[str, Any] = {}
        self.evaluator = AlarmEvaluator(stack, self.store)
        self._tap: StdoutTap | None = None
        self._original: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    def attach(self, stack: Any, *, clock: Clock | None = None, scale: float | None = None) -> None:
        self.stack = self.router.stack = self.evaluator.stack = stack
        if clock is not None:
            self.clock = clock
        if scale is not None:
            self.scale = scale

    def client(self, service: str) -> Any:
        if service not in self._clients:
            if self._session is None:
                import boto3

                self._session = boto3.session.Session()
            self._clients[service] = self._session.client(service, region_name=self.stack.region)
        return self._clients[service]

    # --- lifecycle ---------------------------------------------------------------------------------------

    def install(self) -> None:
        """Tap stdout (also for the Powertools loggers that already hold the old one)."""
        if self._tap is not None:
            return
        self._original = sys.stdout
        self._tap = StdoutTap(sys.stdout, self.router.route)
        sys.stdout = self._tap
        for handler in powertools_handlers():
            if handler.stream is self._original:
                handler.setStream(self._tap)

    def uninstall(self) -> None:
        if self._tap is None:
            return
        for handler in powertools_handlers():
            if handler.stream is self._tap:
                handler.setStream(self._original)
        if sys.stdout is self._tap:
            sys.stdout = self._original
        self._tap = None

    def filter_counters(self) -> list[Any]:
        """The metric-filter metrics as totals over what the store still holds (`GET /admin/metrics`)."""
        from chatbot.services.metrics_push import Gauge

        start, end = datetime.min.replace(tzinfo=UTC), self.clock() + timedelta(days=1)
        return [
            Gauge(name, sum(self.store.values(ns, name, dict(dims), start, end)), dimensions=dict(dims))
            for ns, name, dims in self.store.metrics()
            if name in self.router.filter_metrics
        ]

    def start(self) -> None:
        from chatbot.services import prometheus

        self.install()
        prometheus.add_source(self.filter_counters)
        self.router.enabled = True
        self.evaluator.cloudwatch = self.client("cloudwatch")
        self.evaluator.sns = self.client("sns")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-observability", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        from chatbot.services import prometheus

        prometheus.remove_source(self.filter_counters)
        self.router.enabled = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.uninstall()

    def _run(self) -> None:
        # Ticks on a fixed grid of the clock (not "a minute after the last tick ended"), so each minute holds
        # exactly one queue datapoint, as CloudWatch's per-minute SQS metrics do.
        due = self.clock() + timedelta(seconds=self.interval_s)
        while not self._stop.is_set():
            delay = (due - self.clock()).total_seconds() / self.scale
            if delay > 0:
                self._stop.wait(min(delay, 1.0))
                continue
            try:
                self.tick(due)
            except Exception:
                log.exception("local metrics/alarms tick failed")
            due += timedelta(seconds=self.interval_s)

    # --- one minute ----------------------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> dict[str, Any]:
        """Publish the queue metrics, forward new datapoints to the emulator, evaluate the alarms."""
        now = now or self.clock()
        self.ticks += 1
        self.publish_queue_metrics(now)
        self.store.flush(self.client("cloudwatch"))
        evaluations = self.evaluator.evaluate(now)
        self.store.prune()
        return {name: e.state for name, e in evaluations.items()}

    def publish_queue_metrics(self, now: datetime) -> None:
        sqs = self.client("sqs")
        names = {
            "ApproximateNumberOfMessages": "ApproximateNumberOfMessagesVisible",
            "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed": "ApproximateNumberOfMessagesDelayed",
        }
        for res in list(self.stack.resources.values() if self.stack is not None else ()):
            if res.type != "AWS::SQS::Queue":
                continue
            attributes = sqs.get_queue_attributes(
                QueueUrl=res.attrs.get("QueueUrl") or res.physical_id, AttributeNames=list(names)
            )["Attributes"]
            dims = (("QueueName", str(res.attrs.get("QueueName"))),)
            for attribute, metric in names.items():
                value = float(attributes.get(attribute, 0))
                self.store.put(Datapoint("AWS/SQS", metric, value, "Count", dims), at=now)

    def alarm_states(self) -> dict[str, str]:
        return dict(self.evaluator.states)


def monotonic_clock(scale: float) -> Clock:
    """Wall time at creation plus elapsed time times `scale` (the scheduler's clock without a scheduler)."""
    wall0, mono0 = _utcnow(), time.monotonic()
    return lambda: wall0 + timedelta(seconds=(time.monotonic() - mono0) * scale)
