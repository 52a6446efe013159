"""Added latency of our chat path over calling the (fake) upstream directly with the same SDK.

Through the local gateway with the emulator, as `make run` serves them. For each request kind the upstream
receives the same payload both ways. Each sample runs every case once, in a new (seeded) random order, so
machine noise hits both ways alike and no case always follows the same one: right after one of our requests
the stack is warm, after a direct call it has idled, and idling costs on this kind of machine.

- time to first token: POST /chat (widget protocol, each time a new conversation id named by the client, so
  the server reads its history as for any later message) until the first `chunk` frame, vs the SDK's
  streamed `responses.create` until the first `response.output_text.delta`;
- whole reply: POST /chat with `stream: false` vs the SDK's `responses.create`;
- both again for a conversation's first message as the widget sends it (no conversation id: the server
  names it and reads no history);
- the first token of a conversation's fifth message (four turns stored, read and sent upstream), vs the
  SDK's streamed call with the same input;
- the OpenAI-compatible `/v1/chat/completions` through the same SDK (first token and whole reply), vs the
  SDK's `chat.completions.create` on the fake (this path also authenticates an API key: two more rounds of
  emulator calls).

Every measured request opens its own connection, both ways (a browser's EventSource does too), so neither
side profits from, or waits on, a previous request's connection. Targets (DESIGN, issue 4): p50 ≤ 5 ms
added to the first token and ≤ 10 ms added to a whole reply. Results are printed as a table and written to
`.local/bench/chat_latency.json`; `BENCH_ENFORCE=1` turns the targets into assertions (a loaded machine
makes p95 and even p50 noisy, so by default they are reported, not enforced).

    make bench PYTEST_ARGS="-k chat_latency"      # BENCH_N=300 for more samples
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# A few thousand requests: more than the suite's default per-test timeout.
pytestmark = pytest.mark.timeout(1800)
ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("BENCH_N", "150"))
WARMUP = 15
GAP_S = 0.01
TARGET_TTFT_MS = 5.0
TARGET_WHOLE_MS = 10.0
SYSTEM = "You are a helpful AI assistant."
MESSAGE = "Hello there"
EARLIER_TURNS = 4  # of the conversations whose fifth message is measured
QUESTION = "How do I reset my password? I tried the link in the email but it says it has expired."
ANSWER = (
    "Request a new link from the sign-in page: choose 'Forgot password', enter your email address and "
    "use the link within an hour. If it expires again, check that your device's clock is right, then "
    "contact support."
)


@pytest.fixture(scope="module")
def stack():
    from infra.local.harness import StackProcess

    # The per-IP limit (60/min) would stop a benchmark from one address after a second.
    with StackProcess(env={"CHAT_RATE_LIMIT": "100000000"}) as proc:
        yield proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _p50(call: Callable[[], Any], n: int = 60, *, pause_s: float = 0.0) -> float:
    times = []
    for _ in range(n):
        time.sleep(pause_s)
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times[5:]), 2)


def _conversations_with_turns(count: int) -> list[str]:
    """`count` conversations, each with `EARLIER_TURNS` turns stored as the chat service stores them."""
    from chatbot.dal.conversations import ConversationRepository

    repo, ids = ConversationRepository(), []
    started_ms = int(time.time() * 1000) - 60_000
    for _ in range(count):
        ids.append(f"conv_bench_{uuid.uuid4().hex}")
        for turn in range(EARLIER_TURNS):
            messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
            repo.add_turn(ids[-1], messages, started_ms=started_ms + turn, ttl=int(time.time()) + 3600)
    return ids


def test_chat_added_latency(stack, monkeypatch):
    import httpx
    import httpx2
    import openai

    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    from chatbot import aws
    from chatbot.config import get_settings

    get_settings.cache_clear()
    aws.reset()
    from tests.integration.chat_support import chat_api_key, new_agent

    settings = get_settings()
    model = settings.responses_model
    agent = new_agent(name=f"bench-{int(time.time())}", api_type="chat", system_message=SYSTEM)
    api_key = chat_api_key()
    fake_base, our_base = stack.fake_openai.api_base, stack.base_url

    def sdk(base_url: str, key: str) -> Any:
        # A client per request: its connection is new, as the widget's EventSource's is.
        return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, http_client=httpx2.Client())

    def http() -> httpx.Client:
        return httpx.Client(base_url=our_base, timeout=30)

    responses_input = [
        {"role": "system", "content": [{"type": "input_text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "input_text", "text": MESSAGE}]},
    ]
    # What the upstream receives for a conversation's fifth message: the earlier turns, then the new one.
    earlier_input = [
        item
        for _ in range(EARLIER_TURNS)
        for item in (
            {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": ANSWER}]},
        )
    ]
    fifth_input = [responses_input[0], *earlier_input, responses_input[1]]
    going_on = iter(_conversations_with_turns(WARMUP + N))
    sampling = {"temperature": settings.temperature, "top_p": settings.top_p}
    chat_messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": MESSAGE}]

    def timed(prepare: Callable[[], Any], call: Callable[[Any], None]) -> float:
        resource = prepare()
        try:
            started = time.perf_counter()
            call(resource)
            return (time.perf_counter() - started) * 1000
        finally:
            resource.close()

    def direct_ttft_of(input_items: list[dict[str, Any]]) -> Callable[[Any], None]:
        def call(client: Any) -> None:
            stream = client.responses.create(
                model=model,
                input=input_items,
                max_output_tokens=settings.max_output_tokens,
                stream=True,
                **sampling,
            )
            for event in stream:
                if event.type == "response.output_text.delta":
                    break
            stream.close()

        return call

    def direct_whole(client: Any) -> None:
        reply = client.responses.create(
            model=model, input=responses_input, max_output_tokens=settings.max_output_tokens, **sampling
        )
        assert reply.output_text

    def client_named() -> dict[str, Any]:
        # A new conversation, named by the client as the widget does (so its history is read).
        return {"message": MESSAGE, "conversation_id": f"conv_bench_{uuid.uuid4().hex}"}

    def fifth_message() -> dict[str, Any]:
        # A conversation with four earlier turns stored (each sample its own): its history is read and sent.
        return {"message": MESSAGE, "conversation_id": next(going_on)}

    def first_message() -> dict[str, Any]:
        # The widget's first message: no conversation id yet, so the server names it and reads no history.
        return {"message": MESSAGE}

    def ours_ttft(body: Callable[[], dict[str, Any]]) -> Callable[[httpx.Client], None]:
        def call(client: httpx.Client) -> None:
            with client.stream("POST", "/chat", json=body()) as response:
                assert response.status_code == 200
                for raw in response.iter_raw():
                    if b'"type":"chunk"' in raw:
                        return
            raise AssertionError("no chunk")

        return call

    def ours_whole(body: Callable[[], dict[str, Any]]) -> Callable[[httpx.Client], None]:
        def call(client: httpx.Client) -> None:
            response = client.post("/chat", json={**body(), "stream": False})
            assert response.status_code == 200 and response.json()["response"]

        return call

    def direct_chat_ttft(client: Any) -> None:
        stream = client.chat.completions.create(
            model=model, messages=chat_messages, max_tokens=settings.max_tokens, stream=True, **sampling
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()

    def direct_chat_whole(client: Any) -> None:
        reply = client.chat.completions.create(
            model=model, messages=chat_messages, max_tokens=settings.max_tokens, **sampling
        )
        assert reply.choices[0].message.content

    def v1_ttft(client: Any) -> None:
        stream = client.chat.completions.create(
            model=agent.id, messages=[{"role": "user", "content": MESSAGE}], stream=True
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        stream.close()

    def v1_whole(client: Any) -> None:
        reply = client.chat.completions.create(
            model=agent.id, messages=[{"role": "user", "content": MESSAGE}]
        )
        assert reply.choices[0].message.content

    cases: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
        "direct first token": (lambda: sdk(fake_base, "sk-bench"), direct_ttft_of(responses_input)),
        "ours first token": (http, ours_ttft(client_named)),
        "direct whole": (lambda: sdk(fake_base, "sk-bench"), direct_whole),
        "ours whole": (http, ours_whole(client_named)),
        "ours first message first token": (http, ours_ttft(first_message)),
        "ours first message whole": (http, ours_whole(first_message)),
        "direct fifth message first token": (lambda: sdk(fake_base, "sk-bench"), direct_ttft_of(fifth_input)),
        "ours fifth message first token": (http, ours_ttft(fifth_message)),
        "direct chat first token": (lambda: sdk(fake_base, "sk-bench"), direct_chat_ttft),
        "v1 first token": (lambda: sdk(our_base + "/v1", api_key), v1_ttft),
        "direct chat whole": (lambda: sdk(fake_base, "sk-bench"), direct_chat_whole),
        "v1 whole": (lambda: sdk(our_base + "/v1", api_key), v1_whole),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order, shuffler = list(cases), random.Random(4)
    mark = stack.mark()
    for i in range(WARMUP + N):
        shuffler.shuffle(order)
        for name in order:
            prepare, call = cases[name]
            elapsed = timed(prepare, call)
            if i >= WARMUP:
                samples[name].append(elapsed)
            time.sleep(GAP_S)  # let the previous request's after-response work (usage) finish

    pairs = [
        ("/chat first token", "ours first token", "direct first token", TARGET_TTFT_MS),
        ("/chat whole reply", "ours whole", "direct whole", TARGET_WHOLE_MS),
        ("/chat 1st msg first token", "ours first message first token", "direct first token", TARGET_TTFT_MS),
        ("/chat 1st msg whole", "ours first message whole", "direct whole", TARGET_WHOLE_MS),
        (
            "/chat 5th msg first token",
            "ours fifth message first token",
            "direct fifth message first token",
            TARGET_TTFT_MS,
        ),
        ("/v1 first token", "v1 first token", "direct chat first token", None),
        ("/v1 whole reply", "v1 whole", "direct chat whole", None),
    ]
    rows = []
    for label, ours, direct, target in pairs:
        row = {"path": label, "n": len(samples[ours]), "target_p50_ms": target}
        for q, key in ((0.5, "p50"), (0.95, "p95")):
            row[f"direct_{key}_ms"] = round(percentile(samples[direct], q), 2)
            row[f"ours_{key}_ms"] = round(percentile(samples[ours], q), 2)
            row[f"added_{key}_ms"] = round(row[f"ours_{key}_ms"] - row[f"direct_{key}_ms"], 2)
        row["added_median_of_pairs_ms"] = round(
            statistics.median(o - d for o, d in zip(samples[ours], samples[direct], strict=True)), 2
        )
        rows.append(row)

    # Context: what one emulator call costs here, and where the server spent the first-token time.
    env = stack.stack.environment()
    ddb = stack.client("dynamodb")

    def query() -> None:
        ddb.query(
            TableName=env["CONVERSATIONS_TABLE"],
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "CONV#bench"}},
            ConsistentRead=True,
        )

    def update() -> None:
        ddb.update_item(
            TableName=env["RATE_LIMITS_TABLE"],
            Key={"pk": {"S": "RL#bench"}, "sk": {"S": "0"}},
            UpdateExpression="ADD #c :one",
            ExpressionAttributeNames={"#c": "count"},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )

    # Back to back, and after the pause the samples above leave between requests (the machine slows down
    # when it idles: caches cool, threads and processes have to be woken).
    context = {
        "emulator_query_ms": _p50(query),
        "emulator_update_ms": _p50(update),
        "emulator_update_after_pause_ms": _p50(update, pause_s=GAP_S),
    }
    logged = [
        e for e in stack.logs(mark) if e.get("event") == "chat_completed" and e.get("endpoint") == "widget"
    ]
    streamed = [e for e in logged if e.get("stream")][WARMUP:]
    if streamed:
        context["server_prepare_p50_ms"] = round(statistics.median(e["prepare_ms"] for e in streamed), 2)
        context["server_ttft_p50_ms"] = round(statistics.median(e["ttft_ms"] for e in streamed), 2)

    print()
    header = "direct p50/p95     ours p50/p95     added p50/p95  target"
    print(f"chat latency, n={N} per path (ms)            {header}")
    for row in rows:
        target = f"≤ {row['target_p50_ms']:g}" if row["target_p50_ms"] else "-"
        print(
            f"  {row['path']:<22} {row['direct_p50_ms']:>16.2f} /{row['direct_p95_ms']:>7.2f}"
            f" {row['ours_p50_ms']:>9.2f} /{row['ours_p95_ms']:>7.2f}"
            f" {row['added_p50_ms']:>9.2f} /{row['added_p95_ms']:>7.2f}  {target}"
        )
    out = ROOT / ".local" / "bench" / "chat_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    print("  context (ms):", ", ".join(f"{k} {v}" for k, v in context.items()))
    out.write_text(json.dumps({"n": N, "load": os.getloadavg(), "rows": rows, "context": context}, indent=2))

    if os.environ.get("BENCH_ENFORCE") == "1":
        for row in rows:
            if row["target_p50_ms"] is not None:
                assert row["added_p50_ms"] <= row["target_p50_ms"], row
