"""`GET /admin/metrics`: the current gauges in Prometheus text format (0.0.4), for scrapers that already
read the original's metrics endpoint. The values are what metrics-push publishes, read at scrape time.

The local stack also adds the counters it derives from the functions' logs through the template's metric
filters (on AWS those live in CloudWatch; scrape them there with a CloudWatch exporter)."""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from chatbot.config import Settings
from chatbot.services import metrics_push
from chatbot.services.metrics_push import Gauge

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
Source = Callable[[], Iterable[Gauge]]
_sources: list[Source] = []
_NAME = re.compile(r"[^a-zA-Z0-9_:]")


def add_source(source: Source) -> Source:
    """More samples for every scrape (the local stack's metric-filter counters)."""
    _sources.append(source)
    return source


def remove_source(source: Source) -> None:
    if source in _sources:
        _sources.remove(source)


def scrape(settings: Settings) -> str:
    started = time.perf_counter()
    samples = list(metrics_push.collect(settings))
    for source in list(_sources):
        samples += source()
    samples.append(Gauge("chatbot_metrics_scrape_duration_seconds", round(time.perf_counter() - started, 6)))
    return render(samples)


def render(samples: Iterable[Gauge]) -> str:
    """One `# TYPE` line per metric name, then its samples; gauges whatever their origin, since a scrape
    shows current values (a counter kept locally is the total over the values the stack still holds)."""
    by_name: dict[str, list[Gauge]] = defaultdict(list)
    for sample in samples:
        by_name[_NAME.sub("_", sample.name)].append(sample)
    lines = []
    for name in sorted(by_name):
        lines.append(f"# TYPE {name} gauge")
        for sample in by_name[name]:
            lines.append(f"{name}{_labels(sample.dimensions)} {_number(sample.value)}")
    return "\n".join(lines) + "\n"


def _labels(dimensions: dict[str, str]) -> str:
    if not dimensions:
        return ""
    pairs = ",".join(f'{_NAME.sub("_", k)}="{_escape(str(v))}"' for k, v in sorted(dimensions.items()))
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
