"""The upstream side of the admin resources: files, vector stores (and their files), prompt objects.

Everything goes through the official SDK (`chatbot.upstream.openai_client`). OpenAI's errors become domain
errors here, once: a missing object is NotFound, a refused request is BadRequest with OpenAI's message,
anything else (5xx, connection, timeout, a rejected API key) is UpstreamError / UpstreamTimeout with a
generic message; the API key never appears in a message.

Prompt objects: the SDK has no prompts resource and OpenAI's public API may not offer one, so the prompt
calls use the SDK's generic request methods on `/prompts`, and an upstream that answers 404/405/501 there
"does not offer prompt objects": the calls return None and the caller keeps the prompt locally only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chatbot.errors import BadRequest, ChatbotError, NotFound, UpstreamError, UpstreamTimeout
from chatbot.observability import get_logger, log_event
from chatbot.upstream.openai_client import get_openai_client

if TYPE_CHECKING:
    import openai

T = TypeVar("T")
logger = get_logger("admin")
_NOT_OFFERED = (404, 405, 501)


@dataclass(frozen=True)
class RemotePrompt:
    id: str
    name: str | None = None
    description: str | None = None
    version: str | None = None
    version_id: str | None = None
    content: str | None = None


@dataclass(frozen=True)
class RemotePromptVersion:
    id: str | None
    version: str
    content: str | None = None


class OpenAIAdmin:
    """Admin operations on the upstream. `client` defaults to the process's shared SDK client."""

    def __init__(self, client: openai.OpenAI | None = None) -> None:
        self._client = client

    @property
    def client(self) -> openai.OpenAI:
        return self._client or get_openai_client()

    # -- files ---------------------------------------------------------------------------------------------
    def upload_file(self, name: str, content: bytes, *, purpose: str, mime_type: str | None = None) -> Any:
        file = (name, content, mime_type or "application/octet-stream")
        return self._call("files.create", lambda: self.client.files.create(file=file, purpose=purpose))  # type: ignore[arg-type]

    def get_file(self, file_id: str) -> Any:
        return self._call("files.retrieve", lambda: self.client.files.retrieve(file_id), what="File")

    def list_files(self, *, purpose: str | None = None, limit: int = 1000) -> list[Any]:
        def run() -> list[Any]:
            kwargs: dict[str, Any] = {"limit": min(limit, 10_000)}
            if purpose:
                kwargs["purpose"] = purpose
            out: list[Any] = []
            for item in self.client.files.list(**kwargs):  # the SDK pages on
                out.append(item)
                if len(out) >= limit:
                    break
            return out

        return self._call("files.list", run)

    def delete_file(self, file_id: str, *, missing_ok: bool = False) -> bool:
        """Delete an uploaded file; False when it was already gone and `missing_ok`."""
        try:
            self._call("files.delete", lambda: self.client.files.delete(file_id), what="File")
        except NotFound:
            if missing_ok:
                return False
            raise
        return True

    # -- vector stores -------------------------------------------------------------------------------------
    def create_vector_store(self, name: str, metadata: dict[str, str] | None = None) -> Any:
        kwargs: dict[str, Any] = {"name": name}
        if metadata:
            kwargs["metadata"] = metadata
        return self._call("vector_stores.create", lambda: self.client.vector_stores.create(**kwargs))

    def update_vector_store(self, store_id: str, *, name: str | None, metadata: dict[str, str] | None) -> Any:
        kwargs: dict[str, Any] = {}
        if name is not None:
            kwargs["name"] = name
        if metadata is not None:
            kwargs["metadata"] = metadata
        return self._call(
            "vector_stores.update",
            lambda: self.client.vector_stores.update(store_id, **kwargs),
            what="Vector store",
        )

    def get_vector_store(self, store_id: str) -> Any:
        return self._call(
            "vector_stores.retrieve",
            lambda: self.client.vector_stores.retrieve(store_id),
            what="Vector store",
        )

    def list_vector_stores(self, *, limit: int = 100) -> list[Any]:
        def run() -> list[Any]:
            out: list[Any] = []
            for store in self.client.vector_stores.list(limit=min(limit, 100)):
                out.append(store)
                if len(out) >= limit:
                    break
            return out

        return self._call("vector_stores.list", run)

    def delete_vector_store(self, store_id: str) -> bool:
        """Delete a remote store; False when it was already gone."""
        try:
            self._call(
                "vector_stores.delete",
                lambda: self.client.vector_stores.delete(store_id),
                what="Vector store",
            )
        except NotFound:
            return False
        return True

    def get_vector_store_file(self, store_id: str, file_id: str) -> Any:
        return self._call(
            "vector_stores.files.retrieve",
            lambda: self.client.vector_stores.files.retrieve(file_id, vector_store_id=store_id),
            what="Vector store file",
        )

    def delete_vector_store_file(self, store_id: str, file_id: str) -> bool:
        """Detach a file from a remote store; False when it was not attached (or the store is gone)."""
        try:
            self._call(
                "vector_stores.files.delete",
                lambda: self.client.vector_stores.files.delete(file_id, vector_store_id=store_id),
                what="Vector store file",
            )
        except NotFound:
            return False
        return True

    # -- prompt objects (where the upstream offers them) ---------------------------------------------------
    def create_prompt(
        self, name: str, *, content: str, description: str | None = None
    ) -> RemotePrompt | None:
        body: dict[str, Any] = {"name": name, "content": content}
        if description:
            body["description"] = description
        data = self._prompt_call("POST", "/prompts", body)
        return _remote_prompt(data) if data is not None else None

    def create_prompt_version(
        self, prompt_id: str, *, version: str, content: str | None
    ) -> RemotePromptVersion | None:
        body: dict[str, Any] = {"version": version}
        if content is not None:
            body["content"] = content
        data = self._prompt_call("POST", f"/prompts/{prompt_id}/versions", body)
        if data is None:
            return None
        return RemotePromptVersion(
            id=_str(data.get("id")),
            version=str(data.get("version") or version),
            content=_str(data.get("content")),
        )

    def list_prompts(self, *, limit: int = 100) -> list[RemotePrompt] | None:
        data = self._prompt_call("GET", "/prompts", None, query={"limit": limit})
        if data is None:
            return None
        return [_remote_prompt(p) for p in _data_list(data)[:limit] if isinstance(p, dict) and p.get("id")]

    def list_prompt_versions(self, prompt_id: str, *, limit: int = 100) -> list[RemotePromptVersion] | None:
        data = self._prompt_call("GET", f"/prompts/{prompt_id}/versions", None, query={"limit": limit})
        if data is None:
            return None
        out = []
        for v in _data_list(data)[:limit]:
            if isinstance(v, dict) and v.get("version") is not None:
                out.append(
                    RemotePromptVersion(
                        id=_str(v.get("id")), version=str(v["version"]), content=_str(v.get("content"))
                    )
                )
        return out

    def delete_prompt(self, prompt_id: str) -> bool:
        """Delete a remote prompt; False when it is gone or the upstream has no prompt objects."""
        return self._prompt_call("DELETE", f"/prompts/{prompt_id}", None) is not None

    def _prompt_call(
        self, method: str, path: str, body: dict[str, Any] | None, *, query: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        import openai

        def run() -> Any:
            options: dict[str, Any] = {"cast_to": object}
            if query:
                options["options"] = {"params": query}
            if method == "GET":
                return self.client.get(path, **options)
            if method == "DELETE":
                return self.client.delete(path, **options)
            return self.client.post(path, body=body, **options)

        try:
            data = self._call(f"prompts {method.lower()}", run, raw_status=True)
        except openai.APIStatusError as exc:
            if exc.status_code in _NOT_OFFERED:
                return None
            raise self._translate(f"prompts {method.lower()}", exc, None) from None
        return data if isinstance(data, dict) else {}

    # -- error translation ---------------------------------------------------------------------------------
    def _call(
        self, operation: str, run: Callable[[], T], *, what: str | None = None, raw_status: bool = False
    ) -> T:
        import openai

        try:
            return run()
        except openai.APIStatusError as exc:
            if raw_status:
                raise
            raise self._translate(operation, exc, what) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise self._translate(operation, exc, what) from None

    def _translate(self, operation: str, exc: Exception, what: str | None) -> ChatbotError:
        import openai

        status = getattr(exc, "status_code", None)
        log_event(
            logger,
            "upstream_error",
            "warning",
            operation=operation,
            status=status,
            error_type=type(exc).__name__,
        )
        if isinstance(exc, openai.APITimeoutError):
            return UpstreamTimeout("The OpenAI API did not answer in time")
        if status == 404 and what:
            return NotFound(f"{what} not found upstream", code="upstream_not_found")
        if status in (400, 404, 409, 413, 422):
            return BadRequest(f"OpenAI refused the request: {_message(exc)}", code="upstream_rejected")
        return UpstreamError("The OpenAI API is unavailable; try again later")


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:500]
    return "invalid request"


def _data_list(data: dict[str, Any]) -> list[Any]:
    items = data.get("data")
    return items if isinstance(items, list) else []


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _remote_prompt(data: dict[str, Any]) -> RemotePrompt:
    return RemotePrompt(
        id=str(data.get("id")),
        name=_str(data.get("name")),
        description=_str(data.get("description")),
        version=_str(data.get("version")),
        version_id=_str(data.get("version_id")),
        content=_str(data.get("content")),
    )
