"""Health checks: each a small function of the settings, run concurrently, combined into one report.

A check returns `CheckResult(status=healthy|warning|unhealthy|unknown, message)`. The overall status is
`unhealthy` when a critical check is unhealthy (the admin action then answers 503), `degraded` when any other
check is unhealthy or warns, else `ok`. Extend with `register(HealthCheck(name, run, critical))`; a check that
raises is reported unhealthy with a generic message (and logged), never with the exception text.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from chatbot import clock, secrets
from chatbot.config import Settings
from chatbot.dal.users import UsersRepository
from chatbot.observability import get_logger

CheckStatus = Literal["healthy", "warning", "unhealthy", "unknown"]
OverallStatus = Literal["ok", "degraded", "unhealthy"]


class CheckResult(BaseModel):
    status: CheckStatus
    message: str
    latency_ms: float | None = None
    details: dict[str, Any] | None = None


class HealthReport(BaseModel):
    status: OverallStatus
    timestamp: str
    checks: dict[str, CheckResult]
    metrics: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    name: str
    run: Callable[[Settings], CheckResult]
    critical: bool = False


def check_database(settings: Settings) -> CheckResult:
    # One strongly consistent read of a key that never exists: proves the endpoint, credentials and table.
    UsersRepository(settings.users_table).get("HEALTH#probe", "HEALTH", consistent=True)
    return CheckResult(status="healthy", message="DynamoDB reachable")


def check_secrets(settings: Settings) -> CheckResult:
    version = secrets.get_secret(settings.admin_token_secret_id, max_age=settings.admin_token_cache_seconds)
    if version is None or not version.value:
        return CheckResult(status="unhealthy", message="Admin token secret has no current value")
    return CheckResult(status="healthy", message="Secrets readable")


CHECKS: list[HealthCheck] = [
    HealthCheck("database", check_database, critical=True),
    HealthCheck("secrets", check_secrets),
]


def register(check: HealthCheck) -> None:
    """Add a check, or replace the one with the same name."""
    CHECKS[:] = [c for c in CHECKS if c.name != check.name] + [check]


def run_health(settings: Settings, checks: list[HealthCheck] | None = None) -> HealthReport:
    checks = list(CHECKS if checks is None else checks)
    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        # Each check runs in a copy of this context, so its log lines keep the request id.
        futures = [pool.submit(contextvars.copy_context().run, _run_one, c, settings) for c in checks]
        results = [f.result() for f in futures]
    by_name = {c.name: r for c, r in zip(checks, results, strict=True)}
    if any(c.critical and by_name[c.name].status == "unhealthy" for c in checks):
        status: OverallStatus = "unhealthy"
    elif any(r.status in ("unhealthy", "warning") for r in results):
        status = "degraded"
    else:
        status = "ok"
    return HealthReport(status=status, timestamp=clock.iso(), checks=by_name)


def _run_one(check: HealthCheck, settings: Settings) -> CheckResult:
    started = time.perf_counter()
    try:
        result = check.run(settings)
    except Exception:  # noqa: BLE001 - a failing dependency is a health result, not an error of this request
        get_logger("chatbot").exception(
            "health check failed", extra={"event": "health_check_failed", "check": check.name}
        )
        result = CheckResult(status="unhealthy", message=f"{check.name} check failed")
    if result.latency_ms is None:
        result = result.model_copy(update={"latency_ms": round((time.perf_counter() - started) * 1000, 1)})
    return result
