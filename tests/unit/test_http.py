"""The shared HTTP layer: error envelopes, security headers, request and correlation ids, body limit."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from mangum import Mangum
from pydantic import BaseModel
from starlette.responses import PlainTextResponse

from chatbot import http
from chatbot.errors import Conflict, NotFound, RateLimited
from chatbot.observability import get_logger
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture

LIMIT = 2048


class Payload(BaseModel):
    name: str
    count: int


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/conflict")
    def conflict() -> None:
        raise Conflict("Agent changed concurrently", details={"current_version": 3})

    @app.get("/missing")
    def missing() -> None:
        raise NotFound("Agent not found")

    @app.get("/limited")
    def limited() -> None:
        raise RateLimited(retry_after=17)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    @app.post("/payload")
    def payload(body: Payload) -> dict[str, int]:
        return {"count": body.count}

    @app.post("/echo-size")
    async def echo_size(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/whoami")
    def whoami(request: Request, ip: http.SourceIpDep, rid: http.RequestIdDep) -> dict[str, object]:
        keys = get_logger("test").thread_safe_get_current_keys()
        return {
            "ip": ip,
            "request_id": rid,
            "log_keys": {k: keys.get(k) for k in ("request_id", "correlation_id")},
        }

    @app.get("/stream-headers")
    def own_headers() -> PlainTextResponse:
        return PlainTextResponse("x", headers={"Cache-Control": "no-cache"})

    @app.get("/principal")
    def principal(who: http.PrincipalDep) -> dict[str, str]:
        return {"id": who.id}

    http.install(app, service="test", max_body_bytes=LIMIT)
    return app


@pytest.fixture(scope="module")
def client():
    with TestClient(_app()) as c:
        yield c


def _v2_event(path: str, *, headers: dict[str, str] | None = None, method: str = "GET") -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "api.example.com", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "req-from-gateway",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2025:10:00:00 +0000",
            "timeEpoch": 1764064800000,
        },
        "isBase64Encoded": False,
    }


class _Context:
    function_name = "test"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id = "lambda-request"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


# -- error mapping ------------------------------------------------------------------------------------------
def test_chatbot_error_maps_to_envelope(client):
    response = client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "error": {
            "message": "Agent changed concurrently",
            "code": "conflict",
            "status": 409,
            "details": {"current_version": 3},
        }
    }
    assert client.get("/missing").json() == {
        "error": {"message": "Agent not found", "code": "not_found", "status": 404}
    }


def test_rate_limited_sets_retry_after(client):
    response = client.get("/limited")
    assert response.status_code == 429 and response.headers["Retry-After"] == "17"
    assert response.json()["error"]["code"] == "rate_limited"


def test_validation_error_is_422_without_input(client):
    response = client.post("/payload", json={"name": "Bearer sk-very-secret-value-123456", "count": "many"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["status"] == 422
    assert error["details"] == [
        {"loc": ["body", "count"], "msg": error["details"][0]["msg"], "type": "int_parsing"}
    ]
    assert "sk-very-secret" not in response.text and "many" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nowhere", 404, "not_found"), ("DELETE", "/conflict", 405, "method_not_allowed")],
)
def test_routing_errors_use_the_envelope(client, method, path, status, code):
    response = client.request(method, path)
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_unhandled_error_is_generic_500_and_logged(client, caplog):
    caplog.set_level(logging.ERROR)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {
        "error": {"message": "Internal server error", "code": "internal_error", "status": 500}
    }
    assert "hunter2" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff" and response.headers["x-request-id"]
    record = next(r for r in caplog.records if getattr(r, "event", None) == "unhandled_error")
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)


# -- headers and ids ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/missing", "/payload", "/whoami", "/nowhere"])
def test_security_headers_on_every_response(client, path):
    headers = client.get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["strict-transport-security"].startswith("max-age=")
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_route_headers_win_over_defaults(client):
    assert client.get("/stream-headers").headers["cache-control"] == "no-cache"


def test_request_id_generated_and_source_ip_ignores_forwarded_for(client):
    response = client.get("/whoami", headers={"X-Forwarded-For": "1.2.3.4"})
    body = response.json()
    assert body["ip"] == "testclient"
    assert len(body["request_id"]) == 32 and response.headers["x-request-id"] == body["request_id"]
    assert body["log_keys"] == {"request_id": body["request_id"], "correlation_id": body["request_id"]}


def test_correlation_id_header_is_adopted_when_well_formed(client):
    body = client.get("/whoami", headers={"X-Correlation-Id": "job-42.retry_1"}).json()
    assert body["log_keys"]["correlation_id"] == "job-42.retry_1"
    body = client.get("/whoami", headers={"X-Correlation-Id": "bad value\nwith newline"}).json()
    assert body["log_keys"]["correlation_id"] == body["request_id"]


def test_lambda_event_gives_request_id_and_source_ip():
    handler = Mangum(_app(), lifespan="off")
    result = handler(_v2_event("/whoami", headers={"x-forwarded-for": "1.2.3.4"}), _Context())
    body = json.loads(result["body"])
    assert result["statusCode"] == 200
    assert body["ip"] == "203.0.113.9" and body["request_id"] == "req-from-gateway"
    assert result["headers"]["x-request-id"] == "req-from-gateway"


def test_source_ip_behind_the_web_adapter_comes_from_its_request_context_header(client, monkeypatch):
    context = json.dumps({"http": {"sourceIp": "198.51.100.7"}, "requestId": "r"})
    headers = {"x-amzn-request-context": context, "X-Forwarded-For": "1.2.3.4"}

    # Not behind the adapter: the header is the client's own and ignored
    assert client.get("/whoami", headers=headers).json()["ip"] == "testclient"

    monkeypatch.setenv("AWS_LWA_INVOKE_MODE", "response_stream")
    assert client.get("/whoami", headers=headers).json()["ip"] == "198.51.100.7"
    assert client.get("/whoami", headers={"x-amzn-request-context": "{not json"}).json()["ip"] == "testclient"


# -- body limit ---------------------------------------------------------------------------------------------
def test_body_within_limit_passes(client):
    assert client.post("/echo-size", content=b"x" * LIMIT).json() == {"size": LIMIT}


def test_body_over_declared_limit_is_413(client):
    response = client.post("/echo-size", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json()["error"] == {
        "message": "Request body too large",
        "code": "payload_too_large",
        "status": 413,
    }


def test_chunked_body_over_limit_is_413(client):
    def chunks():
        for _ in range(4):
            yield b"y" * 1024

    response = client.post("/echo-size", content=chunks())  # no Content-Length: counted as it arrives
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert client.post("/payload", content=chunks()).status_code == 413  # also where FastAPI reads the body


# -- dependencies -------------------------------------------------------------------------------------------
def test_principal_dependency_runs_the_admin_gate(admin_env):  # noqa: F811
    with TestClient(_app()) as client:
        ok = client.get("/principal", headers={"Authorization": f"Bearer {admin_env.admin_token}"})
        denied = client.get("/principal", headers={"Authorization": "Bearer wrong"})
    assert ok.status_code == 200 and ok.json() == {"id": "admin-token"}
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_credentials"
