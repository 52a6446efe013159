"""The local API Gateway: the template's HTTP API routes, the static pages, and a Lambda Invoke endpoint.

- A route whose function module has an ASGI `app` (chat, admin) gets the request as ASGI, so SSE streams
  token by token. The scope carries `aws.event` (an API Gateway v2 event without the body) and
  `aws.context`, as Mangum sets them on AWS, so an app reads the source IP and request id the same way
  in both places.
- Any other function (webhook) gets a real API Gateway HTTP API payload v2.0 event in a worker thread, and
  its result becomes the HTTP response by API Gateway's rules.
- CORS preflights are answered from the API's CorsConfiguration, as API Gateway does.
- `/widget/` and `/console/` serve web/widget and web/console (CloudFront and S3 on AWS); `/` redirects to
  the widget.
- Local-only helpers (never on AWS): `POST /2015-03-31/functions/{name}/invocations` is Lambda's Invoke API
  (point boto3's lambda client at the gateway), `POST /_local/schedules/{id}/fire` runs a schedule now, and
  `GET /_local/stack` describes the stack.
- Throttling (DefaultRouteSettings/RouteSettings) is not applied locally, so load tests measure the code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import mimetypes
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from infra.local.asgi_server import BackgroundServer, Message, Receive, Scope, Send, read_body
from infra.local.observability import invocation
from infra.local.provision import Route, Stack
from infra.local.runtime import FunctionNotFound, Runtime

log = logging.getLogger("infra.local.gateway")


ROOT = Path(__file__).resolve().parents[2]
STATIC_DIRS = {"widget": ROOT / "web" / "widget", "console": ROOT / "web" / "console"}
_TEXT_TYPES = re.compile(r"^(text/|application/(json|.*\+json|xml|.*\+xml|javascript|x-www-form-urlencoded))")
_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")
_FIRE_PATH = re.compile(r"^/_local/schedules/(?P<id>[^/]+)/fire/?$")


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str] | None  # None for $default
    literal_segments: int
    greedy: bool


def _compile(route: Route) -> _CompiledRoute:
    if route.path == "$default":
        return _CompiledRoute(route, None, -1, True)
    parts = []
    literal = 0
    greedy = False
    for segment in route.path.strip("/").split("/"):
        m = re.fullmatch(r"\{([^}+]+)(\+?)\}", segment)
        if m is None:
            parts.append(re.escape(segment))
            literal += 1
        elif m.group(2):
            parts.append(f"(?P<{_group(m.group(1))}>.+)")
            greedy = True
        else:
            parts.append(f"(?P<{_group(m.group(1))}>[^/]+)")
    return _CompiledRoute(route, re.compile("^/" + "/".join(parts) + "/?$"), literal, greedy)


def _group(name: str) -> str:
    return re.sub(r"\W", "_", name)


class Router:
    """API Gateway's route selection: the most specific path wins, then an exact method beats ANY."""

    def __init__(self, routes: list[Route]) -> None:
        compiled = [_compile(r) for r in routes]
        self._routes = sorted(
            compiled,
            key=lambda c: (
                c.route.path == "$default",
                c.greedy,
                -c.literal_segments,
                c.route.method == "ANY",
            ),
        )

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        method = method.upper()
        for c in self._routes:
            if c.route.method not in (method, "ANY"):
                continue
            if c.pattern is None:
                return c.route, {}
            m = c.pattern.match(path)
            if m is not None:
                names = [s[1:-1].rstrip("+") for s in re.findall(r"\{[^}]+\}", c.route.path)]
                values = dict(zip(names, m.groups(), strict=False))
                return c.route, {k: unquote(v) for k, v in values.items()}
        return None


# --- API Gateway v2 event and response --------------------------------------------------------------


