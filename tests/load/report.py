"""The figures of a load run, from every request it made, and the summary written beside Locust's CSV.

Percentiles here are exact (nearest rank over all samples); Locust's own CSV rounds response times above
100 ms to two significant digits, so a 1,950 ms p95 would read 2,000 there.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ALL = "all requests"


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the run started, when the request ended
    name: str
    ms: float
    ok: bool


@dataclass(frozen=True)
class Figures:
    name: str
    requests: int
    failures: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rate: float  # requests per second over the window

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class Thresholds:
    p95_ms: float = 2000.0
    error_ratio: float = 0.05

    def met_by(self, figures: Figures) -> bool:
        fast = figures.p95_ms < self.p95_ms
        return figures.requests > 0 and fast and figures.error_ratio < self.error_ratio


@dataclass(frozen=True)
class Step:
    """One rate of a capacity run, measured after it settled."""

    target_rate: float
    users: int
    figures: Figures
    held: bool
    why: str


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def figures(samples: Iterable[Sample], name: str, seconds: float) -> Figures:
    chosen = list(samples)
    times = [s.ms for s in chosen]
    return Figures(
        name=name,
        requests=len(chosen),
        failures=sum(not s.ok for s in chosen),
        p50_ms=round(percentile(times, 0.50), 1),
        p95_ms=round(percentile(times, 0.95), 1),
        p99_ms=round(percentile(times, 0.99), 1),
        max_ms=round(max(times, default=0.0), 1),
        rate=round(len(chosen) / seconds, 2) if seconds > 0 else 0.0,
    )


def per_endpoint(samples: Sequence[Sample], seconds: float) -> list[Figures]:
    names = sorted({s.name for s in samples})
    rows = [figures((s for s in samples if s.name == n), n, seconds) for n in names]
    return [*rows, figures(samples, ALL, seconds)]


def figures_table(rows: Sequence[Figures]) -> str:
    lines = [
        "| request | count | failed | error % | p50 ms | p95 ms | p99 ms | max ms | req/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        name = f"**{r.name}**" if r.name == ALL else f"`{r.name}`"
        lines.append(
            f"| {name} | {r.requests} | {r.failures} | {100 * r.error_ratio:.2f} | {r.p50_ms:.0f} "
            f"| {r.p95_ms:.0f} | {r.p99_ms:.0f} | {r.max_ms:.0f} | {r.rate:.2f} |"
        )
    return "\n".join(lines)


def steps_table(steps: Sequence[Step]) -> str:
    lines = [
        "| target req/s | users | achieved req/s | p50 ms | p95 ms | error % | held |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in steps:
        f = s.figures
        held = "yes" if s.held else f"no ({s.why})"
        lines.append(
            f"| {s.target_rate:g} | {s.users} | {f.rate:.2f} | {f.p50_ms:.0f} | {f.p95_ms:.0f} "
            f"| {100 * f.error_ratio:.2f} | {held} |"
        )
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version()}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(out: Path, name: str, summary: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / f"{name}_summary.md", out / f"{name}_summary.json"
    md.write_text(markdown)
    js.write_text(json.dumps(summary, indent=2, default=_jsonable))
    return md, js


def _jsonable(value: Any) -> Any:
    if isinstance(value, Figures):
        return {**asdict(value), "error_ratio": round(value.error_ratio, 4)}
    if isinstance(value, Step):
        return {**asdict(value), "figures": _jsonable(value.figures)}
    if isinstance(value, Thresholds):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
