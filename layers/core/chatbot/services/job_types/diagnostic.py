"""`diagnostic`: a job that sleeps and fails on request, for operators, tests and benchmarks.

`fail_times: n` fails attempts 1..n and succeeds after; `fail_permanently` fails every attempt (the job ends
in the DLQ); `fail_until: <epoch seconds>` fails every attempt until then (an outage that ends);
`fail_until_requeued` fails every attempt until the job was requeued or redriven from the DLQ (to try the
DLQ round trip); `crash_times: n` simulates a worker crash (after the sleep, i.e. mid-run) on attempts
1..n.
A run that reaches its end adds 1 to the job's `handler_completions`, so a job that ran twice is visible.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chatbot.services.job_types.base import JobContext, JobFailed, JobType, SimulatedCrash


class DiagnosticPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sleep_ms: int = Field(0, ge=0, le=60_000)
    fail_times: int = Field(0, ge=0, le=20)
    fail_permanently: bool = False
    fail_until: float | None = Field(None, ge=0)
    fail_until_requeued: bool = False
    crash_times: int = Field(0, ge=0, le=20)
    note: str | None = Field(None, max_length=200)


def run(ctx: JobContext, payload: DiagnosticPayload) -> dict[str, Any]:
    if payload.sleep_ms:
        time.sleep(payload.sleep_ms / 1000)
    if ctx.attempt <= payload.crash_times:
        raise SimulatedCrash(f"diagnostic crash on attempt {ctx.attempt}")
    if payload.fail_permanently:
        raise JobFailed(f"diagnostic failure on attempt {ctx.attempt} (fail_permanently)")
    if payload.fail_until is not None and time.time() < payload.fail_until:
        raise JobFailed(
            f"diagnostic failure on attempt {ctx.attempt} (failing until {payload.fail_until:.0f})"
        )
    if payload.fail_until_requeued and ctx.job.requeued_from_dlq == 0:
        raise JobFailed(f"diagnostic failure on attempt {ctx.attempt} (until requeued from the DLQ)")
    if ctx.attempt <= payload.fail_times:
        raise JobFailed(f"diagnostic failure on attempt {ctx.attempt} of {payload.fail_times} requested")
    completions = ctx.record_handler_completion()
    return {
        "ok": True,
        "attempt": ctx.attempt,
        "slept_ms": payload.sleep_ms,
        "handler_completions": completions,
    }


JOB_TYPE = JobType(
    name="diagnostic",
    payload_model=DiagnosticPayload,
    run=run,
    description="Sleeps sleep_ms, fails fail_times attempts or every attempt (fail_permanently).",
)
