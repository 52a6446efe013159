"""The ASGI app: OpenAI-compatible routes under `/v1`, the control API under `/_fake`.

Every `/v1` request is recorded, authenticated (any non-empty bearer token), then given its fault — from the
`x-fake-fault` header, a `[[fault:…]]` marker in the last user message, or the queue filled through
`POST /_fake/faults`, in that order — before the route runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from . import generation as gen
from .faults import Fault, error_body, quota_error, status_error
from .multipart import Part, parse_multipart
from .settings import FakeOpenAISettings
from .state import FakeState, paginate
from .webhooks import asend_webhook, build_event

logger = logging.getLogger("infra.local.fake_openai")

FAULT_HEADER = "x-fake-fault"
LATENCY_HEADER = "x-fake-latency-ms"
TIMEOUT_HEADER = "x-fake-timeout-s"
INGEST_DELAY_HEADER = "x-fake-ingest-delay-s"
UNSUPPORTED_MODEL = "unsupported-model"
MISSING_PROMPT_PREFIX = "pmpt_missing"
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-5-mini",
    "o4-mini",
    "gpt-3.5-turbo",
)
_MODELS_CREATED = 1_700_000_000


class DropConnection(Exception):
    """Raised inside a response to make the server close the connection without finishing it."""


class ServerStopping(Exception):
    """A handler's sleep ended because the server is stopping."""


def quiet_exception(exc: BaseException | None) -> bool:
    """True for the exceptions the fake raises on purpose (the server would log them as crashes)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(quiet_exception(e) for e in exc.exceptions)
    return isinstance(exc, DropConnection | ServerStopping)


class ApiError(Exception):
    """An OpenAI-shaped error response raised from a route."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        error_type: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, error_type, param, code)


def _not_found(kind: str, object_id: str, param: str = "id") -> ApiError:
    return ApiError(404, f"No such {kind} object: {object_id}", param=param)


@dataclass
class Ctx:
    """One `/v1` request after the common steps: parsed body, chosen fault and latency."""

    request: Request
    state: FakeState
    body: dict[str, Any]
    fault: Fault | None
    latency_s: float
    parts: list[Part]

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    async def pause(self, seconds: float) -> None:
        await pause(self.state, seconds)


async def pause(state: FakeState, seconds: float) -> None:
    """Sleep that ends early, with `ServerStopping`, when the server stops."""
    if state.stopping.is_set():
        raise ServerStopping
    if seconds <= 0:
        return
    try:
        async with asyncio.timeout(seconds):
            await state.stopping.wait()
    except TimeoutError:
        return
    raise ServerStopping


