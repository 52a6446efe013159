"""`webhook_event`: apply one verified OpenAI webhook event (enqueued by `chatbot.services.webhooks`).

- `vector_store.file.completed` / `vector_store.file.failed`: the local files with that OpenAI file id (in the
  store with that OpenAI store id) get the final ingestion status (and the upstream's error message).
- `vector_store.completed`: the local stores with that OpenAI store id become `ready`.
- `file.uploaded`: logged only.
Afterwards the event's dedupe record is marked `processed` with the result. A failure raises, so the job
system retries it; an event is never acknowledged without having been applied.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from chatbot import clock
from chatbot.errors import Conflict
from chatbot.services.job_types.base import JobContext, JobType

HANDLED_EVENT_TYPES = frozenset(
    {"vector_store.file.completed", "vector_store.file.failed", "vector_store.completed", "file.uploaded"}
)


class WebhookEventPayload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=256)
    event_type: str = Field(min_length=1, max_length=128)
    data: dict[str, Any] = Field(default_factory=dict)
    created_at: int | None = None


def run(ctx: JobContext, payload: WebhookEventPayload) -> dict[str, Any]:
    if payload.event_type in ("vector_store.file.completed", "vector_store.file.failed"):
        result = _file_event(ctx, payload)
    elif payload.event_type == "vector_store.completed":
        result = _store_event(ctx, payload)
    elif payload.event_type == "file.uploaded":
        result = {"status": "logged", "openai_file_id": payload.data.get("id")}
    else:
        result = {"status": "ignored", "reason": "unknown_event_type"}
    ctx.webhook_events.mark(
        payload.event_id, {"status": "processed", "processed_at": clock.iso(), "result": result}
    )
    return result


def _file_event(ctx: JobContext, payload: WebhookEventPayload) -> dict[str, Any]:
    data = payload.data
    openai_file_id = data.get("file_id") or data.get("id")
    openai_store_id = data.get("vector_store_id")
    if not openai_file_id:
        return {"status": "ignored", "reason": "missing_file_id"}
    completed = payload.event_type.endswith(".completed")
    status = "completed" if completed else "failed"
    error = None if completed else _error_message(data.get("last_error"))
    repo = ctx.vector_stores
    updated: list[str] = []
    for file in repo.find_files_by_openai_id(openai_file_id):
        if openai_store_id:
            store = repo.get_store(file["vector_store_id"])
            if store is None or store.get("openai_store_id") != openai_store_id:
                continue
        try:
            repo.update_file(
                file["vector_store_id"],
                file["id"],
                {"status": status, "error_message": error, "updated_at": clock.iso()},
                only_from_status=("pending", "in_progress", "failed")
                if completed
                else ("pending", "in_progress"),
            )
        except Conflict:
            continue  # already final (e.g. the poll job saw it first)
        updated.append(file["id"])
    if not updated:
        return {"status": "ignored", "reason": "no_matching_file", "file_status": status}
    return {"status": "processed", "file_status": status, "files": updated}


def _store_event(ctx: JobContext, payload: WebhookEventPayload) -> dict[str, Any]:
    openai_store_id = payload.data.get("id") or payload.data.get("vector_store_id")
    if not openai_store_id:
        return {"status": "ignored", "reason": "missing_store_id"}
    updated = []
    for store in ctx.vector_stores.find_stores_by_openai_id(openai_store_id):
        if store.get("status") == "deleted":
            continue
        ctx.vector_stores.update_store(store["id"], {"status": "ready", "updated_at": clock.iso()})
        updated.append(store["id"])
    if not updated:
        return {"status": "ignored", "reason": "no_matching_store", "store_status": "ready"}
    return {"status": "processed", "store_status": "ready", "stores": updated}


def _error_message(last_error: Any) -> str:
    if isinstance(last_error, dict) and last_error.get("message"):
        return str(last_error["message"])[:1000]
    if isinstance(last_error, str) and last_error:
        return last_error[:1000]
    return "Ingestion failed upstream"


JOB_TYPE = JobType(
    name="webhook_event",
    payload_model=WebhookEventPayload,
    run=run,
    description="Apply a verified OpenAI webhook event (vector store / file status).",
)
