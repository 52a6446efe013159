"""The fake OpenAI server, driven through the real openai SDK on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from infra.local.fake_openai import FakeOpenAI, new_webhook_secret, sign_webhook

ROOT = Path(__file__).resolve().parents[2]
USER = [{"role": "user", "content": "Hello there, fake model"}]
WEATHER_TOOL_CHAT = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
WEATHER_TOOL_RESPONSES = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(token_latency_ms=0, ingest_delay_s=0.1) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeOpenAI) -> Iterator[None]:
    fake.reset()
    yield
    fake.configure(token_latency_ms=0, webhook_url=None, webhook_secret=None)


@pytest.fixture(scope="module")
def client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test", base_url=fake.api_base, max_retries=0, timeout=5)


@pytest.fixture(scope="module")
def control(fake: FakeOpenAI) -> Iterator[httpx.Client]:
    """Plain HTTP to the fake (control API, raw requests); one client because building one is slow."""
    with httpx.Client(base_url=fake.base_url) as http:
        yield http


class _Receiver:
    """A webhook target on a free port that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append((body, {k.lower(): v for k, v in self.headers.items()}))
                receiver.event.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/openai"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    target = _Receiver()
    yield target
    target.close()


# --- chat completions --------------------------------------------------------------------


def test_chat_create_returns_deterministic_echo_with_usage(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)

    choice = completion.choices[0]
    assert choice.message.content == "Hello from fake OpenAI! You said: Hello there, fake model"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 10
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + 10


def test_chat_stream_concatenates_to_non_stream_text_and_reports_usage(client: openai.OpenAI) -> None:
    expected = client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices[0].message.content

    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 10


def test_chat_reply_marker_and_override_set_exact_text(
    fake: FakeOpenAI, client: openai.OpenAI, control: httpx.Client
) -> None:
    xss = "<script>alert('x')</script>"
    marked = [{"role": "user", "content": f"hi [[reply:{xss}]]"}]
    assert client.chat.completions.create(model="m", messages=marked).choices[0].message.content == xss

    fake.queue_replies("first")
    fake.set_reply("sticky")
    replies = [
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content for _ in "abc"
    ]
    assert replies == ["first", "sticky", "sticky"]

    control.delete("/_fake/reply")
    control.post("/_fake/reply", json={"replies": ["via http"]})
    assert client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "via http"


def test_chat_tool_trigger_returns_tool_calls_then_answers_tool_result(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": 'weather? [[tool:get_weather {"city": "Paris"}]]'}]

    completion = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL_CHAT])
    streamed = list(
        client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL_CHAT], stream=True)
    )

    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})
    deltas = [tc for c in streamed for tc in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id.startswith("call_")
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert streamed[-1].choices[0].finish_reason == "tool_calls"

    messages += [
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    follow_up = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER_TOOL_CHAT])
    assert follow_up.choices[0].message.content == "Tool result: sunny"


# --- responses ---------------------------------------------------------------------------


def test_responses_create_returns_completed_message(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4.1-mini", input=USER)

    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output[0].type == "message"
    assert response.output_text == "Hello from fake OpenAI! You said: Hello there, fake model"
    assert response.usage is not None and response.usage.output_tokens == 10
    assert client.responses.retrieve(response.id).id == response.id


def test_responses_stream_yields_typed_events_in_order(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="gpt-4.1-mini", input="Hello there, fake model", stream=True))

    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if isinstance(e, openai.types.responses.ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == "Hello from fake OpenAI! You said: Hello there, fake model"
    assert events[0].response.status == "in_progress"
    completed = events[-1].response
    assert completed.status == "completed" and completed.usage.output_tokens == len(deltas)
    assert completed.output_text == events[-4].text


def test_responses_stream_helper_accumulates_function_call(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="m", input='[[tool:get_weather {"city":"Oslo"}]]', tools=[WEATHER_TOOL_RESPONSES]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    item = final.output[0]
    assert item.type == "function_call" and item.name == "get_weather"
    assert json.loads(item.arguments) == {"city": "Oslo"}

    answer = client.responses.create(
        model="m",
        previous_response_id=final.id,
        input=[{"type": "function_call_output", "call_id": item.call_id, "output": "rainy"}],
        tools=[WEATHER_TOOL_RESPONSES],
    )
    assert answer.output_text == "Tool result: rainy"


def test_responses_rejects_missing_prompt_and_unsupported_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="m", input="hi", prompt={"id": "pmpt_missing_123"})
    with pytest.raises(openai.BadRequestError) as unsupported:
        client.responses.create(model="unsupported-model", input="hi")

    assert missing.value.body["param"] == "prompt"
    assert unsupported.value.body == {
        "message": "The requested model 'unsupported-model' does not exist.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert client.responses.create(model="m", input="hi", prompt={"id": "pmpt_ok"}).status == "completed"


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]

    assert "gpt-4o-mini" in ids
    assert client.models.retrieve("gpt-4.1-mini").id == "gpt-4.1-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-0")