class _DroppedResponse(Response):
    """Headers and part of a body, then the connection closes: a non-streamed `disconnect` fault."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise DropConnection


def _error_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


Handler = Callable[[Ctx], Awaitable[Response]]


class FakeApp:
    """Routes bound to one `FakeState`."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: httpx.AsyncClient | None = None
        self._http_lock = asyncio.Lock()

    @property
    def settings(self) -> FakeOpenAISettings:
        return self.state.settings

    # --- the common steps of every /v1 route ---------------------------------------------

    def api(self, handler: Handler, turn_of: Callable[[dict[str, Any]], gen.Turn] | None = None) -> Any:
        async def endpoint(request: Request) -> Response:
            request_id = gen.new_id("req_", 16)
            response = await self._run(request, handler, turn_of)
            response.headers["x-request-id"] = request_id
            return response

        return endpoint

    async def _run(
        self, request: Request, handler: Handler, turn_of: Callable[[dict[str, Any]], gen.Turn] | None
    ) -> Response:
        body, parts, recorded_body, problem = await _read_body(request)
        headers = request.headers
        marker_text = turn_of(body).marker_source if turn_of and problem is None else ""
        fault: Fault | None = None
        problem = _auth_problem(headers.get("authorization", "")) or problem
        if problem is None:
            try:
                fault = self._choose_fault(request, marker_text)
            except ValueError as exc:
                problem = ApiError(400, f"Bad fake fault: {exc}", param=FAULT_HEADER)
        self.state.record(
            {
                "time": time.time(),
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": {k: v for k, v in headers.items() if k != "authorization"},
                "body": recorded_body,
                "fault": str(fault) if fault else None,
            }
        )
        try:
            if problem is not None:
                raise problem
            latency_ms = _number(headers, LATENCY_HEADER, gen.latency_marker(marker_text))
            if latency_ms is None:
                latency_ms = self.settings.token_latency_ms
            ctx = Ctx(request, self.state, body, fault, latency_ms / 1000, parts)
            if fault is not None and (early := await self._apply_fault(ctx, fault)) is not None:
                return early
            return await handler(ctx)
        except ApiError as exc:
            return _error_response(exc.status, exc.body)

    def _choose_fault(self, request: Request, marker_text: str) -> Fault | None:
        spec = request.headers.get(FAULT_HEADER) or gen.fault_marker(marker_text)
        fault = Fault.parse(spec) if spec is not None else self.state.take_fault(request.url.path)
        return None if fault is None or fault.kind == "none" else fault

    async def _apply_fault(self, ctx: Ctx, fault: Fault) -> Response | None:
        """The response for faults that replace the route; None for faults a stream plays out itself."""
        if fault.kind == "status":
            status = fault.status or 500
            headers = self._retry_headers(fault.arg) if status == 429 else None
            return _error_response(status, status_error(status), headers)
        if fault.kind == "quota":
            return _error_response(429, quota_error())
        if fault.kind == "timeout":
            limit = fault.arg
            if limit is None:
                limit = _number(ctx.request.headers, TIMEOUT_HEADER, self.settings.timeout_s)
            await self._hang(ctx.request, limit or 0.0)
            return _error_response(504, status_error(504))
        if ctx.stream:
            return None
        if fault.kind == "disconnect":
            return _DroppedResponse()
        return _error_response(500, status_error(500))

    def _retry_headers(self, seconds: float | None) -> dict[str, str]:
        seconds = self.settings.retry_after_s if seconds is None else seconds
        return {"retry-after-ms": str(round(seconds * 1000)), "retry-after": str(max(1, math.ceil(seconds)))}

    async def _hang(self, request: Request, limit: float) -> None:
        """Answer nothing until the client hangs up, the server stops, or `limit` seconds pass."""

        async def client_gone() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        waits = [asyncio.ensure_future(client_gone()), asyncio.ensure_future(self.state.stopping.wait())]
        try:
            await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
        if self.state.stopping.is_set():
            raise ServerStopping

    # --- streaming -----------------------------------------------------------------------

    def _stream(
        self,
        ctx: Ctx,
        frames: Iterator[gen.Frame],
        *,
        numbered: bool,
        on_error: Callable[[], Iterator[gen.Frame]],
        trailer: bytes = b"",
    ) -> StreamingResponse:
        """Pace frames by the token latency and play out `disconnect` / `error_event` faults."""
        fault = ctx.fault.kind if ctx.fault else None
        fault_after = int(ctx.fault.arg) if ctx.fault and ctx.fault.arg is not None else None
        if fault_after is None:
            fault_after = self.settings.disconnect_after_tokens

        async def body() -> AsyncIterator[bytes]:
            sequence = 0
            sent_tokens = 0
            for frame in frames:
                due = frame.token and sent_tokens >= fault_after
                if fault in ("disconnect", "error_event") and (due or frame.tail):
                    if fault == "disconnect":
                        raise DropConnection
                    for error_frame in on_error():
                        yield gen.sse(error_frame, sequence if numbered else None)
                        sequence += 1
                    return
                if frame.token:
                    await ctx.pause(ctx.latency_s)
                    sent_tokens += 1
                yield gen.sse(frame, sequence if numbered else None)
                sequence += 1
            if trailer:
                yield trailer

        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        return StreamingResponse(body(), media_type="text/event-stream; charset=utf-8", headers=headers)

    # --- chat completions ----------------------------------------------------------------

    async def chat_completions(self, ctx: Ctx) -> Response:
        body = ctx.body
        model = _check_model(body)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise ApiError(400, "Missing required parameter: 'messages'.", param="messages")
        turn = gen.chat_turn(body)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        plan = gen.plan_reply(
            turn, self.state.take_reply, max_tokens if isinstance(max_tokens, int) else None
        )
        if not ctx.stream:
            await ctx.pause(ctx.latency_s * plan.completion_tokens)
            return JSONResponse(gen.chat_completion(model, turn, plan))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = gen.chat_chunks(model, turn, plan, include_usage)

        def on_error() -> Iterator[gen.Frame]:
            yield gen.Frame(gen.chat_error_chunk("The server had an error while processing your request."))

        return self._stream(ctx, frames, numbered=False, on_error=on_error, trailer=gen.SSE_DONE)

    # --- responses -----------------------------------------------------------------------

    async def responses_create(self, ctx: Ctx) -> Response:
        body = ctx.body
        _check_model(body)
        prompt = body.get("prompt")
        if isinstance(prompt, dict) and str(prompt.get("id", "")).startswith(MISSING_PROMPT_PREFIX):
            raise ApiError(404, f"Prompt with id '{prompt['id']}' not found.", param="prompt")
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.state.responses:
            raise ApiError(
                400,
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        if body.get("input") is None and prompt is None:
            raise ApiError(400, "Missing required parameter: 'input'.", param="input")
        turn = gen.responses_turn(body)
        max_tokens = body.get("max_output_tokens")
        plan = gen.plan_reply(
            turn, self.state.take_reply, max_tokens if isinstance(max_tokens, int) else None
        )
        draft = gen.ResponseDraft(body, turn, plan)
        if not ctx.stream:
            await ctx.pause(ctx.latency_s * plan.completion_tokens)
            response = draft.snapshot(draft.final_status)
            self.state.store_response(response)
            return JSONResponse(response)

        def frames() -> Iterator[gen.Frame]:
            for frame in draft.events():
                if frame.event in ("response.completed", "response.incomplete"):
                    self.state.store_response(frame.data["response"])
                yield frame

        def on_error() -> Iterator[gen.Frame]:
            return draft.failure_events("The server had an error while processing your request.")

        return self._stream(ctx, frames(), numbered=True, on_error=on_error)

    async def responses_get(self, ctx: Ctx) -> Response:
        response_id = ctx.request.path_params["response_id"]
        with self.state.lock:
            response = self.state.responses.get(response_id)
        if response is None:
            raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
        return JSONResponse(response)

    async def responses_delete(self, ctx: Ctx) -> Response:
        response_id = ctx.request.path_params["response_id"]
        with self.state.lock:
            found = self.state.responses.pop(response_id, None)
        if found is None:
            raise ApiError(404, f"Response with id '{response_id}' not found.", param="response_id")
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    # --- models --------------------------------------------------------------------------

    async def models_list(self, ctx: Ctx) -> Response:
        return JSONResponse({"object": "list", "data": [_model(m) for m in MODELS]})

    async def models_get(self, ctx: Ctx) -> Response:
        model_id = ctx.request.path_params["model_id"]
        if model_id not in MODELS:
            raise ApiError(
                404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
            )
        return JSONResponse(_model(model_id))

    # --- files ---------------------------------------------------------------------------

    async def files_create(self, ctx: Ctx) -> Response:
        uploads = [p for p in ctx.parts if p.name == "file" and p.filename is not None]
        purpose = ctx.body.get("purpose")
        if not uploads:
            raise ApiError(400, "Missing required parameter: 'file'.", param="file")
        if purpose not in FILE_PURPOSES:
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", param="purpose")
        return JSONResponse(self.state.add_file(uploads[0].filename, purpose, uploads[0].data))

    async def files_list(self, ctx: Ctx) -> Response:
        purpose = ctx.request.query_params.get("purpose")
        with self.state.lock:
            files = [dict(f) for f in self.state.files.values() if purpose is None or f["purpose"] == purpose]
        return JSONResponse(paginate(files, ctx.request.query_params, default_limit=10_000))

    def _file(self, file_id: str) -> dict[str, Any]:
        with self.state.lock:
            file = self.state.files.get(file_id)
        if file is None:
            raise _not_found("File", file_id)
        return dict(file)

    async def files_get(self, ctx: Ctx) -> Response:
        return JSONResponse(self._file(ctx.request.path_params["file_id"]))

    async def files_delete(self, ctx: Ctx) -> Response:
        file_id = ctx.request.path_params["file_id"]
        self._file(file_id)
        with self.state.lock:
            self.state.files.pop(file_id, None)
            self.state.file_contents.pop(file_id, None)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def files_content(self, ctx: Ctx) -> Response:
        file_id = ctx.request.path_params["file_id"]
        self._file(file_id)
        with self.state.lock:
            content = self.state.file_contents.get(file_id, b"")
        return Response(content, media_type="application/octet-stream")

    # --- vector stores -------------------------------------------------------------------

    def _store(self, vs_id: str) -> dict[str, Any]:
        view = self.state.vector_store_view(vs_id)
        if view is None:
            raise _not_found("vector store", vs_id, param="vector_store_id")
        return view

    async def vector_stores_create(self, ctx: Ctx) -> Response:
        body = ctx.body
        file_ids = body.get("file_ids") or []
        for file_id in file_ids:
            self._file(file_id)
        now = int(time.time())
        store = {
            "id": gen.new_id("vs_", 12),
            "object": "vector_store",
            "created_at": now,
            "name": body.get("name") or "",
            "description": body.get("description"),
            "metadata": body.get("metadata") or {},
            "last_active_at": now,
            "expires_after": body.get("expires_after"),
            "expires_at": None,
        }
        with self.state.lock:
            self.state.vector_stores[store["id"]] = store
            self.state.vector_store_files[store["id"]] = {}
        for file_id in file_ids:
            self._attach(ctx, store["id"], file_id, None, body.get("chunking_strategy"))
        return JSONResponse(self._store(store["id"]))

    async def vector_stores_list(self, ctx: Ctx) -> Response:
        with self.state.lock:
            ids = list(self.state.vector_stores)
        stores = [v for v in (self.state.vector_store_view(i) for i in ids) if v is not None]
        return JSONResponse(paginate(stores, ctx.request.query_params))

    async def vector_stores_get(self, ctx: Ctx) -> Response:
        return JSONResponse(self._store(ctx.request.path_params["vector_store_id"]))

    async def vector_stores_update(self, ctx: Ctx) -> Response:
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        with self.state.lock:
            store = self.state.vector_stores[vs_id]
            for key in ("name", "metadata", "expires_after"):
                if key in ctx.body:
                    store[key] = ctx.body[key]
        return JSONResponse(self._store(vs_id))

    async def vector_stores_delete(self, ctx: Ctx) -> Response:
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        with self.state.lock:
            self.state.vector_stores.pop(vs_id, None)
            self.state.vector_store_files.pop(vs_id, None)
        return JSONResponse({"id": vs_id, "object": "vector_store.deleted", "deleted": True})

    async def vector_stores_search(self, ctx: Ctx) -> Response:
        """Completed files whose text contains a query word (a stand-in for semantic search)."""
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        query = ctx.body.get("query") or ""
        queries = query if isinstance(query, list) else [query]
        words = {w.lower() for q in queries for w in str(q).split()}
        limit = int(ctx.body.get("max_num_results") or 10)
        with self.state.lock:
            entries = [dict(e) for e in self.state.vector_store_files.get(vs_id, {}).values()]
            found = []
            for entry in entries:
                text = self.state.file_contents.get(entry["id"], b"").decode("utf-8", "replace")
                hits = sum(text.lower().count(w) for w in words)
                if entry["status"] == "completed" and hits:
                    filename = self.state.files.get(entry["id"], {}).get("filename", "")
                    found.append((hits, entry, filename, text))
        found.sort(key=lambda hit: -hit[0])
        data = [
            {
                "file_id": entry["id"],
                "filename": filename,
                "score": round(1 - 1 / (1 + hits), 4),
                "attributes": entry["attributes"],
                "content": [{"type": "text", "text": text[:800]}],
            }
            for hits, entry, filename, text in found[:limit]
        ]
        return JSONResponse(
            {
                "object": "vector_store.search_results.page",
                "search_query": [str(q) for q in queries],
                "data": data,
                "has_more": False,
                "next_page": None,
            }
        )

    def _attach(self, ctx: Ctx, vs_id: str, file_id: str, attributes: Any, chunking: Any) -> dict[str, Any]:
        self._file(file_id)
        delay = _number(ctx.request.headers, INGEST_DELAY_HEADER, self.settings.ingest_delay_s) or 0.0
        entry = self.state.attach_file(vs_id, file_id, attributes, chunking)
        asyncio.get_running_loop().call_later(delay, self._finish_ingestion, vs_id, file_id)
        return entry

    def _finish_ingestion(self, vs_id: str, file_id: str) -> None:
        entry = self.state.finish_ingestion(vs_id, file_id)
        settings = self.settings
        if entry is None or not settings.webhook_url or settings.webhook_secret is None:
            return
        data = {**entry, "file_id": file_id}
        event = build_event(f"vector_store.file.{entry['status']}", data)
        self._spawn(self._deliver(settings.webhook_url, event, settings.webhook_secret.get_secret_value()))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self) -> httpx.AsyncClient:
        async with self._http_lock:
            if self._http is None:
                # Building a client loads the CA bundle from disk: keep that off the event loop.
                self._http = await asyncio.to_thread(httpx.AsyncClient, timeout=10.0)
            return self._http

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _deliver(self, url: str, event: dict[str, Any], secret: str) -> int | None:
        try:
            response = await asend_webhook(await self._client(), url, event, secret)
        except httpx.HTTPError as exc:
            logger.warning("webhook delivery of %s to %s failed: %s", event["type"], url, type(exc).__name__)
            self.state.record_delivery(url, event, None)
            return None
        self.state.record_delivery(url, event, response.status_code)
        return response.status_code

    async def vs_files_create(self, ctx: Ctx) -> Response:
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        file_id = ctx.body.get("file_id")
        if not isinstance(file_id, str):
            raise ApiError(400, "Missing required parameter: 'file_id'.", param="file_id")
        entry = self._attach(
            ctx, vs_id, file_id, ctx.body.get("attributes"), ctx.body.get("chunking_strategy")
        )
        return JSONResponse(entry)

    async def vs_files_list(self, ctx: Ctx) -> Response:
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        status = ctx.request.query_params.get("filter")
        with self.state.lock:
            entries = [dict(e) for e in self.state.vector_store_files.get(vs_id, {}).values()]
        entries = [e for e in entries if status is None or e["status"] == status]
        return JSONResponse(paginate(entries, ctx.request.query_params))

    def _vs_file(self, ctx: Ctx) -> tuple[str, str, dict[str, Any]]:
        vs_id = ctx.request.path_params["vector_store_id"]
        file_id = ctx.request.path_params["file_id"]
        self._store(vs_id)
        with self.state.lock:
            entry = self.state.vector_store_files.get(vs_id, {}).get(file_id)
        if entry is None:
            raise _not_found("vector store file", file_id, param="file_id")
        return vs_id, file_id, entry

    async def vs_files_get(self, ctx: Ctx) -> Response:
        _, _, entry = self._vs_file(ctx)
        headers = {"openai-poll-after-ms": str(self.settings.poll_after_ms)}
        return JSONResponse(dict(entry), headers=headers if entry["status"] == "in_progress" else None)

    async def vs_files_update(self, ctx: Ctx) -> Response:
        _, _, entry = self._vs_file(ctx)
        with self.state.lock:
            entry["attributes"] = ctx.body.get("attributes") or {}
            return JSONResponse(dict(entry))

    async def vs_files_delete(self, ctx: Ctx) -> Response:
        vs_id, file_id, _ = self._vs_file(ctx)
        with self.state.lock:
            self.state.vector_store_files.get(vs_id, {}).pop(file_id, None)
        return JSONResponse({"id": file_id, "object": "vector_store.file.deleted", "deleted": True})

    async def vs_files_content(self, ctx: Ctx) -> Response:
        _, file_id, _ = self._vs_file(ctx)
        with self.state.lock:
            text = self.state.file_contents.get(file_id, b"").decode("utf-8", "replace")
        return JSONResponse(
            {
                "object": "vector_store.file_content.page",
                "data": [{"type": "text", "text": text}],
                "has_more": False,
            }
        )

    async def batches_create(self, ctx: Ctx) -> Response:
        vs_id = ctx.request.path_params["vector_store_id"]
        self._store(vs_id)
        specs = ctx.body.get("files") or [{"file_id": f} for f in ctx.body.get("file_ids") or []]
        if not specs:
            raise ApiError(400, "Missing required parameter: 'file_ids'.", param="file_ids")
        for spec in specs:
            self._file(spec.get("file_id", ""))
        batch = {
            "id": gen.new_id("vsfb_", 12),
            "object": "vector_store.files_batch",
            "created_at": int(time.time()),
            "vector_store_id": vs_id,
            "file_ids": [spec["file_id"] for spec in specs],
            "cancelled": False,
        }
        with self.state.lock:
            self.state.batches[batch["id"]] = batch
        for spec in specs:
            attributes = spec.get("attributes", ctx.body.get("attributes"))
            chunking = spec.get("chunking_strategy", ctx.body.get("chunking_strategy"))
            self._attach(ctx, vs_id, spec["file_id"], attributes, chunking)
        return JSONResponse(self.state.batch_view(batch["id"]))

    def _batch(self, ctx: Ctx) -> dict[str, Any]:
        batch_id = ctx.request.path_params["batch_id"]
        view = self.state.batch_view(batch_id)
        if view is None or view["vector_store_id"] != ctx.request.path_params["vector_store_id"]:
            raise _not_found("vector store file batch", batch_id, param="batch_id")
        return view

    async def batches_get(self, ctx: Ctx) -> Response:
        view = self._batch(ctx)
        in_progress = view["status"] == "in_progress"
        headers = {"openai-poll-after-ms": str(self.settings.poll_after_ms)} if in_progress else None
        return JSONResponse(view, headers=headers)

    async def batches_cancel(self, ctx: Ctx) -> Response:
        view = self._batch(ctx)
        with self.state.lock:
            batch = self.state.batches[view["id"]]
            batch["cancelled"] = True
            store_files = self.state.vector_store_files.get(batch["vector_store_id"], {})
            for file_id in batch["file_ids"]:
                if file_id in store_files and store_files[file_id]["status"] == "in_progress":
                    store_files[file_id]["status"] = "cancelled"
        return JSONResponse(self.state.batch_view(view["id"]))

    async def batches_files(self, ctx: Ctx) -> Response:
        view = self._batch(ctx)
        status = ctx.request.query_params.get("filter")
        with self.state.lock:
            file_ids = self.state.batches[view["id"]]["file_ids"]
            store_files = self.state.vector_store_files.get(view["vector_store_id"], {})
            entries = [dict(store_files[f]) for f in file_ids if f in store_files]
        entries = [e for e in entries if status is None or e["status"] == status]
        return JSONResponse(paginate(entries, ctx.request.query_params))

    # --- control API ---------------------------------------------------------------------

    async def control_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear_requests()
            return JSONResponse({"cleared": True})
        return JSONResponse({"requests": self.state.recorded(request.query_params.get("path"))})

    async def control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear_faults()
        elif request.method == "POST":
            body = await _json(request)
            faults = body.get("faults")
            if isinstance(faults, str):
                faults = [faults]
            if not isinstance(faults, list):
                return _error_response(400, error_body("'faults' must be a list", param="faults"))
            try:
                self.state.queue_faults([str(f) for f in faults], body.get("path"))
            except ValueError as exc:
                return _error_response(400, error_body(str(exc), param="faults"))
        return JSONResponse({"faults": self.state.pending_faults()})

    async def control_reply(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.clear_replies()
            return JSONResponse({"cleared": True})
        body = await _json(request)
        if "replies" in body:
            self.state.queue_replies([str(r) for r in body["replies"]])
        if "text" in body:
            self.state.set_reply(None if body["text"] is None else str(body["text"]))
        return JSONResponse({"ok": True})

    async def control_config(self, request: Request) -> Response:
        if request.method == "POST":
            body = await _json(request)
            unknown = set(body) - set(FakeOpenAISettings.model_fields)
            if unknown:
                return _error_response(400, error_body(f"unknown settings: {sorted(unknown)}"))
            try:
                for key, value in body.items():
                    setattr(self.state.settings, key, value)
            except ValidationError as exc:
                return _error_response(400, error_body(str(exc.errors(include_url=False))))
        return JSONResponse(self.state.settings.model_dump(mode="json"))

    async def control_reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def control_webhook_send(self, request: Request) -> Response:
        """Sign an event and POST it to `url`; answers with the target's status."""
        body = await _json(request)
        url = body.get("url") or self.settings.webhook_url
        secret = body.get("secret") or (
            self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else None
        )
        if not url or not secret:
            return _error_response(400, error_body("'url' and 'secret' are required (or configured)"))
        event = body.get("event")
        if not isinstance(event, dict):
            if not body.get("type"):
                return _error_response(400, error_body("give 'event' or 'type' (+ 'data')", param="type"))
            event = build_event(str(body["type"]), body.get("data") or {})
        status = await self._deliver(str(url), event, str(secret))
        if status is None:
            return _error_response(502, error_body("webhook target unreachable", "server_error"), None)
        return JSONResponse({"status": status, "event": event})

    async def control_webhooks(self, request: Request) -> Response:
        return JSONResponse({"deliveries": self.state.deliveries()})

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})


