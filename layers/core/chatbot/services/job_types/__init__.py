"""The job types the worker runs, by name. Add a type: a module with a `JOB_TYPE` and one line below."""

from __future__ import annotations

from typing import Any

from chatbot.services.job_types import diagnostic, file_ingest, vector_store_file_poll, webhook_event
from chatbot.services.job_types.base import (
    JobContext,
    JobFailed,
    JobType,
    SimulatedCrash,
    UnknownJobType,
)

REGISTRY: dict[str, JobType[Any]] = {
    job_type.name: job_type
    for job_type in (
        diagnostic.JOB_TYPE,
        file_ingest.JOB_TYPE,
        vector_store_file_poll.JOB_TYPE,
        webhook_event.JOB_TYPE,
    )
}


def get_job_type(name: str) -> JobType[Any]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownJobType(name) from None


__all__ = [
    "REGISTRY",
    "JobContext",
    "JobFailed",
    "JobType",
    "SimulatedCrash",
    "UnknownJobType",
    "get_job_type",
]