def test_request_without_bearer_token_gets_401_in_openai_shape(control: httpx.Client) -> None:
    response = control.get("/v1/models")

    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


# --- files and vector stores -------------------------------------------------------------


def test_files_upload_list_read_and_delete(client: openai.OpenAI) -> None:
    uploaded = client.files.create(
        file=("notes.txt", b"line one\r\nline two\n\x00\xff"), purpose="assistants"
    )
    other = client.files.create(file=("img.png", b"png"), purpose="vision")

    assert (uploaded.filename, uploaded.bytes, uploaded.status) == ("notes.txt", 21, "processed")
    assert [f.id for f in client.files.list(purpose="assistants")] == [uploaded.id]
    assert {f.id for f in client.files.list()} == {uploaded.id, other.id}
    assert client.files.content(uploaded.id).content == b"line one\r\nline two\n\x00\xff"
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_vector_store_file_ingestion_completes_or_fails(client: openai.OpenAI) -> None:
    good = client.files.create(file=("guide.txt", b"fake knowledge"), purpose="assistants")
    bad = client.files.create(file=("will-fail.pdf", b"%PDF"), purpose="assistants")
    store = client.vector_stores.create(name="kb")

    attached = client.vector_stores.files.create(vector_store_id=store.id, file_id=good.id)
    assert attached.status == "in_progress"
    assert client.vector_stores.retrieve(store.id).file_counts.in_progress == 1
    done = client.vector_stores.files.poll(good.id, vector_store_id=store.id)
    failed = client.vector_stores.files.create_and_poll(vector_store_id=store.id, file_id=bad.id)

    assert (done.status, done.usage_bytes) == ("completed", len(b"fake knowledge"))
    assert failed.status == "failed" and failed.last_error is not None
    counts = client.vector_stores.retrieve(store.id).file_counts
    assert (counts.completed, counts.failed, counts.total) == (1, 1, 2)
    assert [f.id for f in client.vector_stores.files.list(store.id, filter="failed")] == [bad.id]
    assert client.vector_stores.files.delete(bad.id, vector_store_id=store.id).deleted is True
    assert client.vector_stores.update(store.id, name="kb2").name == "kb2"
    assert client.vector_stores.delete(store.id).deleted is True


# --- faults ------------------------------------------------------------------------------


def test_fault_429_raises_rate_limit_error_with_retry_after(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="m", messages=USER, extra_headers={"x-fake-fault": "429"})

    assert raised.value.response.headers["retry-after"] == "1"
    assert raised.value.response.headers["retry-after-ms"] == "50"
    assert raised.value.body["code"] == "rate_limit_exceeded"


def test_fault_marker_500_raises_internal_server_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        client.responses.create(model="m", input="hello [[fault:500]]")

    assert raised.value.status_code == 500


def test_fault_timeout_raises_api_timeout_error_quickly(client: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.3).chat.completions.create(
            model="m", messages=USER, extra_headers={"x-fake-fault": "timeout"}
        )

    assert time.monotonic() - started < 2


def test_fault_disconnect_breaks_stream_mid_way(client: openai.OpenAI) -> None:
    received: list[str] = []
    stream = client.chat.completions.create(
        model="m", messages=USER, stream=True, extra_headers={"x-fake-fault": "disconnect:3"}
    )

    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")

    assert received == ["", "Hello", " from", " fake"]


def test_fault_error_event_ends_streams_with_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIError):
        list(
            client.chat.completions.create(
                model="m", messages=USER, stream=True, extra_headers={"x-fake-fault": "error_event"}
            )
        )
    events = list(
        client.responses.create(
            model="m", input="hi", stream=True, extra_headers={"x-fake-fault": "error_event"}
        )
    )

    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-1].response.error.code == "server_error"


def test_queued_faults_are_consumed_in_order_per_path(
    fake: FakeOpenAI, client: openai.OpenAI, control: httpx.Client
) -> None:
    control.post(
        "/_fake/faults",
        json={"faults": ["429", "none", "503"], "path": "/v1/chat/completions"},
    ).raise_for_status()

    client.models.list()  # another path: does not consume
    outcomes = []
    for _ in range(4):
        try:
            client.chat.completions.create(model="m", messages=USER)
            outcomes.append("ok")
        except openai.APIStatusError as exc:
            outcomes.append(exc.status_code)

    assert outcomes == [429, "ok", 503, "ok"]
    assert [r["fault"] for r in fake.requests_to("/v1/chat/completions")] == ["429", None, "503", None]


