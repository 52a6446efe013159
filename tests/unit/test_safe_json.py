"""`chatbot.safe_json.loads`: JSON that parses but cannot be used is a ValueError, as invalid JSON is."""

from __future__ import annotations

import pytest

from chatbot import safe_json


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_loads_ordinary_json_like_json_loads() -> None:
    text = '{"a": [1, 2.5, "x", null, true], "b": {"c": "\\ud83e\\udd9c caf\\u00e9"}}'

    assert safe_json.loads(text) == {"a": [1, 2.5, "x", None, True], "b": {"c": "🦜 café"}}
    assert safe_json.loads(text.encode()) == safe_json.loads(text)


def test_loads_nesting_up_to_the_limit() -> None:
    assert safe_json.loads(nested(safe_json.MAX_DEPTH)) is not None


@pytest.mark.parametrize("depth", [safe_json.MAX_DEPTH + 1, 900, 100_000])
def test_loads_refuses_deeper_nesting_with_value_error(depth: int) -> None:
    with pytest.raises(ValueError, match="nested"):
        safe_json.loads(nested(depth).encode())


@pytest.mark.parametrize(
    "text", ['"\\ud800"', '{"k": "a \\udc80 b"}', '{"\\udbff": 1}', '["\\udc80\\ud83e"]', b'"\\uD800"']
)
def test_loads_refuses_unpaired_surrogates(text: str | bytes) -> None:
    with pytest.raises(ValueError, match="surrogate"):
        safe_json.loads(text)


def test_loads_passes_options_and_invalid_utf8_stays_a_value_error() -> None:
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    with pytest.raises(ValueError, match="NaN"):
        safe_json.loads("[NaN]", parse_constant=refuse)
    with pytest.raises(ValueError):
        safe_json.loads(b'{"a": "\xff"}')
