"""The load harness (`python -m tests.load`) for about 10 s at a low rate against the local stack: it runs
Locust headless, writes its report, and every request of the standard mix succeeds. Keeps `tests/load` from
rotting between the full runs (`make load`), which take minutes.

The harness runs as a child process (Locust monkey-patches the interpreter it is imported into) from a
loopback address of its own, so the stack's per-IP chat limit is not shared with other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.chat_support import new_ip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_load_harness_reports_a_short_standard_run_without_errors(local_stack: Any, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "tests.load",
        "--url",
        local_stack.base_url,
        "--out",
        str(tmp_path),
        "--stages",
        "2:2,8:2",
        "--time-scale",
        "1",
        "--think",
        "0.3:0.8",
        "--source-ip",
        new_ip(),
    ]
    env = {**os.environ, "ADMIN_TOKEN": local_stack.admin_token}

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "standard_summary.json").read_text())
    endpoints = {e["name"]: e for e in summary["endpoints"]}
    total = endpoints["all requests"]
    assert total["requests"] >= 10 and total["failures"] == 0
    assert endpoints["POST /chat-unified.php"]["requests"] > 0
    assert summary["passed"] is True and summary["stack"] == {}  # a stack it did not start
    assert "| **all requests** |" in (tmp_path / "standard_summary.md").read_text()
    stats = (tmp_path / "standard_stats.csv").read_text().splitlines()
    assert stats[0].startswith("Type,Name,Request Count") and any("/chat-unified.php" in r for r in stats)