def test_sdk_retry_after_429_succeeds_quickly(fake: FakeOpenAI) -> None:
    fake.queue_faults("429", "429")
    client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base, max_retries=2)

    started = time.monotonic()
    completion = client.chat.completions.create(model="m", messages=USER)

    assert completion.choices[0].finish_reason == "stop"
    assert len(fake.requests) == 3
    assert time.monotonic() - started < 1


def test_server_stop_ends_a_hanging_request() -> None:
    server = FakeOpenAI()
    server.start()
    client = openai.OpenAI(api_key="sk-test", base_url=server.api_base, max_retries=0, timeout=30)
    errors: list[Exception] = []

    def call() -> None:
        try:
            client.chat.completions.create(
                model="m", messages=USER, extra_headers={"x-fake-fault": "timeout"}
            )
        except openai.APIError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    caller.join(5)

    assert time.monotonic() - started < 3
    assert not caller.is_alive() and errors


def test_token_latency_paces_stream(client: openai.OpenAI) -> None:
    started = time.monotonic()
    chunks = list(
        client.chat.completions.create(
            model="m", messages=USER, stream=True, extra_headers={"x-fake-latency-ms": "20"}
        )
    )

    assert len(chunks) == 12  # role chunk, 10 tokens, finish chunk
    assert time.monotonic() - started >= 10 * 0.02


# --- recording ---------------------------------------------------------------------------


def test_requests_are_recorded_without_authorization(
    fake: FakeOpenAI, client: openai.OpenAI, control: httpx.Client
) -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=USER, extra_headers={"x-trace": "t1"})

    recorded = control.get("/_fake/requests").json()["requests"]
    assert len(recorded) == 1
    entry = recorded[0]
    assert (entry["method"], entry["path"]) == ("POST", "/v1/chat/completions")
    assert entry["body"]["messages"] == USER
    assert entry["headers"]["x-trace"] == "t1"
    assert "authorization" not in entry["headers"]
    control.delete("/_fake/requests")
    assert fake.requests == []


# --- webhooks ----------------------------------------------------------------------------


def test_signed_webhook_is_accepted_by_sdk_and_tampering_rejected() -> None:
    secret = new_webhook_secret()
    body = json.dumps(
        {
            "id": "evt_1",
            "object": "event",
            "created_at": 1,
            "type": "response.completed",
            "data": {"id": "r1"},
        }
    )
    headers = sign_webhook(secret, body.encode(), "evt_1", int(time.time()))
    verifier = openai.OpenAI(api_key="x", webhook_secret=secret)

    event = verifier.webhooks.unwrap(body, headers)

    assert event.type == "response.completed"
    with pytest.raises(openai.InvalidWebhookSignatureError):
        verifier.webhooks.unwrap(body.replace("r1", "r2"), headers)


def test_webhook_send_endpoint_delivers_signed_event(control: httpx.Client, receiver: _Receiver) -> None:
    secret = new_webhook_secret()

    answer = control.post(
        "/_fake/webhooks/send",
        json={"url": receiver.url, "type": "response.completed", "data": {"id": "resp_1"}, "secret": secret},
    )

    assert answer.status_code == 200 and answer.json()["status"] == 204
    body, headers = receiver.received[0]
    event = openai.OpenAI(api_key="x", webhook_secret=secret).webhooks.unwrap(body, headers)
    assert event.id == headers["webhook-id"] and event.data.id == "resp_1"


def test_ingestion_result_is_announced_by_webhook(
    fake: FakeOpenAI, client: openai.OpenAI, receiver: _Receiver
) -> None:
    secret = new_webhook_secret()
    fake.configure(webhook_url=receiver.url, webhook_secret=secret)
    file = client.files.create(file=("doc.txt", b"x"), purpose="assistants")
    store = client.vector_stores.create(name="kb", file_ids=[file.id])

    assert receiver.event.wait(3)
    body, headers = receiver.received[0]
    event = json.loads(body)
    openai.OpenAI(api_key="x", webhook_secret=secret).webhooks.verify_signature(body, headers)
    assert event["type"] == "vector_store.file.completed"
    assert (event["data"]["vector_store_id"], event["data"]["file_id"]) == (store.id, file.id)


# --- command line ------------------------------------------------------------------------


def test_cli_serves_until_stdin_closes() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.local.fake_openai", "--port", "0", "--watch-stdin"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        models = httpx.get(ready["base_url"] + "/v1/models", headers={"authorization": "Bearer k"})
        assert ready["event"] == "fake_openai_ready" and models.status_code == 200
        proc.stdin.close()
        assert proc.wait(5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
