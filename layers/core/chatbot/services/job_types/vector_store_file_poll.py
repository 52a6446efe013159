"""`vector_store_file_poll`: refresh a vector store file's ingestion status from OpenAI.

While the upstream says `in_progress` the job enqueues its successor (poll n+1, after a delay) and ends; a
final status (completed, failed, cancelled) is written to the file and ends the chain. A file that a webhook
already finished is not asked about again. Successor ids are deterministic, so a retried poll never forks
the chain; after `job_poll_max_polls` polls the file is marked failed.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chatbot import clock
from chatbot.config import get_settings
from chatbot.errors import Conflict
from chatbot.services.job_types.base import JobContext, JobFailed, JobType

FINAL = ("completed", "failed", "cancelled")


def poll_job_id(store_id: str, file_id: str, poll: int) -> str:
    digest = hashlib.sha256(f"{store_id}/{file_id}".encode()).hexdigest()[:24]
    return f"vsfpoll_{digest}_{poll}"


class VectorStoreFilePollPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str = Field(min_length=1, max_length=128)
    file_id: str = Field(min_length=1, max_length=128)
    poll: int = Field(1, ge=1)


def run(ctx: JobContext, payload: VectorStoreFilePollPayload) -> dict[str, Any]:
    repo = ctx.vector_stores
    file = repo.get_file(payload.vector_store_id, payload.file_id, consistent=True)
    if file is None:
        return {"status": "gone"}
    if file.get("status") in FINAL:
        return {"status": file["status"], "source": "local"}
    if not file.get("openai_file_id"):
        raise JobFailed(f"Vector store file {payload.file_id} has no upstream file yet")
    store = repo.get_store(payload.vector_store_id)
    if store is None or not store.get("openai_store_id"):
        return {"status": "gone"}

    upstream = ctx.openai.vector_stores.files.retrieve(
        file["openai_file_id"], vector_store_id=store["openai_store_id"]
    )
    status = upstream.status
    settings = get_settings()
    if status == "in_progress":
        if payload.poll >= settings.job_poll_max_polls:
            error = f"Ingestion still in progress after {payload.poll} polls"
            _finish(ctx, payload, "failed", error)
            return {"status": "failed", "error": error}
        nxt, _ = ctx.enqueue(
            "vector_store_file_poll",
            {**payload.model_dump(), "poll": payload.poll + 1},
            delay_seconds=settings.job_poll_delay_seconds,
            job_id=poll_job_id(payload.vector_store_id, payload.file_id, payload.poll + 1),
        )
        return {"status": "in_progress", "next_poll_job_id": nxt.id}
    error = None
    if status == "failed":
        last_error = getattr(upstream, "last_error", None)
        error = getattr(last_error, "message", None) or "Ingestion failed upstream"
    _finish(ctx, payload, status, error)
    return {"status": status, **({"error": error} if error else {})}


def _finish(ctx: JobContext, payload: VectorStoreFilePollPayload, status: str, error: str | None) -> None:
    with contextlib.suppress(Conflict):  # a webhook got there first
        ctx.vector_stores.update_file(
            payload.vector_store_id,
            payload.file_id,
            {"status": status, "error_message": error, "updated_at": clock.iso()},
            only_from_status=("pending", "in_progress"),
        )


JOB_TYPE = JobType(
    name="vector_store_file_poll",
    payload_model=VectorStoreFilePollPayload,
    run=run,
    description="Refresh a vector store file's ingestion status; re-enqueues itself while in progress.",
)