def build_http_event(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None,
    source_ip: str,
    route_key: str,
    path_parameters: dict[str, str] | None = None,
    api_id: str = "local",
    account_id: str = "123456789012",
    stage: str = "$default",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload format 2.0 event, as API Gateway builds it."""
    merged: dict[str, str] = {}
    cookies: list[str] = []
    for raw_key, raw_value in headers:
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key == "cookie":
            cookies.extend(c.strip() for c in value.split(";") if c.strip())
            continue
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    now = time.time()
    request_id = request_id or _request_id()
    domain = merged.get("host", "localhost").split(":")[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": merged,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": route_key,
            "stage": stage,
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    if raw_query:
        params: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        content_type = merged.get("content-type", "")
        text = _as_text(body) if (not content_type or _TEXT_TYPES.match(content_type)) else None
        if text is None:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
        else:
            event["body"] = text
    return event


def _as_text(body: bytes) -> str | None:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _request_id() -> str:
    # API Gateway's request ids look like "JKJaXmPLvHcESHA="; any unique token serves locally.
    return base64.b64encode(uuid.uuid4().bytes[:10]).decode()


def http_response_from_result(result: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Turn a Lambda result into (status, headers, body) by API Gateway HTTP API v2's rules."""
    if isinstance(result, dict) and "statusCode" in result:
        status = int(result["statusCode"])
        headers: list[tuple[bytes, bytes]] = []
        for key, value in (result.get("headers") or {}).items():
            headers.append((str(key).lower().encode("latin-1"), str(value).encode("latin-1")))
        for key, values in (result.get("multiValueHeaders") or {}).items():
            for value in values:
                headers.append((str(key).lower().encode("latin-1"), str(value).encode("latin-1")))
        for cookie in result.get("cookies") or []:
            headers.append((b"set-cookie", str(cookie).encode("latin-1")))
        raw = result.get("body")
        if raw is None:
            body = b""
        elif result.get("isBase64Encoded"):
            body = base64.b64decode(raw)
        else:
            body = str(raw).encode()
        if not any(k == b"content-type" for k, _ in headers) and body:
            headers.append((b"content-type", b"application/json"))
        return status, headers, body
    # No statusCode: API Gateway assumes 200 and sends the result as JSON.
    body = (result if isinstance(result, str) else json.dumps(result)).encode()
    return 200, [(b"content-type", b"application/json")], body


# --- the ASGI app -------------------------------------------------------------------------------------


class Gateway:
    def __init__(
        self,
        stack: Stack,
        runtime: Runtime,
        *,
        static_dirs: dict[str, Path] | None = None,
        fire: Callable[[str], Any] | None = None,
    ) -> None:
        self.stack = stack
        self.runtime = runtime
        self.router = Router(stack.routes)
        self.static_dirs = {k: v.resolve() for k, v in (static_dirs or STATIC_DIRS).items()}
        self._fire = fire
        self.api_ids = {
            lid: res.physical_id
            for lid, res in stack.resources.items()
            if res.type == "AWS::ApiGatewayV2::Api"
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if path == "/":
                await _redirect(send, "/widget/")
                return
            first = path.strip("/").split("/", 1)[0]
            if first in self.static_dirs:
                await self._static(scope, send, first)
                return
            if path.startswith("/2015-03-31/functions/") or path.startswith("/_local/"):
                await self._local_api(scope, receive, send)
                return
            cors = self._cors_for(scope)
            if cors is not None and method == "OPTIONS" and _header(scope, b"access-control-request-method"):
                await self._preflight(scope, send, cors)
                return
            matched = self.router.match(method, path)
            if matched is None:
                await _json(
                    send, 404, {"error": {"message": "Not found", "code": "not_found", "status": 404}}
                )
                return
            route, params = matched
            if self.runtime.is_loaded(route.function):
                app = self._asgi_app(route.function)
            else:  # the first request imports the handler module: off the event loop
                app = await asyncio.to_thread(self._asgi_app, route.function)
            if app is not None:
                await self._asgi(scope, receive, send, route, params, app, cors)
            else:
                await self._lambda(scope, receive, send, route, params, cors)
        except Exception:
            log.exception("gateway error on %s %s", method, path)
            with contextlib.suppress(Exception):
                await _json(send, 500, {"message": "Internal Server Error"})

    def _asgi_app(self, function: str) -> Any:
        return self.runtime.asgi_app(function)

    # routes

    def _event_for(
        self, scope: Scope, route: Route, params: dict[str, str], body: bytes | None
    ) -> dict[str, Any]:
        client = scope.get("client") or ("127.0.0.1", 0)
        return build_http_event(
            method=scope["method"],
            path=scope["path"],
            raw_query=(scope.get("query_string") or b"").decode("latin-1"),
            headers=list(scope.get("headers") or []),
            body=body,
            source_ip=client[0],
            route_key=route.route_key,
            path_parameters=params or None,
            api_id=self.api_ids.get(route.api, "local"),
            account_id=self.stack.account_id,
        )

    async def _asgi(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        params: dict[str, str],
        app: Any,
        cors: dict[str, Any] | None,
    ) -> None:
        event = self._event_for(scope, route, params, None)
        child = dict(scope)
        child["aws.event"] = event
        child["aws.context"] = self.runtime.context(route.function)
        child.setdefault("root_path", "")
        with invocation(route.function):  # its log lines go through its log group's metric filters
            await app(child, receive, self._with_cors(send, scope, cors))

    async def _lambda(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        params: dict[str, str],
        cors: dict[str, Any] | None,
    ) -> None:
        body = await read_body(receive)
        event = self._event_for(scope, route, params, body)
        try:
            result = await asyncio.to_thread(self.runtime.invoke, route.function, event)
        except Exception:
            log.exception("%s failed", route.function)
            await _json(send, 500, {"message": "Internal Server Error"}, self._cors_headers(scope, cors))
            return
        status, headers, payload = http_response_from_result(result)
        await _respond(send, status, headers + self._cors_headers(scope, cors), payload)

    # CORS (API Gateway answers preflights and adds the headers to integration responses)

    def _cors_for(self, scope: Scope) -> dict[str, Any] | None:
        return next(iter(self.stack.api_cors.values()), None)

    def _cors_headers(self, scope: Scope, cors: dict[str, Any] | None) -> list[tuple[bytes, bytes]]:
        origin = _header(scope, b"origin")
        if cors is None or not origin:
            return []
        allowed = cors.get("allowOrigins") or []
        if "*" not in allowed and origin not in allowed:
            return []
        out = [(b"access-control-allow-origin", ("*" if "*" in allowed else origin).encode())]
        if cors.get("allowCredentials"):
            out = [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-allow-credentials", b"true"),
            ]
        if cors.get("exposeHeaders"):
            out.append((b"access-control-expose-headers", ",".join(cors["exposeHeaders"]).encode()))
        return out

    def _with_cors(self, send: Send, scope: Scope, cors: dict[str, Any] | None) -> Send:
        extra = self._cors_headers(scope, cors)
        if not extra:
            return send
        names = {k for k, _ in extra}

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": headers + extra}
            await send(message)

        return wrapped

    async def _preflight(self, scope: Scope, send: Send, cors: dict[str, Any]) -> None:
        headers = self._cors_headers(scope, cors)
        if headers:
            methods = cors.get("allowMethods") or ["*"]
            headers.append((b"access-control-allow-methods", ",".join(methods).encode()))
            requested = _header(scope, b"access-control-request-headers")
            allow_headers = cors.get("allowHeaders") or []
            if requested and allow_headers:
                headers.append((b"access-control-allow-headers", ",".join(allow_headers).encode()))
            if cors.get("maxAge") is not None:
                headers.append((b"access-control-max-age", str(cors["maxAge"]).encode()))
        await _respond(send, 204, headers, b"")

    # static pages

    async def _static(self, scope: Scope, send: Send, name: str) -> None:
        base = self.static_dirs[name]
        rest = scope["path"].strip("/").split("/", 1)
        if scope["path"].rstrip("/") == f"/{name}" and not scope["path"].endswith("/"):
            await _redirect(send, f"/{name}/")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _json(
                send,
                405,
                {"error": {"message": "Method not allowed", "code": "method_not_allowed", "status": 405}},
            )
            return
        relative = unquote(rest[1]) if len(rest) > 1 else ""
        target = (base / relative).resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_relative_to(base) or not target.is_file():
            await _json(send, 404, {"error": {"message": "Not found", "code": "not_found", "status": 404}})
            return
        data = await asyncio.to_thread(target.read_bytes)
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "application/json"):
            ctype += "; charset=utf-8"
        headers = [(b"content-type", ctype.encode()), (b"cache-control", b"no-cache")]
        await _respond(send, 200, headers, b"" if scope["method"] == "HEAD" else data, length=len(data))

    # local-only API

    async def _local_api(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        m = _INVOKE_PATH.match(path)
        if m and scope["method"] == "POST":
            await self._invoke_api(scope, receive, send, unquote(m.group("name")))
            return
        m = _FIRE_PATH.match(path)
        if m and scope["method"] == "POST" and self._fire is not None:
            schedule_id = unquote(m.group("id"))
            try:
                result = await asyncio.to_thread(self._fire, schedule_id)
            except KeyError:
                await _json(
                    send,
                    404,
                    {"error": {"message": f"no schedule {schedule_id}", "code": "not_found", "status": 404}},
                )
                return
            await _json(send, 200, {"data": result})
            return
        if path.rstrip("/") == "/_local/stack" and scope["method"] == "GET":
            await _json(send, 200, {"data": describe(self.stack)})
            return
        await _json(send, 404, {"error": {"message": "Not found", "code": "not_found", "status": 404}})

    async def _invoke_api(self, scope: Scope, receive: Receive, send: Send, name: str) -> None:
        """Lambda's Invoke API (RequestResponse and Event), so boto3's lambda client works locally."""
        body = await read_body(receive)
        try:
            spec = self.runtime.spec(name)
        except FunctionNotFound:
            headers = [(b"x-amzn-errortype", b"ResourceNotFoundException")]
            await _json(send, 404, {"Type": "User", "message": f"Function not found: {name}"}, headers)
            return
        try:
            event = json.loads(body) if body else {}
        except ValueError:
            headers = [(b"x-amzn-errortype", b"InvalidRequestContentException")]
            await _json(
                send, 400, {"Type": "User", "message": "Could not parse request body into json"}, headers
            )
            return
        context = self.runtime.context(spec.logical_id)
        request_id = [(b"x-amzn-requestid", context.aws_request_id.encode())]
        if _header(scope, b"x-amz-invocation-type") == "Event":
            threading.Thread(
                target=self._invoke_quietly, args=(spec.logical_id, event, context), daemon=True
            ).start()
            await _respond(send, 202, request_id, b"")
            return
        try:
            result = await asyncio.to_thread(self.runtime.invoke, spec.logical_id, event, context)
        except Exception as exc:  # noqa: BLE001 - reported to the caller the way Lambda reports it
            error = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_exception(exc)[-5:],
            }
            await _json(send, 200, error, [*request_id, (b"x-amz-function-error", b"Unhandled")])
            return
        await _json(send, 200, result, request_id)

    def _invoke_quietly(self, function: str, event: Any, context: Any) -> None:
        try:
            self.runtime.invoke(function, event, context)
        except Exception:
            log.exception("async invocation of %s failed", function)


def describe(stack: Stack) -> dict[str, Any]:
    """A JSON summary of the stack for `/_local/stack` and the tests."""
    return {
        "name": stack.name,
        "region": stack.region,
        "account_id": stack.account_id,
        "environment": stack.environment(),
        "functions": {
            lid: {"name": f.name, "arn": f.arn, "module": f.module, "events": f.events}
            for lid, f in stack.functions.items()
        },
        "routes": [{"route_key": r.route_key, "function": r.function} for r in stack.routes],
        "schedules": [
            {"id": s.logical_id, "expression": s.expression, "function": s.function} for s in stack.schedules
        ],
        "event_source_mappings": [
            {"id": m.logical_id, "function": m.function, "queue": m.queue, "batch_size": m.batch_size}
            for m in stack.event_source_mappings
        ],
        "resources": {
            lid: {"type": r.type, "physical_id": r.physical_id, "status": r.status}
            for lid, r in stack.resources.items()
        },
    }


# --- ASGI helpers -------------------------------------------------------------------------------------


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes, *, length: int | None = None
) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await _respond(
        send, status, [(b"content-type", b"application/json"), *(headers or [])], json.dumps(payload).encode()
    )


async def _redirect(send: Send, location: str) -> None:
    await _respond(send, 302, [(b"location", location.encode())], b"")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- server -------------------------------------------------------------------------------------------


class GatewayServer(BackgroundServer):
    """The gateway's uvicorn, from a background thread on a socket bound up front."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 3000) -> None:
        super().__init__(app, host, port, name="gateway")
