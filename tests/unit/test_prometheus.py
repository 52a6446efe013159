"""`GET /admin/metrics`: Prometheus text exposition of the gauges, admins only."""

from __future__ import annotations

import math

from chatbot.services.metrics_push import Gauge
from chatbot.services.prometheus import render


def test_render_groups_samples_under_one_type_line_and_escapes_labels():
    text = render(
        [
            Gauge("chatbot_jobs_total", 3, dimensions={"status": "queued"}),
            Gauge("chatbot_agents_default", 1),
            Gauge("chatbot_jobs_total", 0, dimensions={"status": 'we"ird\\n'}),
            Gauge("chatbot_worker_last_job_seconds", 1.5),
            Gauge("chatbot.bad-name", math.nan),
        ]
    )

    assert text.splitlines() == [
        "# TYPE chatbot_agents_default gauge",
        "chatbot_agents_default 1",
        "# TYPE chatbot_bad_name gauge",
        "chatbot_bad_name NaN",
        "# TYPE chatbot_jobs_total gauge",
        'chatbot_jobs_total{status="queued"} 3',
        'chatbot_jobs_total{status="we\\"ird\\\\n"} 0',
        "# TYPE chatbot_worker_last_job_seconds gauge",
        "chatbot_worker_last_job_seconds 1.5",
    ]
    assert text.endswith("\n")