async def _read_body(request: Request) -> tuple[dict[str, Any], list[Part], Any, ApiError | None]:
    """JSON or multipart body: (fields, uploaded parts, what to record, why it is unreadable)."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/"):
        try:
            parts = parse_multipart(content_type, raw)
        except ValueError as exc:
            return {}, [], None, ApiError(400, str(exc))
        fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None}
        files = [{"name": p.name, "filename": p.filename, "bytes": len(p.data)} for p in parts if p.filename]
        return fields, parts, {**fields, "files": files}, None
    if not raw:
        return {}, [], None, None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}, [], None, ApiError(400, "We could not parse the JSON body of your request.")
    return (parsed if isinstance(parsed, dict) else {}), [], parsed, None


def _number(headers: Any, name: str, default: float | None) -> float | None:
    value = headers.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ApiError(400, f"Header {name} must be a number.", param=name) from None
    if not math.isfinite(number) or number < 0:
        raise ApiError(400, f"Header {name} must be a finite number >= 0.", param=name)
    return number


def _auth_problem(header: str) -> ApiError | None:
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    if token.strip().startswith("sk-invalid"):
        return ApiError(401, "Incorrect API key provided.", code="invalid_api_key")
    return None


def _check_model(body: dict[str, Any]) -> str:
    model = str(body.get("model") or gen.DEFAULT_MODEL)
    if model == UNSUPPORTED_MODEL:
        raise ApiError(
            400,
            f"The requested model '{model}' does not exist.",
            param="model",
            code="model_not_found",
        )
    return model


def _model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _MODELS_CREATED, "owned_by": "system"}


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            return parsed
    return {}


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = f"Invalid URL ({request.method} {request.url.path})"
    return _error_response(status, error_body(message))


def create_app(state: FakeState | None = None) -> Starlette:
    """The ASGI app; `app.state.fake` is its `FakeState`."""
    state = state or FakeState(FakeOpenAISettings())
    fake = FakeApp(state)
    api = fake.api
    vs = "/v1/vector_stores/{vector_store_id}"
    routes = [
        Route("/v1/chat/completions", api(fake.chat_completions, gen.chat_turn), methods=["POST"]),
        Route("/v1/responses", api(fake.responses_create, gen.responses_turn), methods=["POST"]),
        Route("/v1/responses/{response_id}", api(fake.responses_get), methods=["GET"]),
        Route("/v1/responses/{response_id}", api(fake.responses_delete), methods=["DELETE"]),
        Route("/v1/models", api(fake.models_list), methods=["GET"]),
        Route("/v1/models/{model_id:path}", api(fake.models_get), methods=["GET"]),
        Route("/v1/files", api(fake.files_create), methods=["POST"]),
        Route("/v1/files", api(fake.files_list), methods=["GET"]),
        Route("/v1/files/{file_id}", api(fake.files_get), methods=["GET"]),
        Route("/v1/files/{file_id}", api(fake.files_delete), methods=["DELETE"]),
        Route("/v1/files/{file_id}/content", api(fake.files_content), methods=["GET"]),
        Route("/v1/vector_stores", api(fake.vector_stores_create), methods=["POST"]),
        Route("/v1/vector_stores", api(fake.vector_stores_list), methods=["GET"]),
        Route(vs, api(fake.vector_stores_get), methods=["GET"]),
        Route(vs, api(fake.vector_stores_update), methods=["POST"]),
        Route(vs, api(fake.vector_stores_delete), methods=["DELETE"]),
        Route(vs + "/search", api(fake.vector_stores_search), methods=["POST"]),
        Route(vs + "/files", api(fake.vs_files_create), methods=["POST"]),
        Route(vs + "/files", api(fake.vs_files_list), methods=["GET"]),
        Route(vs + "/files/{file_id}", api(fake.vs_files_get), methods=["GET"]),
        Route(vs + "/files/{file_id}", api(fake.vs_files_update), methods=["POST"]),
        Route(vs + "/files/{file_id}", api(fake.vs_files_delete), methods=["DELETE"]),
        Route(vs + "/files/{file_id}/content", api(fake.vs_files_content), methods=["GET"]),
        Route(vs + "/file_batches", api(fake.batches_create), methods=["POST"]),
        Route(vs + "/file_batches/{batch_id}", api(fake.batches_get), methods=["GET"]),
        Route(vs + "/file_batches/{batch_id}/cancel", api(fake.batches_cancel), methods=["POST"]),
        Route(vs + "/file_batches/{batch_id}/files", api(fake.batches_files), methods=["GET"]),
        Route("/_fake/health", fake.health, methods=["GET"]),
        Route("/_fake/requests", fake.control_requests, methods=["GET", "DELETE"]),
        Route("/_fake/faults", fake.control_faults, methods=["GET", "POST", "DELETE"]),
        Route("/_fake/reply", fake.control_reply, methods=["POST", "DELETE"]),
        Route("/_fake/config", fake.control_config, methods=["GET", "POST"]),
        Route("/_fake/reset", fake.control_reset, methods=["POST"]),
        Route("/_fake/webhooks/send", fake.control_webhook_send, methods=["POST"]),
        Route("/_fake/webhooks", fake.control_webhooks, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # A fresh event per serving loop: an Event binds to the loop that first waits on it.
        state.stopping = asyncio.Event()
        fake._http_lock = asyncio.Lock()
        try:
            yield
        finally:
            await fake.aclose()

    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error}, lifespan=lifespan)
    app.state.fake = state
    return app
