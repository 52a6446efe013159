"""The template's CloudWatch alarms, evaluated locally (the emulator stores alarms but never evaluates them).

`AlarmEvaluator.evaluate(now)` reads every `AWS::CloudWatch::Alarm` of the provisioned stack, computes its
datapoints from a `MetricSource` (the local stack's `MetricStore`), decides ALARM / OK / INSUFFICIENT_DATA
the way CloudWatch does, and records a change in the emulator with `SetAlarmState` (so `describe-alarms`
against the emulator shows it), notifying the alarm's SNS actions like CloudWatch does.

What is covered: single-metric alarms (`Statistic` Sum, Average, Minimum, Maximum, SampleCount, or an
`ExtendedStatistic` pNN), metric-math alarms (`Metrics` with `MetricStat` queries and one returned
`Expression` using + - * /, comparisons, AND/OR/&&/||, IF, FILL, RATE, ABS, MIN, MAX), `DatapointsToAlarm`
("M out of N"), and each `TreatMissingData` (missing, notBreaching, breaching, ignore). The evaluation
periods end at `now`; the newest one is the last `Period` seconds.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

log = logging.getLogger("infra.local.alarms")

Value = float | None
Series = list[Value]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


class AlarmError(ValueError):
    pass


class MetricSource(Protocol):
    def values(
        self,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str],
        start: datetime,
        end: datetime,
    ) -> list[float]:
        """The values of one metric (exactly these dimensions) with start <= timestamp < end."""
        ...


def statistic(values: Sequence[float], stat: str) -> Value:
    """One CloudWatch statistic of a period's values; None when the period has none."""
    if not values:
        return None
    if stat == "Sum":
        return float(sum(values))
    if stat == "Average":
        return float(sum(values) / len(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    if stat == "SampleCount":
        return float(len(values))
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if m:  # nearest rank
        ordered = sorted(values)
        rank = max(1, math.ceil(float(m.group(1)) / 100 * len(ordered)))
        return float(ordered[min(rank, len(ordered)) - 1])
    raise AlarmError(f"unsupported statistic {stat}")


# --- metric math -----------------------------------------------------------------------------------------


def _elementwise(fn: Callable[..., Value], *args: Series | float) -> Series:
    n = max((len(a) for a in args if isinstance(a, list)), default=1)
    columns = [a if isinstance(a, list) else [a] * n for a in args]
    return [fn(*row) for row in zip(*columns, strict=True)]


def _arith(op: ast.operator) -> Callable[[Value, Value], Value]:
    def run(a: Value, b: Value) -> Value:
        if a is None or b is None:
            return None
        if isinstance(op, ast.Add):
            return a + b
        if isinstance(op, ast.Sub):
            return a - b
        if isinstance(op, ast.Mult):
            return a * b
        if isinstance(op, ast.Div):
            return None if b == 0 else a / b
        raise AlarmError(f"unsupported operator {type(op).__name__}")

    return run


_CMP: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def evaluate_expression(expression: str, series: Mapping[str, Series], period: int) -> Series:
    """A metric math expression over aligned series (one value per period, None = no data)."""
    text = re.sub(r"\bAND\b|&&", " and ", expression)
    text = re.sub(r"\bOR\b|\|\|", " or ", text)
    text = re.sub(r"\bNOT\b", " not ", text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise AlarmError(f"cannot parse metric math {expression!r}") from exc
    n = max((len(s) for s in series.values()), default=1)

    def ev(node: ast.AST) -> Series | float:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in series:
                raise AlarmError(f"unknown metric id {node.id} in {expression!r}")
            return list(series[node.id])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return _elementwise(lambda a: None if a is None else -a, ev(node.operand))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return _elementwise(lambda a: None if a is None else float(not a), ev(node.operand))
        if isinstance(node, ast.BinOp):
            return _elementwise(_arith(node.op), ev(node.left), ev(node.right))
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            cmp = _CMP[type(node.ops[0])]
            return _elementwise(
                lambda a, b: None if a is None or b is None else float(cmp(a, b)),
                ev(node.left),
                ev(node.comparators[0]),
            )
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            both_and = isinstance(node.op, ast.And)

            def combine(*xs: Value) -> Value:
                if any(x is None for x in xs):
                    return None
                return float(all(xs) if both_and else any(xs))

            return _elementwise(combine, *values)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return _call(node.func.id.upper(), [ev(a) for a in node.args])
        raise AlarmError(f"unsupported metric math in {expression!r}: {ast.dump(node)[:60]}")

    def _call(name: str, args: list[Series | float]) -> Series | float:
        if name == "FILL" and len(args) == 2:
            return _elementwise(lambda a, b: b if a is None else a, args[0], args[1])
        if name == "IF" and len(args) in (2, 3):
            otherwise = args[2] if len(args) == 3 else None
            return _elementwise(
                lambda c, a, b: None if c is None else (a if c else b), args[0], args[1], otherwise
            )
        if name == "RATE" and len(args) == 1 and isinstance(args[0], list):
            s = args[0]
            return [None] + [
                None if a is None or b is None else (b - a) / period for a, b in itertools.pairwise(s)
            ]
        if name == "ABS" and len(args) == 1:
            return _elementwise(lambda a: None if a is None else abs(a), args[0])
        if name in ("MIN", "MAX") and len(args) == 1 and isinstance(args[0], list):
            present = [v for v in args[0] if v is not None]
            return (min if name == "MIN" else max)(present) if present else [None] * n
        raise AlarmError(f"unsupported function {name} in {expression!r}")

    result = ev(tree)
    return result if isinstance(result, list) else [float(result)] * n


# --- alarms ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    alarm: str
    state: str  # ALARM | OK | INSUFFICIENT_DATA
    reason: str
    datapoints: Series


def _windows(now: datetime, period: int, count: int) -> list[tuple[datetime, datetime]]:
    """`count` periods ending at `now`, oldest first."""
    return [
        (now - timedelta(seconds=period * (i + 1)), now - timedelta(seconds=period * i))
        for i in reversed(range(count))
    ]


def _stat_series(
    source: MetricSource, metric: Mapping[str, Any], stat: str, windows: list[tuple[datetime, datetime]]
) -> Series:
    dims = {str(d["Name"]): str(d["Value"]) for d in metric.get("Dimensions") or ()}
    return [
        statistic(source.values(str(metric["Namespace"]), str(metric["MetricName"]), dims, s, e), stat)
        for s, e in windows
    ]


def datapoints(props: Mapping[str, Any], source: MetricSource, now: datetime) -> tuple[Series, int]:
    """The alarm's datapoints for its evaluation periods (oldest first), and its period."""
    n = int(props.get("EvaluationPeriods", 1))
    if props.get("Metrics"):
        queries = list(props["Metrics"])
        periods = [int(q["MetricStat"]["Period"]) for q in queries if q.get("MetricStat")]
        period = int(props.get("Period") or (max(periods) if periods else 60))
        windows = _windows(now, period, n + 1)  # one more: RATE needs the period before
        series: dict[str, Series] = {}
        for q in queries:
            if q.get("MetricStat"):
                stat = q["MetricStat"]
                series[str(q["Id"])] = _stat_series(source, stat["Metric"], str(stat["Stat"]), windows)
        returned: Series | None = None
        for q in queries:
            if q.get("Expression"):
                series[str(q["Id"])] = evaluate_expression(str(q["Expression"]), series, period)
            if q.get("ReturnData", True):
                returned = series[str(q["Id"])]
        if returned is None:
            raise AlarmError("a metric math alarm needs one query with ReturnData")
        return returned[-n:], period
    period = int(props["Period"])
    stat = str(props.get("ExtendedStatistic") or props.get("Statistic") or "Average")
    return _stat_series(source, props, stat, _windows(now, period, n)), period


def decide(props: Mapping[str, Any], points: Series, current: str | None = None) -> tuple[str, str]:
    """ALARM / OK / INSUFFICIENT_DATA from the datapoints, with CloudWatch's missing-data rules."""
    compare = _COMPARE.get(str(props["ComparisonOperator"]))
    if compare is None:
        raise AlarmError(f"unsupported ComparisonOperator {props['ComparisonOperator']}")
    threshold = float(props["Threshold"])
    needed = int(props.get("DatapointsToAlarm") or props.get("EvaluationPeriods", 1))
    missing = str(props.get("TreatMissingData") or "missing")
    present = [p for p in points if p is not None]
    breaching = sum(1 for p in present if compare(p, threshold))
    absent = len(points) - len(present)
    if missing == "breaching":
        breaching += absent
    op = str(props["ComparisonOperator"])
    summary = f"{breaching} of {len(points)} datapoints {op} {threshold:g} (values {points})"
    if breaching >= needed:
        return "ALARM", f"Threshold Crossed: {summary}"
    if not present and missing == "missing":
        return "INSUFFICIENT_DATA", "Insufficient Data: no datapoints"
    if not present and missing == "ignore":
        return current or "INSUFFICIENT_DATA", "No datapoints: state kept"
    return "OK", f"Threshold not crossed: {summary}"


class AlarmEvaluator:
    """Evaluates the stack's alarms against `source`; `cloudwatch`/`sns` (boto3 clients) record the states."""

    def __init__(self, stack: Any, source: MetricSource, *, cloudwatch: Any = None, sns: Any = None) -> None:
        self.stack = stack
        self.source = source
        self.cloudwatch = cloudwatch
        self.sns = sns
        self.states: dict[str, str] = {}  # alarm name → state this evaluator set
        self.unsupported: dict[str, str] = {}

    def alarms(self) -> dict[str, Mapping[str, Any]]:
        """Alarm name → its (resolved) properties, for the alarms provisioned so far."""
        if self.stack is None:
            return {}
        return {
            res.physical_id: res.properties
            for res in list(self.stack.resources.values())
            if res.type == "AWS::CloudWatch::Alarm" and res.status in ("created", "existing")
        }

    def evaluate(self, now: datetime) -> dict[str, Evaluation]:
        results: dict[str, Evaluation] = {}
        for name, props in self.alarms().items():
            try:
                points, _ = datapoints(props, self.source, now)
                state, reason = decide(props, points, self.states.get(name))
            except (AlarmError, KeyError, ValueError) as exc:
                if name not in self.unsupported:
                    log.warning("alarm %s cannot be evaluated locally: %s", name, exc)
                self.unsupported[name] = str(exc)
                continue
            results[name] = Evaluation(name, state, reason, points)
            if self.states.get(name) != state:
                self._record(name, props, state, reason, now)
        return results

    def _record(self, name: str, props: Mapping[str, Any], state: str, reason: str, now: datetime) -> None:
        previous = self.states.get(name)
        self.states[name] = state
        log.info("alarm %s: %s -> %s (%s)", name, previous or "unknown", state, reason)
        if self.cloudwatch is not None:
            self.cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason[:1023])
        actions = {
            "ALARM": props.get("AlarmActions"),
            "OK": props.get("OKActions"),
            "INSUFFICIENT_DATA": props.get("InsufficientDataActions"),
        }[state]
        # The first evaluation only establishes the state; CloudWatch notifies on transitions.
        if self.sns is None or not actions or (previous is None and state != "ALARM"):
            return
        message = {
            "AlarmName": name,
            "NewStateValue": state,
            "OldStateValue": previous or "INSUFFICIENT_DATA",
            "NewStateReason": reason,
            "StateChangeTime": now.isoformat(),
        }
        for topic in actions:
            try:
                self.sns.publish(
                    TopicArn=str(topic), Subject=f"{state}: {name}"[:100], Message=json.dumps(message)
                )
            except Exception:  # a notification failing must not stop the evaluation
                log.warning("notifying %s of %s failed", topic, name, exc_info=True)
