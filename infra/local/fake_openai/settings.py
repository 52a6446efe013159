"""Settings of the fake OpenAI server: constructor arguments win over `FAKE_OPENAI_*` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FakeOpenAISettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FAKE_OPENAI_", extra="ignore", validate_assignment=True)

    # Sleep before each streamed token; a non-streamed reply waits tokens x latency in one go.
    token_latency_ms: float = Field(0.0, ge=0)
    # Time a vector store file stays `in_progress` before it becomes `completed` or `failed`.
    ingest_delay_s: float = Field(0.2, ge=0)
    # Upper bound of the `timeout` fault when the client neither gives up nor the server stops first.
    timeout_s: float = Field(30.0, ge=0)
    # Sent as `retry-after-ms` (and rounded up as `retry-after`) on 429s; small so SDK retries stay fast.
    retry_after_s: float = Field(0.05, ge=0)
    # `openai-poll-after-ms` on in-progress vector store files, read by the SDK's `*_and_poll` helpers.
    poll_after_ms: int = Field(50, ge=0)
    # Token chunks a `disconnect` fault sends before it drops a stream.
    disconnect_after_tokens: int = Field(2, ge=0)
    # Where vector store ingestion results are announced as signed webhooks (both needed).
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    # Recorded requests kept (oldest dropped first), so a long `make run` stays bounded.
    max_recorded_requests: int = Field(10_000, ge=1)
