"""Tool definitions: parsing the request's `tools`, normalising them as the original did, and merging layers.

The rules follow the original's ChatHandler: only `function`, `file_search` and `code_interpreter` survive;
function names match `^[A-Za-z0-9_]{1,64}$`, descriptions are cut to 512 characters, parameter schemas are
sanitised (depth ≤ 10, strings ≤ 2,000 characters); file_search keeps valid, de-duplicated vector store ids
and a `max_num_results` in 1..200. Layers merge config → agent → request, keyed by type (or
`function:<name>`), and an explicit empty request list means "no tools at all".
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chatbot import safe_json
from chatbot.errors import BadRequest

ALLOWED_TYPES = ("function", "file_search", "code_interpreter")
MAX_DEPTH = 10
MAX_STRING = 2000
MAX_DESCRIPTION = 512
MAX_LIST_ITEMS = 256
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_VECTOR_STORE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

Tool = dict[str, Any]


def parse_request_tools(raw: Any) -> list[Tool] | None:
    """The request's `tools` as a list of objects with a `type`, or None when absent.

    A JSON string is decoded first (GET requests and widget embeds send it that way). Entries that are not
    objects or lack a non-empty string `type` are dropped, as the original did.
    """
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = safe_json.loads(raw)
        except ValueError:
            raise BadRequest("Invalid tools payload: expected JSON array", code="invalid_tools") from None
    if not isinstance(raw, list):
        raise BadRequest("Invalid tools payload: expected JSON array", code="invalid_tools")
    return [t for t in raw if isinstance(t, dict) and isinstance(t.get("type"), str) and t["type"].strip()]


def normalize_tools(tools: Iterable[Mapping[str, Any]] | None, *, max_tools: int | None = None) -> list[Tool]:
    """Normalise tool definitions; unsupported or invalid ones are dropped, not refused."""
    out: list[Tool] = []
    for tool in tools or ():
        normalised = normalize_tool(tool)
        if normalised is not None:
            out.append(normalised)
    if max_tools is not None and len(out) > max_tools:
        raise BadRequest(f"Too many tools (at most {max_tools})", code="too_many_tools")
    return out


def normalize_tool(tool: Mapping[str, Any]) -> Tool | None:
    if not isinstance(tool, Mapping):
        return None
    kind = str(tool.get("type", "")).strip()
    if kind == "function":
        return _function_tool(tool)
    if kind == "file_search":
        return _file_search_tool(tool)
    if kind == "code_interpreter":
        container = tool.get("container")
        if isinstance(container, str) and container.strip():
            return {"type": "code_interpreter", "container": container.strip()[:128]}
        if isinstance(container, Mapping):
            return {"type": "code_interpreter", "container": sanitize(container)}
        return {"type": "code_interpreter", "container": {"type": "auto"}}
    return None


def tool_key(tool: Mapping[str, Any]) -> str:
    """Merge key: one tool per type, except functions, which are keyed by name."""
    if tool.get("type") == "function":
        return f"function:{tool.get('name', '')}"
    return str(tool.get("type"))


def merge_tools(*layers: Sequence[Tool] | None) -> list[Tool]:
    """Merge normalised layers, later ones winning per key; a layer `[]` clears everything before it."""
    merged: dict[str, Tool] = {}
    for layer in layers:
        if layer is None:
            continue
        if len(layer) == 0:
            merged = {}
            continue
        for tool in layer:
            merged[tool_key(tool)] = dict(tool)
    return list(merged.values())


def fill_file_search(
    tools: list[Tool], *, vector_store_ids: Sequence[str] | None, max_num_results: int | None
) -> list[Tool]:
    """Give file_search tools the agent's (or config's) stores and result count where they lack them.

    A file_search tool with no store at all cannot be sent upstream (OpenAI rejects it), so it is dropped.
    """
    stores = _vector_store_ids(vector_store_ids or [])
    out: list[Tool] = []
    for tool in tools:
        if tool.get("type") == "file_search":
            tool = dict(tool)
            if not tool.get("vector_store_ids"):
                if not stores:
                    continue
                tool["vector_store_ids"] = list(stores)
            if "max_num_results" not in tool and max_num_results is not None:
                tool["max_num_results"] = _clamp_results(max_num_results)
        out.append(tool)
    return out


def for_chat_completions(tools: Sequence[Tool]) -> list[Tool]:
    """Chat Completions knows only function tools, nested under `function`."""
    out = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
        out.append({"type": "function", "function": function})
    return out


def sanitize(value: Any, _depth: int = 0) -> Any:
    """A JSON-safe copy of a schema-like value: bounded depth, trimmed and cut strings, bounded lists."""
    if _depth > MAX_DEPTH:
        return None
    if isinstance(value, Mapping):
        out = {}
        for key, item in list(value.items())[:MAX_LIST_ITEMS]:
            clean = sanitize(item, _depth + 1)
            if clean is not None or item is None:
                out[str(key)[:MAX_STRING]] = clean
        return out
    if isinstance(value, list | tuple):
        return [sanitize(v, _depth + 1) for v in list(value)[:MAX_LIST_ITEMS]]
    if isinstance(value, str):
        return value.strip()[:MAX_STRING]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return str(value)[:MAX_STRING]


# -- per type ------------------------------------------------------------------------------------------------
def _function_tool(tool: Mapping[str, Any]) -> Tool | None:
    # Chat Completions nests the definition under `function`; accept both shapes.
    nested = tool.get("function")
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else tool
    name = source.get("name")
    if not isinstance(name, str) or not _FUNCTION_NAME.match(name.strip()):
        return None
    out: Tool = {"type": "function", "name": name.strip()}
    description = source.get("description")
    if isinstance(description, str) and description.strip():
        out["description"] = description.strip()[:MAX_DESCRIPTION]
    parameters = source.get("parameters")
    if isinstance(parameters, Mapping):
        out["parameters"] = sanitize(parameters)
    if "strict" in source:
        out["strict"] = _to_bool(source.get("strict"))
    return out


def _file_search_tool(tool: Mapping[str, Any]) -> Tool:
    fields = dict(tool)
    nested = fields.pop("file_search", None)
    if isinstance(nested, Mapping):
        fields.update(nested)
    out: Tool = {"type": "file_search"}
    ids = fields.get("vector_store_ids")
    if isinstance(ids, list | tuple):
        stores = _vector_store_ids(ids)
        if stores:
            out["vector_store_ids"] = stores
    if "max_num_results" in fields:
        with contextlib.suppress(TypeError, ValueError):
            out["max_num_results"] = _clamp_results(int(fields["max_num_results"]))
    if isinstance(fields.get("filters"), Mapping):
        out["filters"] = sanitize(fields["filters"])
    if isinstance(fields.get("ranking_options"), Mapping):
        out["ranking_options"] = sanitize(fields["ranking_options"])
    return out


def _vector_store_ids(ids: Iterable[Any]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in ids:
        if isinstance(raw, str) and _VECTOR_STORE_ID.match(raw.strip()):
            seen.setdefault(raw.strip(), None)
    return list(seen)


def _clamp_results(value: int) -> int:
    return max(1, min(200, int(value)))


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
