"""The admin action table: every admin action declared once, served as a REST route and as a legacy action.

An `Action` has the original's name (`list_users`), its HTTP method(s), a REST path (`/admin/users/{id}`),
an access rule, pydantic models for its parameters (path + query; the legacy form reads the same names from
the query string: `id`, `user_id`, `file_id`, ...) and its JSON body, a response model, and the function that
calls the service. `ActionTable.mount(app)` registers each action's REST route plus `/admin-api.php?action=`
and `/admin-api.php/<action>`; both reach `ActionTable.serve`, which does, for every request:

    rate limit (source IP) → authenticate (failures audited `auth.failed`, logged `auth_failed`)
    → rate limit (credential) → permission → validate → call → audit (mutating actions) → log `admin_request`

Success is `{"data": ...}` (`{"data": [...], "next_cursor": ...}` for paged lists), status 200 or the
action's (201 for creates); errors are `chatbot.errors` exceptions mapped by `chatbot.http`.
`ActionTable.openapi()` builds the OpenAPI document from the same table.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from pydantic_core import to_jsonable_python
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from chatbot import safe_json
from chatbot.config import Settings, get_settings
from chatbot.dal.base import storable_number
from chatbot.errors import BadRequest, ChatbotError, Forbidden, MethodNotAllowed, ValidationFailed
from chatbot.http import request_id, source_ip, validation_details
from chatbot.models.auth import Permission, Principal
from chatbot.observability import get_logger, log_event
from chatbot.services.audit import AuditService
from chatbot.services.auth import AccessGuard, RequestInfo

Resource = Literal["agent", "prompt", "vector_store", "file", "job", "user", "api_key", "audit", "system"]
T = TypeVar("T")
Handler = Callable[..., Any]

LEGACY_PATHS = ("/admin-api.php", "/admin-api.php/{legacy_action}")
LEGACY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# -- what an action declares --------------------------------------------------------------------------------
@dataclass
class ActionContext:
    """What a handler gets besides its inputs. A handler may set `resource_id` for the audit entry when it
    is neither the `id` parameter nor the `id` of the result (the default)."""

    principal: Principal
    settings: Settings
    request_id: str
    source_ip: str
    resource_id: str | None = None
    # The request's If-Match header (optimistic concurrency on updates and deletes), unparsed.
    if_match: str | None = None


SubjectOf = Callable[[ActionContext, Any, Any], "str | None"]


@dataclass(frozen=True)
class Access:
    """`permission`, or — when `subject` is given — "self or `permission`": callers without the permission
    may still act when `subject(ctx, params, body)` is their own user id (None means the caller)."""

    permission: Permission
    subject: SubjectOf | None = None

    def describe(self) -> str:
        return f"self or {self.permission}" if self.subject else self.permission


def requires(permission: Permission) -> Access:
    return Access(permission)


def self_or(permission: Permission, subject: SubjectOf) -> Access:
    return Access(permission, subject)


@dataclass(frozen=True)
class Paged(Generic[T]):
    """A page of a list: served as `{"data": items, "next_cursor": cursor}`."""

    items: Sequence[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Result:
    """Data with a status other than the action's usual one (e.g. health answering 503)."""

    data: Any
    status_code: int


@dataclass(frozen=True)
class Action:
    name: str
    methods: tuple[str, ...]
    path: str
    access: Access
    resource: Resource
    handler: Handler
    params: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    paged: bool = False
    status_code: int = 200
    audit: str | None = None  # the audit action (e.g. "user.create"); set for every mutating action
    errors: tuple[int, ...] = ()  # statuses beyond the usual ones, for the OpenAPI document
    # Methods the original also accepted, served on the legacy routes only: e.g. `delete_agent` is
    # `DELETE /admin/agents/{id}` in REST, and POST on `/admin-api.php?action=delete_agent` as before.
    legacy_methods: tuple[str, ...] = ()
    # Set when the handler answers with a Response of another type than the JSON envelope (e.g. a
    # `text/event-stream` StreamingResponse, or Prometheus text); the OpenAPI document says so.
    media_type: str | None = None

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.handler) or self.name.replace("_", " ").capitalize()).split("\n", 1)[0]

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        rest = doc.split("\n", 1)[1].strip() if "\n" in doc else ""
        methods = ", ".join(self.methods + self.legacy_methods)
        legacy = f"Legacy: `/admin-api.php?action={self.name}` ({methods})."
        return "\n\n".join(p for p in (rest, f"Permission: `{self.access.describe()}`.", legacy) if p)


