"""Tools normalisation and merging, settings precedence (request > agent > config), the history window."""

from __future__ import annotations

from chatbot.config import Settings
from chatbot.models.chat import ChatMessage
from chatbot.services.chat import history_window, resolve_settings
from chatbot.services.tools import (
    fill_file_search,
    for_chat_completions,
    merge_tools,
    normalize_tools,
    sanitize,
)
from chatbot.upstream.chat_gateway import UpstreamCall, chat_completions_params, responses_params
from tests.unit.test_chat_validation import settings


# -- normalisation -------------------------------------------------------------------------------------------
def test_normalize_keeps_only_supported_types():
    tools = normalize_tools(
        [{"type": "web_search"}, {"type": "code_interpreter"}, {"type": "file_search"}, {"type": "mcp"}]
    )

    assert tools == [{"type": "code_interpreter", "container": {"type": "auto"}}, {"type": "file_search"}]


def test_normalize_function_name_description_strict():
    tools = normalize_tools(
        [
            {"type": "function", "name": "get_weather", "description": "  " + "d" * 600, "strict": "true"},
            {"type": "function", "name": "bad name!"},
            {"type": "function", "name": "x" * 65},
            {"type": "function", "function": {"name": "nested_fn", "parameters": {"type": "object"}}},
        ]
    )

    assert tools[0] == {"type": "function", "name": "get_weather", "description": "d" * 512, "strict": True}
    assert tools[1] == {"type": "function", "name": "nested_fn", "parameters": {"type": "object"}}
    assert len(tools) == 2


def test_sanitize_bounds_depth_and_strings():
    deep: dict = {}
    node = deep
    for _ in range(15):
        node["a"] = {}
        node = node["a"]
    cleaned = sanitize({"s": "  " + "x" * 3000 + "  ", "deep": deep})

    assert cleaned["s"] == "x" * 2000
    depth, node = 0, cleaned["deep"]
    while isinstance(node, dict) and "a" in node:
        depth, node = depth + 1, node["a"]
    assert depth <= 10


def test_normalize_file_search_flattens_dedupes_and_clamps():
    tools = normalize_tools(
        [
            {
                "type": "file_search",
                "file_search": {
                    "vector_store_ids": ["vs_1", "vs_1", "bad id!", "vs_2"],
                    "max_num_results": 500,
                },
                "filters": {"type": "eq", "key": "k", "value": "v"},
            }
        ]
    )

    assert tools == [
        {
            "type": "file_search",
            "vector_store_ids": ["vs_1", "vs_2"],
            "max_num_results": 200,
            "filters": {"type": "eq", "key": "k", "value": "v"},
        }
    ]


def test_merge_later_layers_win_per_key_and_empty_clears():
    config = [{"type": "file_search", "vector_store_ids": ["vs_c"]}, {"type": "function", "name": "a"}]
    agent = [{"type": "function", "name": "a", "description": "agent"}, {"type": "function", "name": "b"}]

    merged = merge_tools(config, agent, None)

    assert merged == [
        {"type": "file_search", "vector_store_ids": ["vs_c"]},
        {"type": "function", "name": "a", "description": "agent"},
        {"type": "function", "name": "b"},
    ]
    assert merge_tools(config, agent, []) == []


def test_fill_file_search_only_where_missing_and_drops_storeless():
    tools = [
        {"type": "file_search"},
        {"type": "file_search", "vector_store_ids": ["vs_own"], "max_num_results": 3},
    ]

    filled = fill_file_search(tools, vector_store_ids=["vs_a"], max_num_results=7)

    assert filled == [
        {"type": "file_search", "vector_store_ids": ["vs_a"], "max_num_results": 7},
        {"type": "file_search", "vector_store_ids": ["vs_own"], "max_num_results": 3},
    ]
    assert fill_file_search([{"type": "file_search"}], vector_store_ids=[], max_num_results=None) == []


def test_for_chat_completions_nests_functions_and_drops_others():
    tools = [
        {"type": "function", "name": "f", "parameters": {}},
        {"type": "file_search", "vector_store_ids": ["v"]},
    ]

    assert for_chat_completions(tools) == [{"type": "function", "function": {"name": "f", "parameters": {}}}]


# -- precedence ----------------------------------------------------------------------------------------------
AGENT = {
    "id": "agent-1",
    "api_type": "chat",
    "model": "gpt-4.1",
    "temperature": 0.0,
    "top_p": 0.5,
    "max_output_tokens": 300,
    "system_message": "Be brief.",
    "prompt_id": "pmpt_agent",
    "prompt_version": "3",
    "tools": [{"type": "function", "name": "lookup"}],
    "vector_store_ids": ["vs_agent"],
    "max_num_results": 4,
}


def test_resolve_without_agent_uses_config():
    cfg = settings(responses_prompt_id="pmpt_cfg", responses_prompt_version="1")

    options = resolve_settings(cfg, None)

    assert options.api_type == "responses" and options.model == cfg.responses_model
    assert (options.temperature, options.top_p, options.max_output_tokens) == (0.7, 1.0, 1024)
    assert options.system_message == "You are a helpful AI assistant."
    assert (options.prompt_id, options.prompt_version) == ("pmpt_cfg", "1")
    assert options.tools == [] and options.agent_id is None


