"""Vector stores and their files (mirrored to the upstream), and the upstream's own file objects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

StoreStatus = Literal["ready", "ingesting", "error", "deleted"]
# pending → in_progress → completed | failed, driven by the worker and the webhooks; cancelled upstream.
FileStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]
FilePurpose = Literal["assistants", "fine-tune", "batch", "user_data"]

StoreName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
FileName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")
]
MimeType = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
OpenAIFileId = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9._-]{1,128}$")]
# Base64 text (no `data:` prefix); its decoded size is checked against the configured limit by the service.
Base64Body = Annotated[str, StringConstraints(min_length=1)]
Metadata = dict[
    Annotated[str, StringConstraints(max_length=64)], Annotated[str, StringConstraints(max_length=512)]
]


class VectorStoreCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StoreName
    metadata: Metadata | None = Field(None, max_length=16)


class VectorStoreUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: StoreName | None = None
    status: StoreStatus | None = None
    metadata: Metadata | None = Field(None, max_length=16)
    version: int | None = Field(None, ge=1)

    def changes(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.model_fields_set if k in ("name", "status", "metadata")}


class VectorStore(BaseModel):
    id: str
    name: str
    openai_store_id: str | None = None
    status: StoreStatus = "ready"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: str
    updated_at: str
    version: int = 1


class VectorStoreList(BaseModel):
    items: list[VectorStore]
    next_cursor: str | None = None


class VectorStoreListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    status: StoreStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class VectorStoreFileCreate(BaseModel):
    """Either the file's bytes (base64) or the id of a file already uploaded to the upstream."""

    model_config = ConfigDict(extra="ignore")

    name: FileName
    file_data: Base64Body | None = None
    openai_file_id: OpenAIFileId | None = None
    size: int | None = Field(None, ge=0)
    mime_type: MimeType | None = None

    @model_validator(mode="after")
    def _one_source(self) -> VectorStoreFileCreate:
        if (self.file_data is None) == (self.openai_file_id is None):
            raise ValueError("exactly one of file_data or openai_file_id is required")
        return self


class VectorStoreFile(BaseModel):
    id: str
    vector_store_id: str
    name: str
    openai_file_id: str | None = None
    size: int | None = None
    mime_type: str | None = None
    status: FileStatus = "pending"
    error_message: str | None = None
    job_id: str | None = None
    created_at: str
    updated_at: str
    version: int = 1


class VectorStoreFileList(BaseModel):
    items: list[VectorStoreFile]
    next_cursor: str | None = None


class VectorStoreFileListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: FileStatus | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class OpenAIFileUpload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: FileName
    file_data: Base64Body
    purpose: FilePurpose = "assistants"


class OpenAIFile(BaseModel):
    id: str
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    status: str | None = None
    created_at: int | None = None


class OpenAIFileList(BaseModel):
    items: list[OpenAIFile]


class OpenAIFileListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    purpose: FilePurpose | None = "assistants"
