"""Settings from the environment, validated once per cold start.

Resource names come from template.yaml (Globals.Function.Environment); the local stack sets the same
variables after provisioning the template into the emulator. Endpoints are never configured here:
boto3 and the openai SDK read AWS_ENDPOINT_URL / OPENAI_BASE_URL themselves.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    stage: Literal["local", "dev", "prod"] = "local"
    aws_region: str = Field("us-east-1", validation_alias="AWS_REGION")

    # DynamoDB tables (one per aggregate) — required: the template or the local stack provides them.
    agents_table: str
    prompts_table: str
    vector_stores_table: str
    conversations_table: str
    jobs_table: str
    audit_table: str
    users_table: str
    api_keys_table: str
    webhook_events_table: str
    rate_limits_table: str
    usage_table: str

    jobs_queue_url: str
    jobs_dlq_url: str
    admin_token_secret_id: str
    openai_secret_id: str
    webhook_secret_id: str
    backup_bucket: str

    # Jobs
    job_max_attempts: int = Field(3, ge=1, le=20)
    job_backoff_base_seconds: float = Field(60.0, ge=0)
    job_backoff_max_seconds: float = Field(3600.0, ge=0)
    job_retention_days: int = Field(30, ge=1)
    job_poll_delay_seconds: int = Field(30, ge=0, le=900)
    job_poll_max_polls: int = Field(120, ge=1)
    # Webhooks: Standard Webhooks replay window; secrets are re-read at most this often (rotation).
    webhook_tolerance_seconds: int = Field(300, ge=1)
    webhook_secret_cache_seconds: float = Field(60.0, ge=0)
    webhook_event_ttl_days: int = Field(30, ge=1)

    # Auth
    admin_token_cache_seconds: float = Field(5.0, ge=0)
    admin_token_grace_minutes: int = Field(0, ge=0)
    admin_rate_limit: int = Field(300, ge=1)
    admin_rate_window_seconds: int = Field(60, ge=1)
    admin_cors_origins: str = ""

    # HTTP: bodies larger than this get 413 before they are read (Lambda caps sync payloads at 6 MB).
    max_request_bytes: int = Field(6 * 1024 * 1024, ge=1024)

    # Chat
    chat_rate_limit: int = Field(60, ge=1)
    chat_rate_window_seconds: int = Field(60, ge=1)
    max_message_length: int = Field(4000, ge=1)
    chat_max_messages: int = Field(50, ge=1)
    conversation_ttl_days: int = Field(30, ge=1)
    enable_file_upload: bool = False
    max_file_size: int = 10 * 1024 * 1024
    allowed_file_types: str = "txt,pdf,doc,docx,jpg,png"
    api_type: Literal["responses", "chat"] = "responses"
    openai_model: str = "gpt-4o-mini"
    responses_model: str = "gpt-4.1-mini"
    fallback_model: str = "gpt-4o-mini"
    system_message: str = "You are a helpful AI assistant."
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1000
    max_output_tokens: int = 1024
    chat_timeout_seconds: float = 60.0
    responses_timeout_seconds: float = 120.0
    log_message_text: bool = False
    # Chat (issue 4): defaults of the original where it had one.
    chat_cors_origins: str = "*"
    chat_max_files: int = Field(5, ge=0)
    chat_max_tools: int = Field(128, ge=0)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    responses_prompt_id: str = ""
    responses_prompt_version: str = ""
    responses_vector_store_ids: str = ""
    responses_max_num_results: int | None = Field(None, ge=1, le=200)
    responses_tools: str = ""
    upstream_max_retries: int = Field(2, ge=0, le=10)
    upstream_retry_base_seconds: float = Field(0.5, ge=0)
    upstream_retry_max_seconds: float = Field(8.0, ge=0)
    agent_cache_seconds: float = Field(10.0, ge=0)
    usage_retention_days: int = Field(400, ge=1)

    # Admin resources: files sent base64 to `add_vector_store_file` / `upload_file` (decoded bytes); the
    # request body is capped by max_request_bytes too. Files up to `admin_inline_file_bytes` ride in the
    # file_ingest job (a DynamoDB item holds 400 KB); larger ones are uploaded upstream during the request.
    admin_max_file_bytes: int = Field(4 * 1024 * 1024, ge=1)
    admin_inline_file_bytes: int = Field(256 * 1024, ge=0, le=280 * 1024)

    # Backups
    backup_retention_days: int = Field(7, ge=1)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process; tests call `get_settings.cache_clear()` after changing env."""
    return Settings()  # type: ignore[call-arg]
