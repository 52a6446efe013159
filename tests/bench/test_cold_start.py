"""Cold start of each function as a fresh process: importing its handler module (which builds its app,
logger and clients' factories) against a baseline measured in the same run, a process that imports the
whole dependency set eagerly (boto3, Powertools, pydantic, FastAPI, Mangum, the openai SDK, httpx and every
module of the core package). A function that defers what only some requests need starts faster than that.

Prints a table; BENCH_ENFORCE=1 fails when a function is not faster than the eager baseline.
BENCH_COLD_RUNS (default 5) sets the runs per row (the median is reported).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("chat", "admin", "webhook", "worker", "metrics_push", "backup", "rotation")
EAGER = """
import pkgutil, importlib
import boto3, botocore, pydantic, pydantic_settings, fastapi, mangum, openai, httpx
import aws_lambda_powertools.logging, aws_lambda_powertools.metrics, aws_lambda_powertools.tracing
import aws_lambda_powertools.utilities.batch
import chatbot
for module in pkgutil.walk_packages(chatbot.__path__, "chatbot."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
"""
TIMED = "import time; _t = time.perf_counter()\n{code}\nprint((time.perf_counter() - _t) * 1000)"


def _run(code: str) -> float:
    """Milliseconds the code took inside a fresh interpreter (its own start-up excluded)."""
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(code=code)],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _median(code: str, runs: int) -> float:
    return statistics.median(_run(code) for _ in range(runs))


def test_cold_start_of_each_function_against_the_eager_baseline():
    runs = int(os.environ.get("BENCH_COLD_RUNS", "5"))
    baseline = _median(EAGER, runs)
    rows = [(name, _median(f"import functions.{name}.app", runs)) for name in FUNCTIONS]

    print(f"\n\nCold start (import and init in a fresh process), median of {runs} runs")
    print(f"{'function':<14} | {'ms':>7} | {'x eager baseline':>16}")
    print(f"{'-' * 14}-+-{'-' * 7}-+-{'-' * 16}")
    print(f"{'(eager deps)':<14} | {baseline:>7.0f} | {1.0:>16.2f}")
    for name, ms in rows:
        print(f"{name:<14} | {ms:>7.0f} | {ms / baseline:>16.2f}")
    print()
    if os.environ.get("BENCH_ENFORCE") == "1":
        assert all(ms < baseline for _, ms in rows), rows
