"""Chat: the widget request, history messages, token usage, replies, and the OpenAI-compatible shapes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

ApiType = Literal["responses", "chat"]
Role = Literal["system", "user", "assistant", "developer", "tool"]
CONVERSATION_ID_PATTERN = r"^[a-zA-Z0-9_-]{1,128}$"


class ChatFile(BaseModel):
    """An uploaded file, decoded and checked (`chatbot.services.uploads`)."""

    name: str
    extension: str
    mime_type: str
    data: bytes = Field(repr=False)

    @property
    def is_image(self) -> bool:
        return self.mime_type.startswith("image/")


class ChatRequest(BaseModel):
    """A validated `/chat` request (GET query or POST JSON/form body)."""

    message: str
    conversation_id: str
    # The client sent no conversation id and we made one up: there is no history to read.
    new_conversation: bool = False
    agent_id: str | None = None
    # None means "not asked for": the agent's api_type, then the configured default, apply.
    api_type: ApiType | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    # None: no tools sent; []: explicitly no tools (overrides agent and config tools).
    tools: list[dict[str, Any]] | None = None
    files: list[ChatFile] = Field(default_factory=list)
    stream: bool = True


class ChatMessage(BaseModel):
    role: Role
    content: str
    file_ids: list[str] = Field(default_factory=list)
    image_file_ids: list[str] = Field(default_factory=list)


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class ChatReply(BaseModel):
    """Non-streaming `/chat` reply, as the original's (optional keys left out, not null)."""

    response: str
    response_id: str | None = None
    conversation_id: str
    api_type: ApiType
    agent_id: str | None = None


class ChatSettings(BaseModel):
    """Everything that decides one upstream call, after agent/config/request precedence."""

    model_config = ConfigDict(frozen=True)

    api_type: ApiType
    model: str
    system_message: str | None
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    agent_id: str | None = None


# -- usage and quotas ----------------------------------------------------------------------------------------
QuotaScope = Literal["agent", "key"]


class QuotaSet(BaseModel):
    scope: QuotaScope
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    # None removes the quota.
    daily_tokens: int | None = Field(None, ge=0)


class Quota(BaseModel):
    scope: QuotaScope
    id: str
    daily_tokens: int
    updated_at: str | None = None


class UsageRow(BaseModel):
    day: str
    agent_id: str
    key_id: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class UsageReport(BaseModel):
    day_from: str
    day_to: str
    rows: list[UsageRow]
    totals: UsageRow


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    day_from: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    day_to: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    agent_id: str | None = None
    key_id: str | None = None


# -- OpenAI-compatible API -----------------------------------------------------------------------------------
class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class CompletionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    # A string, or a list of content parts of which the text parts are used.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(str(p.get("text", "")) for p in self.content if isinstance(p, dict))


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`: `model` names an agent (id or name); the agent's settings apply."""

    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    messages: list[CompletionMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    tools: list[dict[str, Any]] | None = None
    user: str | None = None
