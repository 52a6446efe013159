"""Hostile input over HTTP against the whole local stack: the chat routes (`/chat` GET and POST,
`/chat-unified.php`, `/v1/chat/completions`) and the admin API.

Oversized and chunked bodies, invalid JSON and UTF-8, deep nesting, wrong content types, control characters
and NUL, lone surrogates, path traversal and injection-looking ids and filters, header injection, huge and
negative numbers, wrong types. Each must get a clear 4xx in our error envelope (OpenAI's shape on `/v1`) —
or, where the input is merely odd rather than wrong, be neutralised (a normal answer) — never a 5xx, and
never hang: every request has a 10 s timeout. Afterwards nothing is corrupted: an agent is unchanged by
refused updates, and a conversation's history is exactly its valid turns.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.chat_support import chat_api_key, client, new_agent, new_ip, sent_messages

TIMEOUT = 10.0
DEEP = 100_000  # far past the JSON parser's recursion limit
OVER_LIMIT = 6 * 1024 * 1024 + 1  # the default MAX_REQUEST_BYTES, plus one
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def deep_json(depth: int = DEEP) -> bytes:
    return b'{"message":"hi","tools":' + b"[" * depth + b"]" * depth + b"}"


def deep_object(depth: int = DEEP) -> bytes:
    return b'{"name":"deep","meta":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def deep_tool(depth: int) -> bytes:
    """A tool whose JSON schema nests `depth` levels: parses, but past DynamoDB's 32 levels."""
    schema = b'{"a":' * depth + b"1" + b"}" * depth
    return (
        b'{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":%s}}}' % schema
    )


def assert_envelope(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A 4xx with `{"error": {"message","code","status"}}`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith(JSON)
    error = response.json()["error"]
    assert {"message", "code", "status"} <= set(error), error
    assert error["status"] == response.status_code
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["code"], str)
    return error  # type: ignore[no-any-return]


