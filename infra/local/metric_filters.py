"""CloudWatch Logs metric filters, evaluated here (the emulator stores them but never applies them).

`FilterPattern.parse(text)` understands the JSON patterns of CloudWatch Logs:
`{ $.event = "job_failed" && ($.duration_ms > 100 || $.level = "ERR*") }` with `=`, `!=`, `<`, `<=`, `>`,
`>=` against quoted strings (`*` is a wildcard), bare words and numbers, `IS NULL`, `NOT EXISTS`, `IS TRUE`,
`IS FALSE`, `&&`, `||` and parentheses; selectors `$.a.b`, `$.list[0].c`. Also the empty pattern (every
event) and plain term patterns (`ERROR "timed out" -debug`). A comparison needs its field: a missing field
matches only `NOT EXISTS`. A string comparison needs a string field and a numeric one a number.

`MetricFilter.apply(line)` turns one log line into the datapoints its transformations publish: the value is
a number or `$.field` (a number, or a string holding one; otherwise nothing is published), dimensions are
`$.field` values (an event missing one publishes nothing), as CloudWatch does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

_MISSING = object()
Event = Mapping[str, Any]
Predicate = Callable[[Event], bool]


class FilterPatternError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>&&|\|\||<=|>=|!=|=|<|>|\(|\))
      | (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<selector>\$(?:\.[A-Za-z0-9_@\-]+|\[\d+\])*)
      | (?P<word>[^\s()&|=!<>"]+)
    )""",
    re.VERBOSE,
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_@\-]+)|\[(\d+)\]")


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterPatternError(f"cannot parse filter pattern at {text[pos:]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def select(event: Any, selector: str) -> Any:
    """The value at `$.a.b[0]` in `event`, or `_MISSING`."""
    value = event
    for name, index in _PATH_PART.findall(selector[1:]):
        if name:
            if not isinstance(value, Mapping) or name not in value:
                return _MISSING
            value = value[name]
        else:
            i = int(index)
            if not isinstance(value, list) or i >= len(value):
                return _MISSING
            value = value[i]
    return value


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$", re.DOTALL)


def _comparison(selector: str, op: str, literal: tuple[str, str]) -> Predicate:
    kind, raw = literal
    if kind == "string":
        text = json.loads(raw)
        is_number = False
    else:
        text = raw
        is_number = bool(_NUMBER.match(raw))
    if is_number:
        number = float(text)
        compare = {
            "=": lambda v: v == number,
            "!=": lambda v: v != number,
            "<": lambda v: v < number,
            "<=": lambda v: v <= number,
            ">": lambda v: v > number,
            ">=": lambda v: v >= number,
        }[op]

        def numeric(event: Event) -> bool:
            value = select(event, selector)
            return isinstance(value, int | float) and not isinstance(value, bool) and compare(value)

        return numeric
    if op not in ("=", "!="):
        raise FilterPatternError(f"{op} needs a number, got {raw}")
    matcher = _wildcard(text)
    equal = op == "="

    def textual(event: Event) -> bool:
        value = select(event, selector)
        return isinstance(value, str) and bool(matcher.match(value)) == equal

    return textual


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FilterPatternError("filter pattern ends too early")
        self.i += 1
        return token

    def expect(self, value: str) -> None:
        token = self.take()
        if token[1].upper() != value:
            raise FilterPatternError(f"expected {value}, got {token[1]}")

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.peek() == ("op", "||"):
            self.take()
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda e: any(p(e) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_term()]
        while self.peek() == ("op", "&&"):
            self.take()
            parts.append(self.parse_term())
        return parts[0] if len(parts) == 1 else (lambda e: all(p(e) for p in parts))

    def parse_term(self) -> Predicate:
        kind, value = self.take()
        if (kind, value) == ("op", "("):
            inner = self.parse_or()
            self.expect(")")
            return inner
        if kind != "selector":
            raise FilterPatternError(f"expected a $.selector, got {value}")
        selector = value
        kind, value = self.take()
        word = value.upper()
        if kind == "word" and word == "IS":
            what = self.take()[1].upper()
            if what == "NULL":
                return lambda e: select(e, selector) is None
            if what in ("TRUE", "FALSE"):
                flag = what == "TRUE"
                return lambda e: select(e, selector) is flag
            raise FilterPatternError(f"IS {what} is not a filter pattern")
        if kind == "word" and word == "NOT":
            self.expect("EXISTS")
            return lambda e: select(e, selector) is _MISSING
        if kind != "op" or value not in ("=", "!=", "<", "<=", ">", ">="):
            raise FilterPatternError(f"expected a comparison after {selector}, got {value}")
        literal = self.take()
        if literal[0] not in ("string", "word"):
            raise FilterPatternError(f"expected a value after {selector} {value}, got {literal[1]}")
        return _comparison(selector, value, literal)


@dataclass(frozen=True)
class FilterPattern:
    text: str
    json: bool
    _predicate: Predicate = field(repr=False, compare=False)

    @classmethod
    def parse(cls, text: str | None) -> FilterPattern:
        text = (text or "").strip()
        if text.startswith("{"):
            if not text.endswith("}"):
                raise FilterPatternError(f"unbalanced braces in {text!r}")
            parser = _Parser(_tokens(text[1:-1]))
            predicate = parser.parse_or()
            if parser.peek() is not None:
                raise FilterPatternError(f"unexpected {parser.peek()[1]!r} in {text!r}")  # type: ignore[index]
            return cls(text, True, predicate)
        if text.startswith("["):
            raise FilterPatternError("space-delimited filter patterns are not supported locally")
        return cls(text, False, _terms(text))

    def matches(self, line: str | Event) -> bool:
        """Whether a log line (text, or an already parsed JSON object) matches."""
        if self.json:
            event = _as_event(line)
            return event is not None and self._predicate(event)
        return self._predicate({"": line if isinstance(line, str) else json.dumps(line)})


def _terms(text: str) -> Predicate:
    """Plain term patterns: every term (or quoted phrase) present, no `-term` present; case-sensitive."""
    terms = re.findall(r'-?"[^"]*"|\S+', text)
    wanted = [t.strip('"') for t in terms if not t.startswith("-")]
    unwanted = [t[1:].strip('"') for t in terms if t.startswith("-")]
    return lambda e: all(w in e[""] for w in wanted) and not any(u in e[""] for u in unwanted)


def _as_event(line: str | Event) -> Event | None:
    if isinstance(line, Mapping):
        return line
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        event = json.loads(text)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


@dataclass(frozen=True)
class Datapoint:
    namespace: str
    name: str
    value: float
    unit: str | None = None
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MetricFilter:
    name: str
    log_group: str
    pattern: FilterPattern
    transformations: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_properties(cls, name: str, properties: Mapping[str, Any]) -> MetricFilter:
        """From an `AWS::Logs::MetricFilter`'s (resolved) properties."""
        return cls(
            name=name,
            log_group=str(properties["LogGroupName"]),
            pattern=FilterPattern.parse(properties.get("FilterPattern")),
            transformations=tuple(properties.get("MetricTransformations") or ()),
        )

    def apply(self, line: str | Event) -> list[Datapoint]:
        if not self.pattern.matches(line):
            return []
        event = _as_event(line) or {}
        out = []
        for t in self.transformations:
            value = _metric_value(event, str(t["MetricValue"]))
            if value is None:
                continue
            dimensions = []
            for d in t.get("Dimensions") or ():
                dim = select(event, str(d["Value"])) if str(d["Value"]).startswith("$") else d["Value"]
                if dim is _MISSING or dim is None:
                    break
                dimensions.append((str(d["Key"]), dim if isinstance(dim, str) else json.dumps(dim)))
            else:
                out.append(
                    Datapoint(
                        namespace=str(t["MetricNamespace"]),
                        name=str(t["MetricName"]),
                        value=value,
                        unit=t.get("Unit"),
                        dimensions=tuple(sorted(dimensions)),
                    )
                )
        return out


def _metric_value(event: Event, spec: str) -> float | None:
    if not spec.startswith("$"):
        return float(spec)
    value = select(event, spec)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    return None


def filters_of(resources: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[MetricFilter]:
    """`MetricFilter`s from (logical id, type, properties) triples; other resource types are skipped."""
    return [
        MetricFilter.from_properties(lid, props)
        for lid, rtype, props in resources
        if rtype == "AWS::Logs::MetricFilter"
    ]