# -- the table ----------------------------------------------------------------------------------------------
class ActionTable:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def action(
        self,
        name: str,
        method: str | tuple[str, ...],
        path: str,
        *,
        access: Access,
        resource: Resource,
        params: type[BaseModel] | None = None,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        paged: bool = False,
        status_code: int = 200,
        audit: str | None = None,
        errors: tuple[int, ...] = (),
        legacy_methods: tuple[str, ...] = (),
        media_type: str | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare the decorated `handler(ctx, params, body)` as action `name` (see the package docstring)."""
        methods = (method,) if isinstance(method, str) else tuple(method)
        if methods != ("GET",) and audit is None:
            raise ValueError(f"action {name}: a mutating action needs an audit name")

        def register(handler: Handler) -> Handler:
            if name in self._actions:
                raise ValueError(f"action {name} is declared twice")
            self._actions[name] = Action(
                name=name,
                methods=methods,
                path=path,
                access=access,
                resource=resource,
                handler=handler,
                params=params,
                body=body,
                response=response,
                paged=paged,
                status_code=status_code,
                audit=audit,
                errors=errors,
                legacy_methods=legacy_methods,
                media_type=media_type,
            )
            return handler

        return register

    def __iter__(self) -> Iterator[Action]:
        return iter(self._actions.values())

    def get(self, name: str) -> Action | None:
        return self._actions.get(name)

    # -- serving --------------------------------------------------------------------------------------------
    def mount(self, app: FastAPI) -> None:
        for action in self:
            app.add_api_route(
                action.path,
                self._endpoint(action),
                methods=list(action.methods),
                name=action.name,
                include_in_schema=False,
            )
        for path in LEGACY_PATHS:
            app.add_api_route(
                path, self._endpoint(None), methods=list(LEGACY_METHODS), include_in_schema=False
            )

    def _endpoint(self, action: Action | None) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            body = b"" if request.method == "GET" else await request.body()
            # Services are synchronous (boto3): run them off the event loop so streams elsewhere keep flowing.
            return await run_in_threadpool(self.serve, request, action, body)

        endpoint.__name__ = action.name if action else "legacy_action"
        return endpoint

    def serve(self, request: Request, action: Action | None, body: bytes) -> Response:
        started = time.perf_counter()
        settings = get_settings()
        info = RequestInfo(
            authorization=request.headers.get("authorization"),
            source_ip=source_ip(request),
            request_id=request_id(request),
            path=request.url.path,
        )
        principal: Principal | None = None
        ctx: ActionContext | None = None
        params: BaseModel | None = None
        data: BaseModel | None = None
        status = 500
        try:
            principal = AccessGuard.for_admin(settings).admit(info)
            if action is None:
                action = self._legacy(request)
            if_match = request.headers.get("if-match")
            ctx = ActionContext(principal, settings, info.request_id or "", info.source_ip, if_match=if_match)
            subject_check = _check_permission(action, principal)
            params = _parse_params(action, request)
            data = _parse_body(action, body)
            if subject_check:
                target = action.access.subject(ctx, params, data)  # type: ignore[misc]
                if target is not None and target != principal.id:
                    raise Forbidden(f"Insufficient permissions: {action.access.permission} required")
            result = action.handler(ctx, params, data)
            response = _respond(action, result)
            status = response.status_code
            if action.audit:
                _audit(action, ctx, params, data, "success", result=result)
            return response
        except ChatbotError as exc:
            status = exc.status
            if action is not None and action.audit and ctx is not None:
                outcome = "denied" if isinstance(exc, Forbidden) else "failure"
                _audit(action, ctx, params, data, outcome, error=exc.code)
            raise
        finally:
            named = action or self._actions.get(_legacy_name(request) or "")
            log_event(
                get_logger("admin"),
                "admin_request",
                action=named.name if named else "unknown",
                resource=named.resource if named else "system",
                method=request.method,
                status=status,
                status_class=f"{status // 100}xx",
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                actor=principal.id if principal else None,
                auth_method=principal.auth_method if principal else None,
            )

    def _legacy(self, request: Request) -> Action:
        name = _legacy_name(request)
        if not name:
            raise BadRequest("Action is required", code="unknown_action")
        action = self._actions.get(name)
        if action is None:
            raise BadRequest(
                f"Unknown action: {name}" if _ACTION_NAME.match(name) else "Unknown action",
                code="unknown_action",
            )
        if request.method not in action.methods + action.legacy_methods:
            allowed = ", ".join(action.methods + action.legacy_methods)
            raise MethodNotAllowed(f"Method not allowed for {name}: use {allowed}")
        return action

    # -- documentation --------------------------------------------------------------------------------------
    def openapi(
        self, *, title: str, version: str, extra_paths: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []
        for action in self:
            for model, mode in (
                (action.params, "validation"),
                (action.body, "validation"),
                (action.response, "serialization"),
            ):
                if model is not None and (model, mode) not in models:
                    models.append((model, mode))  # type: ignore[arg-type]
        refs, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
        schemas: dict[str, Any] = dict(top.get("$defs", {}))
        schemas.update(_ERROR_SCHEMAS)
        paths: dict[str, Any] = {}
        for action in self:
            operation = _operation(action, refs, schemas)
            for method in action.methods:
                paths.setdefault(action.path, {})[method.lower()] = {
                    **operation,
                    "operationId": action.name
                    if len(action.methods) == 1
                    else f"{action.name}_{method.lower()}",
                }
        paths.update(self._legacy_paths(paths))
        paths.update(extra_paths or {})
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "The admin token, or an API key (`chatbot_...`) with the admin scope",
                    }
                },
            },
            "security": [{"bearerAuth": []}],
        }

    def _legacy_paths(self, operations: dict[str, Any]) -> dict[str, Any]:
        names = sorted(self._actions)
        action_param = {"schema": {"type": "string", "enum": names}, "required": True}
        ids = [
            {"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in ("id", "user_id", "file_id")
        ]
        doc = (
            "Compatibility with the original `admin-api.php`: runs the named action exactly as its REST "
            "route does (same permission, audit and responses). Ids come from the query string, bodies "
            "are JSON; 400 `unknown_action` for an unknown name, 405 when the method is not the action's."
        )
        # Any action's statuses: the legacy routes answer exactly what the named action's route answers.
        statuses = {int(s) for item in operations.values() for op in item.values() for s in op["responses"]}
        responses = {
            **{str(s): {"description": "The action's response"} for s in sorted(statuses) if s < 400},
            **_error_responses({s for s in statuses if s >= 400} | {400, 401, 403, 405, 429}),
        }
        out: dict[str, Any] = {}
        for path, where in ((LEGACY_PATHS[0], "query"), (LEGACY_PATHS[1], "path")):
            name = "action" if where == "query" else "legacy_action"
            params = [{"name": name, "in": where, **action_param}, *ids]
            out[path] = {
                m.lower(): {
                    "operationId": f"legacy_{'query' if where == 'query' else 'path'}_{m.lower()}",
                    "summary": "Run an admin action by name",
                    "description": doc,
                    "tags": ["legacy"],
                    "parameters": params,
                    "responses": responses,
                }
                for m in LEGACY_METHODS
            }
        return out


# -- the steps of serve -------------------------------------------------------------------------------------
def _legacy_name(request: Request) -> str | None:
    return request.path_params.get("legacy_action") or request.query_params.get("action")


def _check_permission(action: Action, principal: Principal) -> bool:
    """Check the permission; True when the "self" part of a self-or rule still has to be checked."""
    if principal.can(action.access.permission):
        return False
    if action.access.subject is None:
        raise Forbidden(f"Insufficient permissions: {action.access.permission} required")
    return True


def _parse_params(action: Action, request: Request) -> BaseModel | None:
    if action.params is None:
        return None
    raw: dict[str, Any] = dict(request.query_params.items())
    raw.pop("action", None)
    raw.update({k: v for k, v in request.path_params.items() if k != "legacy_action"})
    try:
        return action.params.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(details=_located("query", exc)) from None


def _parse_body(action: Action, body: bytes) -> BaseModel | None:
    if action.body is None:
        return None
    payload: Any = {}
    if body.strip():
        try:
            payload = safe_json.loads(body, parse_constant=_not_json)
        except ValueError:  # also deep nesting and unpaired surrogates
            raise BadRequest("Invalid JSON in request body", code="invalid_json") from None
    if not isinstance(payload, dict):
        raise ValidationFailed(
            "Request body must be a JSON object",
            details=[{"loc": ["body"], "msg": "Input should be an object", "type": "dict_type"}],
        )
    try:
        model = action.body.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(details=_located("body", exc)) from None
    # Values DynamoDB cannot store (1e-200, 40-digit integers, empty keys in free-form maps such as `meta`)
    # would fail the write, or worse be stored and then fail every read of the item, with a 500.
    unstorable = list(_unstorable(model.model_dump(), ["body"]))
    if unstorable:
        raise ValidationFailed(details=unstorable)
    return model


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # json.loads accepts NaN and Infinity by default


def _unstorable(value: Any, loc: list[Any]) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "":
                yield {"loc": loc, "msg": "Keys must not be empty", "type": "empty_key"}
            yield from _unstorable(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable(item, [*loc, index])
    elif isinstance(value, int | float) and not isinstance(value, bool) and not storable_number(value):
        yield {"loc": loc, "msg": "Number out of the storable range", "type": "number_range"}


def _located(where: str, exc: ValidationError) -> list[dict[str, Any]]:
    details = validation_details(exc.errors(include_url=False, include_input=False, include_context=False))
    return [{**d, "loc": [where, *d["loc"]]} for d in details]


def _respond(action: Action, result: Any) -> Response:
    if isinstance(result, Response):
        return result  # e.g. a stream
    status = action.status_code
    if isinstance(result, Result):
        status, result = result.status_code, result.data
    if action.paged:
        page: Paged[Any] = result
        body: dict[str, Any] = {
            "data": [_jsonable(action, i) for i in page.items],
            "next_cursor": page.next_cursor,
        }
    else:
        body = {"data": _jsonable(action, result)}
    return JSONResponse(body, status_code=status)


def _jsonable(action: Action, value: Any) -> Any:
    # A plain dict is passed through the response model, so nothing undeclared (a hash, a version) leaks.
    if action.response is not None and isinstance(value, dict):
        value = action.response.model_validate(value)
    return to_jsonable_python(value)


def _audit(
    action: Action,
    ctx: ActionContext,
    params: BaseModel | None,
    body: BaseModel | None,
    outcome: Literal["success", "failure", "denied"],
    *,
    result: Any = None,
    error: str | None = None,
) -> None:
    payload: dict[str, Any] = {}
    for model in (params, body):
        if model is not None:
            payload.update(model.model_dump(mode="json", exclude_none=True))
    if error:
        payload["error"] = error
    resource_id = ctx.resource_id or payload.get("id") or _id_of(result)
    AuditService.from_settings(ctx.settings).record_safely(
        action.audit or action.name,
        outcome=outcome,
        actor=ctx.principal,
        resource_type=action.resource,
        resource_id=str(resource_id) if resource_id else None,
        request_id=ctx.request_id,
        source_ip=ctx.source_ip,
        payload=payload,
    )


def _id_of(result: Any) -> Any:
    if isinstance(result, Result):
        result = result.data
    if isinstance(result, dict):
        return result.get("id")
    return getattr(result, "id", None)


# -- OpenAPI pieces -----------------------------------------------------------------------------------------
_ERROR_SCHEMAS: dict[str, Any] = {
    "ErrorEnvelope": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "code", "status"],
                "properties": {
                    "message": {"type": "string"},
                    "code": {"type": "string", "examples": ["forbidden"]},
                    "status": {"type": "integer"},
                    "details": {"description": "Validation errors: [{loc, msg, type}]"},
                },
            }
        },
    }
}
_ERROR_TEXT = {
    400: "Bad request (invalid JSON, unknown action, invalid cursor, ...)",
    401: "Missing, invalid, expired or revoked credentials",
    403: "The caller lacks the required permission",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict (duplicate, or changed concurrently)",
    413: "Request body too large",
    422: "Validation failed; `error.details` lists the problems",
    429: "Rate limited; retry after `Retry-After` seconds",
    500: "The operation failed (e.g. a token rotation step; the current token stays valid)",
    503: "A dependency is unavailable",
}


def _error_responses(statuses: set[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in sorted(statuses):
        response: dict[str, Any] = {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}
        out[str(status)] = response
    return out


def _operation(action: Action, refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    if action.params is not None:
        model = schemas[refs[(action.params, "validation")]["$ref"].rsplit("/", 1)[-1]]
        required = set(model.get("required", ()))
        for name, schema in model.get("properties", {}).items():
            in_path = "{" + name + "}" in action.path
            parameter = {
                "name": name,
                "in": "path" if in_path else "query",
                "required": in_path or name in required,
                "schema": schema,
            }
            if "description" in schema:
                parameter["description"] = schema["description"]
            parameters.append(parameter)
    data = refs[(action.response, "serialization")] if action.response is not None else {}
    if action.paged:
        envelope: dict[str, Any] = {
            "type": "object",
            "required": ["data"],
            "properties": {
                "data": {"type": "array", "items": data},
                "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
        }
    else:
        envelope = {"type": "object", "required": ["data"], "properties": {"data": data}}
    statuses = {401, 403, 429, *action.errors}
    if parameters or action.body is not None:
        statuses.add(422)
    if action.body is not None:
        statuses.add(400)  # invalid JSON
    if action.params is not None and "cursor" in action.params.model_fields:
        statuses.add(400)  # invalid cursor
    if "{" in action.path:
        statuses.add(404)
    content: dict[str, Any] = {"application/json": {"schema": envelope}}
    if action.media_type:
        content = {action.media_type.split(";")[0]: {"schema": {"type": "string"}}}
    operation: dict[str, Any] = {
        "summary": action.summary,
        "description": action.description,
        "tags": [action.resource],
        "x-permission": action.access.describe(),
        "x-legacy-action": action.name,
        "parameters": parameters,
        "responses": {
            str(action.status_code): {"description": "Success", "content": content},
            **_error_responses(statuses),
        },
    }
    if action.audit:
        operation["x-audit-action"] = action.audit
    if action.body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": refs[(action.body, "validation")]}},
        }
    return operation


# The table every action module adds to.
actions = ActionTable()
