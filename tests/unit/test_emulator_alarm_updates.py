"""`keep_alarm_state_on_update`: putting an existing alarm again changes its settings, not its state."""

from __future__ import annotations

import boto3
from moto import mock_aws
from moto.cloudwatch.models import CloudWatchBackend

from infra.local.emulator import keep_alarm_state_on_update

ALARM = {
    "AlarmName": "queue-depth",
    "Namespace": "AWS/SQS",
    "MetricName": "ApproximateNumberOfMessagesVisible",
    "Statistic": "Maximum",
    "Period": 60,
    "EvaluationPeriods": 1,
    "ComparisonOperator": "GreaterThanThreshold",
}


def _put_twice_after_an_alarm() -> tuple[dict, dict]:
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name="us-east-1")
        cw.put_metric_alarm(**ALARM, Threshold=100)
        cw.set_alarm_state(AlarmName="queue-depth", StateValue="ALARM", StateReason="Threshold Crossed: 120")
        before = cw.describe_alarms(AlarmNames=["queue-depth"])["MetricAlarms"][0]
        cw.put_metric_alarm(**ALARM, Threshold=200)
        return before, cw.describe_alarms(AlarmNames=["queue-depth"])["MetricAlarms"][0]


def test_an_updated_alarm_keeps_its_state(monkeypatch):
    original = CloudWatchBackend.put_metric_alarm
    assert not getattr(original, "keeps_state", False), (
        "applied for the whole process: compare with moto's own"
    )
    monkeypatch.setattr(CloudWatchBackend, "put_metric_alarm", original)
    _, reset = _put_twice_after_an_alarm()
    assert reset["StateValue"] == "OK"  # moto's own: the state is lost

    keep_alarm_state_on_update()
    before, after = _put_twice_after_an_alarm()
    assert after["Threshold"] == 200.0  # the new settings apply
    assert (after["StateValue"], after["StateReason"]) == ("ALARM", "Threshold Crossed: 120")
    assert after["StateUpdatedTimestamp"] == before["StateUpdatedTimestamp"]
