"""The OpenAI-compatible API through the local gateway, used with the official `openai` Python SDK."""

from __future__ import annotations

import openai
import pytest

from tests.integration.chat_support import chat_api_key, client, new_agent, openai_client


@pytest.fixture
def setup(local_stack):
    """An agent and an API key with the `chat` scope."""
    agent = new_agent(api_type="responses", system_message="Be brief.")
    key = chat_api_key(("chat",))
    local_stack.fake_openai.set_reply("Hello from fake OpenAI!")
    yield agent, key
    local_stack.fake_openai.set_reply(None)


def test_sdk_non_streaming_with_usage(local_stack, setup):
    agent, key = setup
    sdk = openai_client(local_stack, key)

    completion = sdk.chat.completions.create(
        model=agent.id, messages=[{"role": "user", "content": "Hello there"}]
    )

    assert completion.object == "chat.completion" and completion.model == agent.id
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello from fake OpenAI!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    # the agent's settings reached the upstream (its system message first)
    sent = local_stack.fake_openai.requests_to("/v1/responses")[-1]["body"]
    assert sent["input"][0]["content"][0]["text"] == "Be brief."


def test_sdk_streaming_with_include_usage(local_stack, setup):
    agent, key = setup
    sdk = openai_client(local_stack, key)

    chunks = list(
        sdk.chat.completions.create(
            model=agent.name,  # an agent's name works as well as its id
            messages=[{"role": "user", "content": "Hello there"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from fake OpenAI!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert (
        chunks[-1].choices == [] and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    )
    assert len({c.id for c in chunks}) == 1


def test_sdk_streaming_ends_with_done(local_stack, setup):
    agent, key = setup
    with (
        client(local_stack) as http,
        http.stream(
            "POST",
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": agent.id, "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        ) as response,
    ):
        body = b"".join(response.iter_raw())

    assert response.headers["content-type"].startswith("text/event-stream")
    assert body.endswith(b"data: [DONE]\n\n")


def test_sdk_models_lists_agents(local_stack, setup):
    agent, key = setup

    models = openai_client(local_stack, key).models.list()

    listed = {m.id: m for m in models.data}
    assert agent.id in listed and listed[agent.id].owned_by == "chatbot"


def test_sdk_invalid_key_is_authentication_error(local_stack, setup):
    agent, _ = setup
    sdk = openai_client(local_stack, "chatbot_" + "0" * 64)

    with pytest.raises(openai.AuthenticationError) as caught:
        sdk.chat.completions.create(model=agent.id, messages=[{"role": "user", "content": "Hi"}])

    assert caught.value.status_code == 401
    assert set(caught.value.body) == {"message", "type", "param", "code"}


def test_sdk_key_without_chat_scope_is_forbidden(local_stack, setup):
    agent, _ = setup
    sdk = openai_client(local_stack, chat_api_key(("admin",)))

    with pytest.raises(openai.PermissionDeniedError):
        sdk.chat.completions.create(model=agent.id, messages=[{"role": "user", "content": "Hi"}])


def test_sdk_unknown_model_is_not_found(local_stack, setup):
    _, key = setup

    with pytest.raises(openai.NotFoundError) as caught:
        openai_client(local_stack, key).chat.completions.create(
            model="no-such-agent", messages=[{"role": "user", "content": "Hi"}]
        )

    assert caught.value.code == "model_not_found"


def test_sdk_invalid_request_is_bad_request(local_stack, setup):
    agent, key = setup

    with pytest.raises(openai.BadRequestError):
        openai_client(local_stack, key).chat.completions.create(model=agent.id, messages=[])


def test_sdk_upstream_failure_mid_stream_is_an_error_chunk(local_stack, setup):
    agent, key = setup
    stream = openai_client(local_stack, key).chat.completions.create(
        model=agent.id, messages=[{"role": "user", "content": "Hi [[fault:error_event]]"}], stream=True
    )

    with pytest.raises(openai.APIError):
        list(stream)