def assert_openai_error(response: httpx.Response, status: int | None = None) -> dict[str, Any]:
    """A 4xx with OpenAI's `{"error": {"message","type","param","code"}}`."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    if status is not None:
        assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error  # type: ignore[no-any-return]


def assert_not_5xx(response: httpx.Response) -> None:
    """Odd but harmless input: answered normally or refused cleanly, never a server error."""
    if response.status_code >= 400:
        assert_envelope(response)
    else:
        assert response.status_code == 200, response.text[:300]


@pytest.fixture
def http(local_stack: Any) -> Iterator[httpx.Client]:
    with client(local_stack, timeout=TIMEOUT) as c:
        yield c


_ADMIN_KEYS: dict[str, str] = {}  # per stack: one admin key for this module's tests


@pytest.fixture
def admin(local_stack: Any) -> Iterator[httpx.Client]:
    """An admin's API key of its own: its rate limit is not the admin token's, which other tests share."""
    if local_stack.base_url not in _ADMIN_KEYS:
        _ADMIN_KEYS[local_stack.base_url] = chat_api_key(("admin",))
    key = _ADMIN_KEYS[local_stack.base_url]
    with client(local_stack, timeout=TIMEOUT) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c


# -- /chat POST ----------------------------------------------------------------------------------------------
CHAT_POST_REFUSED = {
    "invalid_json": (b'{"message": "hi"', JSON, 400, "invalid_json"),
    "json_array": (b'["hi"]', JSON, 400, "invalid_json"),
    "json_string": (b'"hi"', JSON, 400, "invalid_json"),
    "deeply_nested": (deep_json(), JSON, 400, "invalid_json"),
    "nested_past_32": (
        b'{"message":"hi","stream":false,"tools":[%s]}' % deep_tool(40),
        JSON,
        400,
        "invalid_json",
    ),
    "invalid_utf8_json": (b'{"message":"caf\xc3\x28 \xff\xfe"}', JSON, 400, "invalid_json"),
    "invalid_utf8_form": (b"message=caf\xc3\x28&stream=false", FORM, 400, "invalid_form"),
    "lone_surrogate": (b'{"message":"hi \\ud800 there","stream":false}', JSON, 400, None),
    "multipart": (
        b"--x\r\nContent-Disposition: form-data; name=message\r\n\r\nhi\r\n--x--",
        "multipart/form-data; boundary=x",
        400,
        "unsupported_media",
    ),
    "xml": (b"<message>hi</message>", "application/xml", 400, "message_required"),
    "message_too_long": (json.dumps({"message": "a" * 4001}).encode(), JSON, 400, "message_too_long"),
    "message_5mb": (json.dumps({"message": "a" * 5_000_000}).encode(), JSON, 400, "message_too_long"),
    "message_list": (b'{"message":["hi"]}', JSON, 400, "invalid_message"),
    "message_object": (b'{"message":{"$ne":null}}', JSON, 400, "invalid_message"),
    "message_number": (b'{"message":1e999}', JSON, 400, "invalid_message"),
    "message_nan": (b'{"message":NaN}', JSON, 400, "invalid_message"),
    "message_bool": (b'{"message":true}', JSON, 400, "invalid_message"),
    "message_null": (b'{"message":null}', JSON, 400, "message_required"),
    "message_only_controls": (b'{"message":"\\t\\n\\r "}', JSON, 400, "message_empty"),
    "conversation_traversal": (b'{"message":"hi","conversation_id":"../../etc/passwd"}', JSON, 400, None),
    "conversation_nul": (b'{"message":"hi","conversation_id":"conv_\\u0000x"}', JSON, 400, None),
    "conversation_sql": (b'{"message":"hi","conversation_id":"c\' OR \'1\'=\'1"}', JSON, 400, None),
    "conversation_nosql": (b'{"message":"hi","conversation_id":{"$ne":null}}', JSON, 400, None),
    "conversation_huge": (
        json.dumps({"message": "hi", "conversation_id": "c" * 200_000}).encode(),
        JSON,
        400,
        None,
    ),
    "agent_nosql": (b'{"message":"hi","agent_id":{"$gt":""}}', JSON, 400, "invalid_agent_id"),
    "agent_list": (b'{"message":"hi","agent_id":["a","b"]}', JSON, 400, "invalid_agent_id"),
    "api_type_injection": (
        b'{"message":"hi","api_type":"chat; DROP TABLE agents"}',
        JSON,
        400,
        "invalid_api_type",
    ),
    "tools_string": (b'{"message":"hi","tools":"rm -rf /"}', JSON, 400, "invalid_tools"),
    "tools_object": (b'{"message":"hi","tools":{"type":"function"}}', JSON, 400, "invalid_tools"),
    "file_data_when_disabled": (
        b'{"message":"hi","file_data":[{"name":"../../x.txt","data":"AAAA"}]}',
        JSON,
        400,
        None,
    ),
}


@pytest.mark.parametrize("case", list(CHAT_POST_REFUSED), ids=list(CHAT_POST_REFUSED))
def test_chat_post_hostile_body_is_a_clean_400(http: httpx.Client, case: str) -> None:
    body, content_type, status, code = CHAT_POST_REFUSED[case]

    response = http.post("/chat", content=body, headers={"Content-Type": content_type})

    error = assert_envelope(response, status)
    if code is not None:
        assert error["code"] == code
    assert "Traceback" not in response.text


def test_chat_unified_php_refuses_the_same_way(http: httpx.Client) -> None:
    for case in ("invalid_json", "deeply_nested", "lone_surrogate", "nested_past_32"):
        body, content_type, status, _ = CHAT_POST_REFUSED[case]

        response = http.post("/chat-unified.php", content=body, headers={"Content-Type": content_type})

        assert_envelope(response, status)


CHAT_POST_NEUTRALISED = {
    "nul_and_controls": {"message": "hi\u0000 there\u0007\u001b[31m\u202e", "stream": False},
    "unicode": {"message": "héllo 你好 🦜 \u200b\ufeff مرحبا", "stream": False},
    "html_script": {"message": "<script>alert(1)</script><img src=x onerror=alert(1)>", "stream": False},
    "sql_message": {"message": "'; DROP TABLE conversations; --", "stream": False},
    "dynamo_expression": {"message": "#pk = :v OR attribute_exists(pk)", "stream": False},
    "unknown_agent_traversal": {"message": "hi", "agent_id": "../../admin", "stream": False},
    "unknown_fields": {"message": "hi", "pk": "CONV#other", "__proto__": {"x": 1}, "stream": False},
    "stream_weird_type": {"message": "hi", "stream": {"$ne": 1}},
    "huge_number_ids": {"message": "hi", "conversation_id": 10**30, "stream": False},
    "tools_junk_entries": {
        "message": "hi",
        "tools": [1, "x", None, {"type": ""}, {"no": "type"}],
        "stream": False,
    },
}


@pytest.mark.parametrize("case", list(CHAT_POST_NEUTRALISED), ids=list(CHAT_POST_NEUTRALISED))
def test_chat_post_odd_but_valid_body_is_answered_or_refused_cleanly(http: httpx.Client, case: str) -> None:
    response = http.post("/chat", json=CHAT_POST_NEUTRALISED[case])

    assert_not_5xx(response)
    if response.status_code == 200 and response.headers["content-type"].startswith(JSON):
        assert isinstance(response.json()["response"], str)


def test_chat_post_form_with_percent_encoded_invalid_utf8_is_neutralised(http: httpx.Client) -> None:
    response = http.post("/chat", content=b"message=%FF%FEhi&stream=false", headers={"Content-Type": FORM})

    assert response.status_code == 200, response.text
    assert "\ufffd" in response.json()["response"]  # replaced, not passed on as bytes


@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions", "/admin/agents"])
def test_oversized_body_is_413_before_it_is_read(http: httpx.Client, local_stack: Any, path: str) -> None:
    headers = {"Content-Type": JSON, **local_stack.admin_headers}

    declared = http.post(path, content=b"x" * OVER_LIMIT, headers=headers)

    assert declared.status_code == 413
    assert declared.json()["error"]["message"]


def test_oversized_chunked_body_without_length_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"x" * (1024 * 1024)

    response = http.post("/chat", content=chunks(), headers={"Content-Type": JSON})

    assert_envelope(response, 413)


# -- /chat GET (EventSource) ---------------------------------------------------------------------------------
CHAT_GET_REFUSED = {
    "no_message": ({}, "message_required"),
    "message_too_long": ({"message": "a" * 4001}, "message_too_long"),
    "conversation_traversal": ({"message": "hi", "conversation_id": "../../../etc/passwd"}, None),
    "conversation_encoded_traversal": ({"message": "hi", "conversation_id": "..%2F..%2Fx"}, None),
    "conversation_nul": ({"message": "hi", "conversation_id": "a\u0000b"}, None),
    "api_type_wrong": ({"message": "hi", "api_type": "' OR 1=1"}, "invalid_api_type"),
    "tools_invalid_json": ({"message": "hi", "tools": "[{"}, "invalid_tools"),
    "tools_deeply_nested": ({"message": "hi", "tools": "[" * 5000 + "]" * 5000}, "invalid_tools"),
    "tools_lone_surrogate": (
        {"message": "hi", "tools": '[{"type":"function","name":"\\udc80"}]'},
        "invalid_tools",
    ),
}


@pytest.mark.parametrize("case", list(CHAT_GET_REFUSED), ids=list(CHAT_GET_REFUSED))
def test_chat_get_hostile_query_is_a_clean_400_before_the_stream(http: httpx.Client, case: str) -> None:
    params, code = CHAT_GET_REFUSED[case]

    response = http.get("/chat", params=params)

    error = assert_envelope(response, 400)
    if code is not None:
        assert error["code"] == code


def test_chat_get_odd_query_is_streamed_normally(http: httpx.Client) -> None:
    response = http.get("/chat", params={"message": "hi\u0000\u0007 <script>x</script> %FF \ud7ff"})

    assert response.status_code == 200, response.text[:300]
    assert response.text.endswith("event: close\n\n") and '"type":"done"' in response.text


def test_chat_get_invalid_percent_encoding_is_neutralised(http: httpx.Client) -> None:
    response = http.get("/chat?message=%FF%FE%00hi&conversation_id=%C0%AF")

    assert_envelope(response, 400)  # the conversation id (invalid UTF-8 replaced) fails its pattern


# -- /v1/chat/completions ------------------------------------------------------------------------------------
@pytest.fixture
def v1(local_stack: Any) -> Iterator[tuple[httpx.Client, str]]:
    agent = new_agent(api_type="chat")
    key = chat_api_key(("chat",))
    with client(local_stack, timeout=TIMEOUT) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c, agent.id


def _completion(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_openai_api_hostile_bodies_get_openai_errors(v1: tuple[httpx.Client, str]) -> None:
    http, agent_id = v1
    raw_cases = {
        "invalid_json": b'{"model": ',
        "deeply_nested": b'{"model":"m","messages":' + b"[" * DEEP + b"]" * DEEP + b"}",
        "invalid_utf8": b'{"model":"\xff\xfe","messages":[]}',
        "nan": b'{"model":"m","messages":NaN}',
        "array": b"[1,2,3]",
        "empty": b"",
    }
    for name, body in raw_cases.items():
        response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": JSON})
        error = assert_openai_error(response, 400)
        assert error["type"] == "invalid_request_error", name

    json_cases = {
        "model_int": {"model": 5, "messages": [{"role": "user", "content": "hi"}]},
        "model_object": {"model": {"$ne": None}, "messages": [{"role": "user", "content": "hi"}]},
        "model_huge": _completion("m" * 100_000),
        "messages_string": {"model": agent_id, "messages": "hi"},
        "messages_empty": {"model": agent_id, "messages": []},
        "messages_too_many": {"model": agent_id, "messages": [{"role": "user", "content": "x"}] * 1001},
        "role_injected": {"model": agent_id, "messages": [{"role": "admin'--", "content": "hi"}]},
        "no_user_message": {"model": agent_id, "messages": [{"role": "system", "content": "hi"}]},
        "stream_object": _completion(agent_id, stream={"a": 1}),
        "tools_string": _completion(agent_id, tools="all"),
    }
    for body in json_cases.values():
        assert_openai_error(http.post("/v1/chat/completions", json=body), 400)

    for model in ("../../etc/passwd", "x' OR '1'='1", "AGENT#", "#name", "a\u0000b"):
        response = http.post("/v1/chat/completions", json=_completion(model))
        error = assert_openai_error(response, 404)
        assert error["code"] == "model_not_found"


def test_openai_api_lone_surrogate_is_refused_not_a_500(v1: tuple[httpx.Client, str]) -> None:
    http, agent_id = v1
    body = b'{"model":"%s","messages":[{"role":"user","content":"hi \\udc80"}]}' % agent_id.encode()

    response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": JSON})

    assert_openai_error(response, 400)


def test_openai_api_hostile_credentials_are_401(http: httpx.Client) -> None:
    for authorization in (
        b"Bearer ' OR '1'='1",
        b"Bearer chatbot_../../etc/passwd",
        b"Bearer " + b"A" * 8000,
        b"Basic YWRtaW46YWRtaW4=",
        b"Bearer \xc3\xa9\xff",
    ):
        response = http.post(
            "/v1/chat/completions", json=_completion("x"), headers={"Authorization": authorization}
        )
        error = assert_openai_error(response, 401)
        assert error["code"] == "invalid_api_key"
        assert authorization[7:].decode("latin-1") not in response.text


# -- admin ---------------------------------------------------------------------------------------------------
ADMIN_BODY_REFUSED = {
    "invalid_json": (b'{"name": ', 400),
    "deeply_nested_list": (b'{"name":"deep","tools":' + b"[" * DEEP + b"]" * DEEP + b"}", 400),
    "deeply_nested_object": (deep_object(), 400),
    "nested_past_32": (b'{"name":"deep","tools":[%s]}' % deep_tool(40), 400),
    "nested_under_parser_limit": (b'{"name":"deep","tools":[%s]}' % deep_tool(900), 400),
    "lone_surrogate_in_tools": (b'{"name":"s","tools":[{"type":"function","name":"\\udc80"}]}', 400),
    "lone_surrogate_in_name": (b'{"name":"a \\ud800"}', 400),
    "invalid_utf8": (b'{"name":"\xff\xfe"}', 400),
    "nan": (b'{"name":"n","temperature":NaN}', 400),
    "infinity_by_overflow": (b'{"name":"n","temperature":1e999}', 422),
    "array": (b'[{"name":"n"}]', 422),
    "name_wrong_type": (b'{"name":{"$ne":null}}', 422),
    "name_too_long": (json.dumps({"name": "n" * 100_000}).encode(), 422),
    "negative_tokens": (b'{"name":"n","max_output_tokens":-1}', 422),
    "huge_tokens": (b'{"name":"n","max_output_tokens":100000000000000000000000000000000000000000}', 422),
    "temperature_string": (b'{"name":"n","temperature":"hot"}', 422),
    "api_type_injection": (b'{"name":"n","api_type":"chat\\" OR \\"1"}', 422),
    "tools_not_list": (b'{"name":"n","tools":"all"}', 422),
    "vector_store_ids_huge": (json.dumps({"name": "n", "vector_store_ids": ["x"] * 101}).encode(), 422),
}


def test_admin_create_with_hostile_body_is_refused_and_creates_nothing(admin: httpx.Client) -> None:
    before = _agent_ids(admin)

    for case, (body, status) in ADMIN_BODY_REFUSED.items():
        response = admin.post("/admin/agents", content=body, headers={"Content-Type": JSON})

        assert response.status_code == status, (case, response.text[:300])
        assert_envelope(response, status)
    assert _agent_ids(admin) == before


def _agent_ids(admin: httpx.Client) -> set[str]:
    ids: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        body = admin.get("/admin/agents", params=params).json()
        ids |= {a["id"] for a in body["data"]}
        cursor = body.get("next_cursor")
        if not cursor:
            return ids


@pytest.mark.parametrize(
    "path",
    [
        "/admin/agents/..%2F..%2Fadmin%2Ftoken",
        "/admin/agents/%2e%2e",
        "/admin/agents/..;%2F",  # a trailing slash: redirected to the id without it, then 404
        "/admin/agents/x'%20OR%20'1'='1",
        "/admin/agents/%23pk",
        "/admin/agents/AGENT%23x",
        "/admin/agents/%FF%FE",
        "/admin/agents/%00",
        "/admin/jobs/..%2F..%2Fetc%2Fpasswd",
        "/admin/prompts/%2e%2e%2f%2e%2e",
        "/admin-api.php?action=get_agent&id=../../etc/passwd",
        "/admin-api.php?action=get_job&id=JOB%23x",
    ],
)
def test_admin_hostile_ids_are_404(admin: httpx.Client, path: str) -> None:
    response = admin.get(path, follow_redirects=True)

    assert_envelope(response, 404)


@pytest.mark.parametrize(
    "path",
    [
        "/admin-api.php?action=../../etc/passwd",
        "/admin-api.php?action=list_agents%00",
        "/admin-api.php?action=%3Cscript%3E",
        "/admin-api.php/%2e%2e%2fhealth",
    ],
)
def test_admin_hostile_action_names_are_400_without_echo(admin: httpx.Client, path: str) -> None:
    response = admin.get(path)

    error = assert_envelope(response)
    assert error["code"] in ("unknown_action", "not_found")
    assert "<script>" not in response.text and "passwd" not in response.text


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "-1"},
        {"limit": "0"},
        {"limit": "99999999999999999999999999"},
        {"limit": "1e999"},
        {"limit": "NaN"},
        {"api_type": "responses' OR '1'='1"},
        {"cursor": "../../etc/passwd"},
        {"cursor": "eyJwayI6IHsiJG5lIjogbnVsbH19"},  # base64 of {"pk": {"$ne": null}}
        {"cursor": "A" * 5000},
    ],
)
def test_admin_hostile_filters_are_refused(admin: httpx.Client, query: dict[str, str]) -> None:
    response = admin.get("/admin/agents", params=query)

    assert_envelope(response)
    assert response.status_code in (400, 422)


@pytest.mark.parametrize(
    "name", ["' OR '1'='1", "#name = :v", "AGENT#", ".*", "%", "\u0000", "a" * 255, "🦜\u202e"]
)
def test_admin_injection_looking_name_filter_matches_literally(admin: httpx.Client, name: str) -> None:
    response = admin.get("/admin/agents", params={"name": name})

    assert response.status_code == 200, response.text[:300]
    assert all(name.casefold() in a["name"].casefold() for a in response.json()["data"])


@pytest.mark.parametrize(
    "path",
    [
        "/admin/jobs?status=queued%20OR%201%3D1",
        "/admin/jobs?limit=-5",
        "/admin/audit?limit=100000000000000000000",
    ],
)
def test_admin_job_and_audit_filters_refuse_junk(admin: httpx.Client, path: str) -> None:
    response = admin.get(path)

    assert_envelope(response)


def test_admin_job_type_filter_matches_literally(admin: httpx.Client) -> None:
    for job_type in ("#type", "file_ingest' OR '1'='1", "TYPE#diagnostic", "../diagnostic"):
        response = admin.get("/admin/jobs", params={"type": job_type})

        assert response.status_code == 200, response.text[:300]
        assert response.json()["data"] == []


def test_admin_refuses_foreign_origin_and_bad_credentials(http: httpx.Client, local_stack: Any) -> None:
    foreign = http.get(
        "/admin/agents", headers={**local_stack.admin_headers, "Origin": "https://evil.example"}
    )
    assert assert_envelope(foreign, 403)["code"] == "origin_not_allowed"

    for authorization in ("Bearer ' OR '1'='1", "Bearer ../../token", "Bearer " + "x" * 8000, "Basic Og=="):
        response = http.get("/admin/agents", headers={"Authorization": authorization})
        assert_envelope(response, 401)
        assert "x" * 50 not in response.text


def test_admin_hostile_content_types_are_refused(admin: httpx.Client) -> None:
    form = admin.post("/admin/agents", content=b"name=form-agent", headers={"Content-Type": FORM})
    multipart = admin.post("/admin/agents", files={"name": ("a.txt", b"x")})
    xml = admin.post("/admin/agents", content=b"<name>x</name>", headers={"Content-Type": "application/xml"})

    for response in (form, multipart, xml):
        assert_envelope(response, 400)


# -- header injection ----------------------------------------------------------------------------------------
def _raw_request(local_stack: Any, request: bytes) -> bytes:
    """Send bytes no HTTP client would produce; return the whole answer (the server closes)."""
    host, port = local_stack.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT, source_address=(new_ip(), 0)) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_header_injection_is_refused_or_inert(local_stack: Any) -> None:
    injected = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Correlation-Id: abc\r\nSet-Cookie: stolen=1\r\n\r\n"
    )
    answer = _raw_request(local_stack, injected)
    assert answer.startswith(b"HTTP/1.1 200")  # an extra header line is just a header...
    assert b"stolen" not in answer  # ...and never reflected

    bare_cr = (
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Correlation-Id: a\rSet-Cookie: b\r\n\r\n"
    )
    answer = _raw_request(local_stack, bare_cr)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500 or status == 200
    assert b"Set-Cookie: b" not in answer


def test_hostile_correlation_ids_are_not_echoed(http: httpx.Client) -> None:
    for value in ("<script>alert(1)</script>", "a" * 500, "x y", "../../etc", "abc%0d%0aSet-Cookie:x=1"):
        response = http.get("/health", headers={"X-Correlation-Id": value})

        assert response.status_code == 200
        assert value not in response.headers.get("x-request-id", "")
        assert "Set-Cookie" not in str(response.headers).replace("set-cookie", "")


def test_huge_header_is_answered_not_a_hang(http: httpx.Client) -> None:
    # The local gateway takes it (API Gateway refuses request headers over 10 KB on AWS); it is ignored.
    response = http.get("/health", headers={"X-Padding": "p" * 1_000_000})

    assert response.status_code == 200


def test_huge_query_string_is_refused(local_stack: Any) -> None:
    request = b"GET /chat?message=" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    answer = _raw_request(local_stack, request)

    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]


# -- no data corrupted ---------------------------------------------------------------------------------------
HOSTILE_UPDATES: list[tuple[bytes, dict[str, str]]] = [
    (b'{"name": ', {}),
    (deep_json(), {}),
    (deep_object(), {}),
    (b'{"name":"\xff"}', {}),
    (b'{"temperature":NaN}', {}),
    (b'{"temperature":1e999}', {}),
    (b'{"max_output_tokens":-1}', {}),
    (b'{"max_output_tokens":1000000000000000000000000000000}', {}),
    (b'{"name":null}', {}),
    (b'{"name":""}', {}),
    (b'{"name":{"$set":{"is_default":true}}}', {}),
    (b'{"tools":"all"}', {}),
    (b'{"version":"1 OR 1=1"}', {}),
    (b'{"version":-1}', {}),
    (b'{"version":999999,"name":"stolen","id":"other","pk":"AGENT#other"}', {}),
    (b'{"name":"stolen"}', {"If-Match": "' OR '1'='1"}),
    (b'{"name":"stolen"}', {"If-Match": "999999"}),
    (b"[]", {}),
    (b"name=stolen", {"Content-Type": FORM}),
]


def test_agent_unchanged_after_hostile_updates(admin: httpx.Client) -> None:
    created = admin.post(
        "/admin/agents", json={"name": f"hostile-{uuid.uuid4().hex[:10]}", "temperature": 0.5}
    )
    assert created.status_code == 201, created.text
    agent = created.json()["data"]
    path = f"/admin/agents/{agent['id']}"

    for body, headers in HOSTILE_UPDATES:
        for method in ("PATCH", "PUT"):
            response = admin.request(method, path, content=body, headers={"Content-Type": JSON, **headers})
            assert_envelope(response)
        legacy = admin.post(
            "/admin-api.php",
            params={"action": "update_agent", "id": agent["id"]},
            content=body,
            headers=headers,
        )
        assert_envelope(legacy)

    after = admin.get(path)
    assert after.status_code == 200
    assert after.json()["data"] == agent
    assert not any(a["name"] == "stolen" for a in admin.get("/admin/agents").json()["data"])


def test_conversation_history_intact_after_hostile_requests(local_stack: Any, http: httpx.Client) -> None:
    fake = local_stack.fake_openai
    conversation = f"conv_{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex[:8]
    fake.queue_replies(f"Reply one {tag}.", f"Reply two {tag}.")
    for n in ("one", "two"):
        ok = http.post(
            "/chat", json={"message": f"Q {n} {tag}", "conversation_id": conversation, "stream": False}
        )
        assert ok.status_code == 200, ok.text

    hostile: list[bytes] = [
        b'{"message":"x","conversation_id":"%s"' % conversation.encode(),  # truncated JSON
        b'{"message":"x","conversation_id":"%s","tools":%s}'
        % (conversation.encode(), b"[" * DEEP + b"]" * DEEP),
        json.dumps({"message": "a" * 5000, "conversation_id": conversation}).encode(),
        json.dumps({"message": ["x"], "conversation_id": conversation}).encode(),
        json.dumps({"message": "x", "conversation_id": conversation, "tools": "junk"}).encode(),
        json.dumps({"message": "x", "conversation_id": conversation + "/../other"}).encode(),
        b'{"message":"x \\ud800","conversation_id":"%s","stream":false}' % conversation.encode(),
        b'{"message":"x","conversation_id":"%s","file_data":"AAAA"}' % conversation.encode(),
    ]
    for body in hostile:
        assert_envelope(http.post("/chat", content=body, headers={"Content-Type": JSON}))
    assert_envelope(http.get("/chat", params={"message": "b" * 5000, "conversation_id": conversation}))

    last = http.post(
        "/chat", json={"message": f"Q three {tag}", "conversation_id": conversation, "stream": False}
    )
    assert last.status_code == 200, last.text

    third = [r for r in fake.requests_to("/v1/responses") if f"Q three {tag}" in str(r["body"])][-1]
    assert sent_messages(third)[1:] == [
        ("user", f"Q one {tag}"),
        ("assistant", f"Reply one {tag}."),
        ("user", f"Q two {tag}"),
        ("assistant", f"Reply two {tag}."),
        ("user", f"Q three {tag}"),
    ]
