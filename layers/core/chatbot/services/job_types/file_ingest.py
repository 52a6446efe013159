"""`file_ingest`: upload a vector store file to OpenAI if it is not there yet, attach it to the store, mark it
`in_progress`, and start polling its ingestion (`vector_store_file_poll`, after a delay).

The file's bytes come from the payload (`file_data`, base64) or from S3 (`s3_bucket` + `s3_key`); a file that
already has an `openai_file_id` is only attached. Each step is safe to repeat, so a retried attempt resumes:
the upload is skipped once the id is saved, attaching an attached file is accepted, and the first poll job has
a deterministic id.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from chatbot import aws, clock
from chatbot.config import get_settings
from chatbot.errors import Conflict, NotFound
from chatbot.services.job_types.base import JobContext, JobFailed, JobType
from chatbot.services.job_types.vector_store_file_poll import poll_job_id


class FileIngestPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vector_store_id: str = Field(min_length=1, max_length=128)
    file_id: str = Field(min_length=1, max_length=128)
    file_data: str | None = Field(None, description="base64 bytes (small files)")
    s3_bucket: str | None = Field(None, max_length=255)
    s3_key: str | None = Field(None, max_length=1024)
    purpose: str = "assistants"

    @model_validator(mode="after")
    def _s3_pair(self) -> FileIngestPayload:
        if (self.s3_bucket is None) != (self.s3_key is None):
            raise ValueError("s3_bucket and s3_key go together")
        return self


def run(ctx: JobContext, payload: FileIngestPayload) -> dict[str, Any]:
    repo = ctx.vector_stores
    store = repo.get_store(payload.vector_store_id, consistent=True)
    if store is None:
        raise JobFailed(f"Vector store {payload.vector_store_id} not found")
    if not store.get("openai_store_id"):
        raise JobFailed(f"Vector store {payload.vector_store_id} has no upstream store")
    file = repo.get_file(payload.vector_store_id, payload.file_id, consistent=True)
    if file is None:
        raise JobFailed(f"Vector store file {payload.file_id} not found")

    openai_file_id = file.get("openai_file_id")
    uploaded = False
    if not openai_file_id:
        content = _file_bytes(payload)
        created = ctx.openai.files.create(
            file=(
                file.get("name") or payload.file_id,
                content,
                file.get("mime_type") or "application/octet-stream",
            ),
            purpose=payload.purpose,  # type: ignore[arg-type]
        )
        openai_file_id = created.id
        uploaded = True
        repo.update_file(
            payload.vector_store_id,
            payload.file_id,
            {"openai_file_id": openai_file_id, "updated_at": clock.iso()},
        )

    attached = ctx.openai.vector_stores.files.create(
        vector_store_id=store["openai_store_id"], file_id=openai_file_id
    )
    # Conflict: a webhook already reported the end of ingestion; nothing left to mark.
    with contextlib.suppress(Conflict):
        repo.update_file(
            payload.vector_store_id,
            payload.file_id,
            {"status": "in_progress", "error_message": None, "updated_at": clock.iso()},
            only_from_status=("pending", "in_progress", "failed"),
        )

    poll, _ = ctx.enqueue(
        "vector_store_file_poll",
        {"vector_store_id": payload.vector_store_id, "file_id": payload.file_id, "poll": 1},
        delay_seconds=get_settings().job_poll_delay_seconds,
        job_id=poll_job_id(payload.vector_store_id, payload.file_id, 1),
    )
    return {
        "openai_file_id": openai_file_id,
        "uploaded": uploaded,
        "upstream_status": getattr(attached, "status", None),
        "poll_job_id": poll.id,
    }


def _file_bytes(payload: FileIngestPayload) -> bytes:
    if payload.file_data is not None:
        try:
            return base64.b64decode(payload.file_data, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise JobFailed("file_data is not valid base64") from exc
    if payload.s3_bucket and payload.s3_key:
        body = aws.client("s3").get_object(Bucket=payload.s3_bucket, Key=payload.s3_key)["Body"]
        return body.read()
    raise JobFailed("The file has no upstream id and the job carries no content (file_data or s3_key)")


def mark_file_failed(ctx: JobContext, payload: FileIngestPayload, error: str) -> None:
    """The ingestion is given up: the file says so (unless it finished or was deleted meanwhile)."""
    with contextlib.suppress(Conflict, NotFound):
        ctx.vector_stores.update_file(
            payload.vector_store_id,
            payload.file_id,
            {"status": "failed", "error_message": error[:1000], "updated_at": clock.iso()},
            only_from_status=("pending", "in_progress"),
        )


JOB_TYPE = JobType(
    name="file_ingest",
    payload_model=FileIngestPayload,
    run=run,
    on_dead=mark_file_failed,
    description="Upload a file to OpenAI if needed, attach it to its store and start polling ingestion.",
)
