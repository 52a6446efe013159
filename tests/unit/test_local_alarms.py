"""The local CloudWatch pieces: filter patterns, metric transformations, EMF, statistics, metric math and
the alarm decision, checked against CloudWatch's documented behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra.local.alarms import datapoints, decide, evaluate_expression, statistic
from infra.local.metric_filters import Datapoint, FilterPattern, FilterPatternError, MetricFilter
from infra.local.observability import MetricStore, emf_datapoints

EVENT = {
    "event": "job_failed",
    "job_type": "file_ingest",
    "duration_ms": 120.5,
    "attempt": 2,
    "ok": False,
    "gone": None,
    "tags": ["a", {"id": 7}],
    "nested": {"status": "5xx"},
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ('{ $.event = "job_failed" }', True),
        ('{ $.event = "job_completed" }', False),
        ("{ $.event = job_* }", True),
        ('{ $.event != "job_completed" }', True),
        ('{ $.missing != "x" }', False),  # a comparison needs its field
        ("{ $.duration_ms > 100 && $.attempt >= 2 }", True),
        ("{ $.duration_ms < 100 || $.attempt = 2 }", True),
        ('{ ($.event = "job_failed") && ($.nested.status = "5xx") }', True),
        ('{ $.event = "job_failed" && ($.attempt > 5 || $.job_type = "diag*") }', False),
        ('{ $.attempt = "2" }', False),  # a string never equals a number
        ("{ $.job_type > 1 }", False),  # nor compares as one
        ("{ $.tags[1].id = 7 }", True),
        ("{ $.ok IS FALSE }", True),
        ("{ $.gone IS NULL }", True),
        ("{ $.absent NOT EXISTS }", True),
        ("{ $.event NOT EXISTS }", False),
    ],
)
def test_json_filter_patterns(pattern, matches):
    assert FilterPattern.parse(pattern).matches(EVENT) is matches


def test_term_patterns_and_errors():
    assert FilterPattern.parse("").matches("anything")
    assert FilterPattern.parse('ERROR "timed out" -debug').matches("ERROR: request timed out")
    assert not FilterPattern.parse("ERROR -debug").matches("ERROR debug")
    assert not FilterPattern.parse('{ $.a = "x" }').matches("not json")
    for bad in ('{ $.a = "x" ', "{ $.a ~ 1 }", '{ $.a > "x" }', "[ip, user]"):
        with pytest.raises(FilterPatternError):
            FilterPattern.parse(bad)


def test_transformation_value_and_dimensions():
    flt = MetricFilter.from_properties(
        "f",
        {
            "LogGroupName": "g",
            "FilterPattern": '{ $.event = "job_failed" }',
            "MetricTransformations": [
                {
                    "MetricNamespace": "Chatbot",
                    "MetricName": "latency",
                    "MetricValue": "$.duration_ms",
                    "Unit": "Milliseconds",
                    "Dimensions": [{"Key": "job_type", "Value": "$.job_type"}],
                }
            ],
        },
    )
    (point,) = flt.apply(EVENT)
    assert (point.value, point.dimensions, point.unit) == (
        120.5,
        (("job_type", "file_ingest"),),
        "Milliseconds",
    )
    assert flt.apply({**EVENT, "duration_ms": "n/a"}) == []  # not a number: nothing published
    assert flt.apply({k: v for k, v in EVENT.items() if k != "job_type"}) == []  # a dimension missing


def test_emf_document_to_datapoints():
    doc = {
        "_aws": {
            "Timestamp": 0,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Chatbot",
                    "Dimensions": [["service", "status"]],
                    "Metrics": [{"Name": "chatbot_jobs_total", "Unit": "Count"}],
                }
            ],
        },
        "service": "metrics_push",
        "status": "queued",
        "chatbot_jobs_total": [3.0, 4.0],
    }
    assert [(p.value, p.dimensions) for p in emf_datapoints(doc)] == [
        (3.0, (("service", "metrics_push"), ("status", "queued"))),
        (4.0, (("service", "metrics_push"), ("status", "queued"))),
    ]


def test_statistics():
    values = [float(v) for v in range(1, 101)]
    assert [statistic(values, s) for s in ("Sum", "Average", "Minimum", "Maximum", "SampleCount")] == [
        5050.0,
        50.5,
        1.0,
        100.0,
        100.0,
    ]
    assert statistic(values, "p95") == 95.0 and statistic([], "Sum") is None


def test_metric_math():
    series = {"failed": [None, 1.0, 3.0], "processed": [None, None, 1.0]}
    total = "(FILL(failed, 0) + FILL(processed, 0))"
    ratio = f"IF({total} > 0, FILL(failed, 0) / {total}, 0)"
    assert evaluate_expression(ratio, series, 60) == [0.0, 1.0, 0.75]
    assert evaluate_expression("RATE(failed) * 60", series, 60) == [None, None, 2.0]
    assert evaluate_expression("IF(FILL(failed, 0) > 2 OR FILL(processed, 0) < 1, 1, 0)", series, 60) == [
        1.0,
        1.0,
        1.0,
    ]


@pytest.mark.parametrize(
    ("missing", "points", "state"),
    [
        ("notBreaching", [None, 150.0, 150.0], "OK"),
        ("breaching", [None, 150.0, 150.0], "ALARM"),
        ("missing", [None, None, None], "INSUFFICIENT_DATA"),
        ("notBreaching", [None, None, None], "OK"),
        ("missing", [101.0, 99.0, 150.0], "OK"),  # 2 of 3 breach, 3 needed
    ],
)
def test_decide_m_out_of_n_and_missing_data(missing, points, state):
    props = {
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 100,
        "EvaluationPeriods": 3,
        "TreatMissingData": missing,
    }
    assert decide(props, points)[0] == state
    assert decide({**props, "DatapointsToAlarm": 2}, [101.0, 99.0, 150.0])[0] == "ALARM"


def test_alarm_datapoints_from_the_store_use_exact_dimensions():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    store = MetricStore(lambda: now)
    for minutes_ago, value in ((2.5, 5.0), (1.5, 7.0), (0.5, 9.0)):
        store.put(
            Datapoint("Chatbot", "g", value, dimensions=(("service", "m"),)),
            at=now - timedelta(minutes=minutes_ago),
        )
    store.put(Datapoint("Chatbot", "g", 1000.0, dimensions=(("service", "m"), ("x", "y"))), at=now)
    props = {"Namespace": "Chatbot", "MetricName": "g", "Dimensions": [{"Name": "service", "Value": "m"}]}
    props |= {"Statistic": "Maximum", "Period": 60, "EvaluationPeriods": 3}
    assert datapoints(props, store, now) == ([5.0, 7.0, 9.0], 60)