def test_resolve_agent_overrides_config_and_zero_is_a_value():
    options = resolve_settings(settings(), AGENT, api_type="responses")

    assert options.model == "gpt-4.1" and options.temperature == 0.0 and options.top_p == 0.5
    assert options.max_output_tokens == 300 and options.system_message == "Be brief."
    assert (options.prompt_id, options.prompt_version) == ("pmpt_agent", "3")
    assert options.tools == [
        {"type": "function", "name": "lookup"},
        {"type": "file_search", "vector_store_ids": ["vs_agent"], "max_num_results": 4},
    ]
    assert options.agent_id == "agent-1"


def test_resolve_request_overrides_agent_for_api_type_prompt_and_tools():
    options = resolve_settings(
        settings(),
        AGENT,
        api_type="responses",
        prompt_id="pmpt_req",
        request_tools=[{"type": "function", "name": "lookup", "description": "from request"}],
    )

    # The request's prompt comes without the agent's version (which belongs to the agent's prompt)
    assert (options.prompt_id, options.prompt_version) == ("pmpt_req", None)
    assert {"type": "function", "name": "lookup", "description": "from request"} in options.tools


def test_resolve_request_version_applies_to_agent_prompt():
    options = resolve_settings(settings(), AGENT, api_type="responses", prompt_version="9")

    assert (options.prompt_id, options.prompt_version) == ("pmpt_agent", "9")


def test_resolve_agent_api_type_applies_when_request_has_none():
    options = resolve_settings(settings(), AGENT)

    # Chat Completions: no prompt, penalties from config
    assert options.api_type == "chat" and options.prompt_id is None
    assert options.frequency_penalty == 0.0


def test_resolve_empty_request_tools_remove_all_tools():
    assert resolve_settings(settings(), AGENT, api_type="responses", request_tools=[]).tools == []


def test_resolve_config_vector_stores_give_file_search():
    cfg = settings(responses_vector_store_ids="vs_1, vs_2", responses_max_num_results=9)

    assert resolve_settings(cfg, None).tools == [
        {"type": "file_search", "vector_store_ids": ["vs_1", "vs_2"], "max_num_results": 9}
    ]


# -- history window and upstream payloads --------------------------------------------------------------------
def turns(n: int) -> list[dict]:
    return [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(n)
    ]


def test_history_window_keeps_the_newest_messages():
    window = history_window(turns(30), max_messages=50)

    assert len(window) == 49
    assert window[-1].content == "a29" and window[0].content == "a5"


def test_history_window_keeps_the_system_message_first():
    # Given a long history and a small window
    history = history_window(turns(10), max_messages=5)
    call = UpstreamCall(
        api_type="chat",
        model="m",
        messages=[*history, ChatMessage(role="user", content="now")],
        system_message="Be brief.",
    )

    # When the upstream payload is built
    messages = chat_completions_params(call, stream=True)["messages"]

    # Then the system message survives the trimming and the newest messages follow it
    assert messages[0] == {"role": "system", "content": "Be brief."}
    assert [m["content"] for m in messages[1:]] == ["q8", "a8", "q9", "a9", "now"]


def test_responses_payload_matches_the_original():
    call = UpstreamCall(
        api_type="responses",
        model="gpt-4o-mini",
        messages=[ChatMessage(role="user", content="Hello there")],
        system_message="You are a helpful AI assistant.",
        temperature=0.7,
        top_p=1,
        max_output_tokens=1024,
    )

    # The original's payload, as captured (its key order, too)
    assert responses_params(call, stream=True) == {
        "model": "gpt-4o-mini",
        "input": [
            {
                "role": "system",
                "content": [{"type": "input_text", "text": "You are a helpful AI assistant."}],
            },
            {"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]},
        ],
        "temperature": 0.7,
        "top_p": 1,
        "max_output_tokens": 1024,
        "stream": True,
    }


def test_responses_payload_history_files_and_prompt():
    call = UpstreamCall(
        api_type="responses",
        model="m",
        messages=[
            ChatMessage(role="user", content="q"),
            ChatMessage(role="assistant", content="a"),
            ChatMessage(role="user", content="see", file_ids=["file-1"], image_file_ids=["file-2"]),
        ],
        prompt_id="pmpt_1",
        prompt_version="2",
    )

    params = responses_params(call, stream=False)

    assert params["input"][1] == {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]}
    assert params["input"][2]["content"][1:] == [
        {"type": "input_file", "file_id": "file-1"},
        {"type": "input_image", "file_id": "file-2"},
    ]
    assert params["prompt"] == {"id": "pmpt_1", "version": "2"} and "stream" not in params


def test_settings_defaults_match_the_original():
    cfg = settings()
    assert isinstance(cfg, Settings)
    assert (cfg.chat_rate_limit, cfg.chat_rate_window_seconds, cfg.chat_max_messages) == (60, 60, 50)
    assert (cfg.chat_timeout_seconds, cfg.responses_timeout_seconds, cfg.max_file_size) == (60, 120, 10485760)
    assert cfg.fallback_model == "gpt-4o-mini" and cfg.chat_max_files == 5
