"""Prompts and their versions, stored locally and mirrored to the upstream's prompt objects if it has them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

PromptName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
VersionLabel = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")
]
Content = Annotated[str, StringConstraints(max_length=100_000)]
Description = Annotated[str, StringConstraints(max_length=2000)]


class PromptCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: PromptName
    description: Description | None = None
    # With content, the prompt is also created upstream (when the upstream offers prompt objects).
    content: Content | None = None
    meta: dict[str, Any] | None = None


class PromptUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: PromptName | None = None
    description: Description | None = None
    meta: dict[str, Any] | None = None
    version: int | None = Field(None, ge=1)

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k in ("name", "description", "meta")}


class Prompt(BaseModel):
    id: str
    name: str
    description: str | None = None
    openai_prompt_id: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    latest_version: str | None = None
    version_count: int = 0
    created_at: str
    updated_at: str
    version: int = 1


class PromptList(BaseModel):
    items: list[Prompt]
    next_cursor: str | None = None


class PromptListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class PromptVersionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: VersionLabel
    content: Content | None = None
    summary: Description | None = None


class PromptVersion(BaseModel):
    id: str
    prompt_id: str
    version: str
    sequence: int
    content: str | None = None
    summary: str | None = None
    openai_version_id: str | None = None
    created_at: str


class PromptVersionList(BaseModel):
    items: list[PromptVersion]
    next_cursor: str | None = None


class PromptVersionListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)
