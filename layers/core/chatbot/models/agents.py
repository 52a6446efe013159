"""Agents: reusable chat configurations (model, prompt, tools, vector stores) that override the defaults.

Limits follow the original (name ≤ 255, temperature 0..2, top_p 0..1, max_num_results 1..200, api_type
responses|chat). Tools are checked for shape here and normalised by `chatbot.services.tools` in the service.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

ApiType = Literal["responses", "chat"]
AgentName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
VectorStoreId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
ShortText = Annotated[str, StringConstraints(max_length=255)]
LongText = Annotated[str, StringConstraints(max_length=100_000)]

# Fields an agent configures; everything else on an agent is bookkeeping.
AGENT_FIELDS = (
    "name",
    "description",
    "api_type",
    "prompt_id",
    "prompt_version",
    "system_message",
    "model",
    "temperature",
    "top_p",
    "max_output_tokens",
    "tools",
    "vector_store_ids",
    "max_num_results",
)


class _AgentFields(BaseModel):
    # Unknown keys are ignored rather than refused: existing scripts post whole agent objects back.
    model_config = ConfigDict(extra="ignore")

    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    prompt_id: ShortText | None = None
    prompt_version: ShortText | None = None
    system_message: LongText | None = None
    model: Annotated[str, StringConstraints(strip_whitespace=True, max_length=128)] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_output_tokens: int | None = Field(None, ge=1, le=1_000_000)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    vector_store_ids: list[VectorStoreId] | None = Field(None, max_length=100)
    max_num_results: int | None = Field(None, ge=1, le=200)


class AgentCreate(_AgentFields):
    name: AgentName
    api_type: ApiType = "responses"
    is_default: bool = False


class AgentUpdate(_AgentFields):
    """Partial update: only the fields sent change; an explicit null clears an optional field."""

    name: AgentName | None = None
    api_type: ApiType | None = None
    is_default: bool | None = None
    # Optimistic concurrency: the version the client last read (or If-Match); a mismatch is a 409.
    version: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _required_stay_set(self) -> AgentUpdate:
        for field in ("name", "api_type", "is_default"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k in AGENT_FIELDS}


class Agent(BaseModel):
    id: str
    name: str
    description: str | None = None
    api_type: ApiType = "responses"
    prompt_id: str | None = None
    prompt_version: str | None = None
    system_message: str | None = None
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    vector_store_ids: list[str] = Field(default_factory=list)
    max_num_results: int | None = None
    is_default: bool = False
    created_at: str
    updated_at: str
    version: int = 1


class AgentList(BaseModel):
    items: list[Agent]
    next_cursor: str | None = None


class AgentListQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    api_type: ApiType | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=2048)


class AgentTest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: Annotated[str, StringConstraints(min_length=1, max_length=4000)] = (
        "Hello, this is a test message."
    )
