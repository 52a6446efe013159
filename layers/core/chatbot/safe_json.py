"""JSON from clients, refused up front when it parses but cannot be used.

`json.loads` accepts three things that fail later, far from the input, as 500s:
- nesting past the parser's recursion limit raises RecursionError, not ValueError; and nesting that parses
  still breaks recursive code further on (validation, DynamoDB's 32-level limit on a stored item);
- `"\\ud800"` is valid JSON but an unpaired UTF-16 surrogate, which no UTF-8 text can hold: every later
  encode (token estimate, upstream request, DynamoDB, the JSON response) raises UnicodeEncodeError.
`loads` turns each into a ValueError, which every caller already maps to its 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

# DynamoDB stores items nested at most 32 levels deep; no legitimate request comes close.
MAX_DEPTH = 32
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """`json.loads(text, **kwargs)`, raising ValueError also for deep nesting and unpaired surrogates."""
    try:
        data = json.loads(text, **kwargs)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if _deeper_than(data, MAX_DEPTH):
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if isinstance(text, str):
        escaped = _SURROGATE_ESCAPE.search(text) is not None
    else:
        escaped = _SURROGATE_ESCAPE_BYTES.search(text) is not None
    if escaped:
        # Paired surrogates were joined by the parser; an unpaired one cannot be encoded.
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON holds an unpaired UTF-16 surrogate") from None
    return data


def _deeper_than(value: Any, limit: int) -> bool:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
