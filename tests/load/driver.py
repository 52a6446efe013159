"""The Locust run: users, load shapes, thresholds, report. Imported only by the process that drives the load
(Locust monkey-patches the interpreter with gevent on import).

Profiles
- standard: the original's k6 iteration — 70 % `POST /chat-unified.php` `{message, api_type: responses,
  stream: false}`, 20 % `test_agent` (the admin action, streamed; read to the end), 10 % one of the admin
  reads `health`, `list_agents`, `job_stats` (legacy `/admin-api.php/<action>` paths, as its script used) —
  with think time 1 to 4 s, over its stages. Passes when p95 of all requests < 2 s and errors < 5 %.
- streaming: the widget's `GET /chat` EventSource, read to `close`; records time to first byte (headers),
  to the first token, and to the end of the stream. Thresholds apply to the whole stream.
- capacity: `POST /chat` (non-streaming) at a constant rate that rises step by step; each user paces
  itself at 0.5 req/s, so a rate R has 2R users and holds as long as latency stays under 2 s. A step holds
  when, after it settled, p95 < 2 s, errors < 5 % and the achieved rate is at least 90 % of the target;
  the first step that does not hold ends the run, and the highest rate held is the result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent
import locust  # noqa: F401 - before requests/urllib3: it monkey-patches sockets and ssl on import
import requests
from locust import HttpUser, LoadTestShape, between, task
from locust.env import Environment
from locust.runners import STATE_STOPPED
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter
from urllib3 import PoolManager

from tests.load import report
from tests.load.report import Sample, Step, Thresholds

CHAT_TIMEOUT_S = 30.0  # the original's k6 timeouts
AGENT_TEST_TIMEOUT_S = 60.0
ADMIN_TIMEOUT_S = 30.0
USERS_PER_RPS = 2  # capacity: each user paces itself at 0.5 req/s
HELD_RATE_FRACTION = 0.9
ADMIN_READS = ("health", "list_agents", "job_stats")
_MESSAGES = (
    "Hello, how are you today?",
    "What can you help me with?",
    "Tell me a short fact about clouds.",
    "Summarise the benefits of load testing in one sentence.",
)


@dataclass
class RunConfig:
    """What the users read: set once before the run starts."""

    admin_token: str = ""
    agent_id: str = ""
    source_ip: str | None = None
    think: tuple[float, float] = (1.0, 4.0)
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0


CONFIG = RunConfig()


# -- users --------------------------------------------------------------------------------------------------
class _LoadUser(HttpUser):
    abstract = True

    def __init__(self, environment: Environment) -> None:
        if CONFIG.source_ip:  # read by HttpUser.__init__ when it builds the session
            self.pool_manager = PoolManager(maxsize=4, source_address=(CONFIG.source_ip, 0))
        super().__init__(environment)

    def wait_time(self) -> float:
        return between(*CONFIG.think)(self)

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {CONFIG.admin_token}"}

    def post_chat(self) -> None:
        body = {"message": random.choice(_MESSAGES), "api_type": "responses", "stream": False}
        name = "POST /chat-unified.php"
        with self.client.post(
            "/chat-unified.php", json=body, name=name, timeout=CHAT_TIMEOUT_S, catch_response=True
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
            elif not isinstance(_json(r.text).get("response"), str):
                r.failure("no `response` in the reply")


class StandardUser(_LoadUser):
    @task(70)
    def chat(self) -> None:
        self.post_chat()

    @task(20)
    def agent_test(self) -> None:
        name = "POST /admin-api.php/test_agent"
        with self.client.post(
            f"/admin-api.php/test_agent?id={CONFIG.agent_id}",
            json={"message": random.choice(_MESSAGES)},
            headers=self.admin_headers,
            name=name,
            timeout=AGENT_TEST_TIMEOUT_S,
            catch_response=True,
        ) as r:
            problem = _stream_problem(r.status_code, r.text)
            if problem:
                r.failure(problem)

    @task(10)
    def admin_read(self) -> None:
        action = random.choice(ADMIN_READS)
        with self.client.get(
            f"/admin-api.php/{action}",
            headers=self.admin_headers,
            name=f"GET /admin-api.php/{action}",
            timeout=ADMIN_TIMEOUT_S,
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {r.text[:200]}")
            elif "data" not in _json(r.text):
                r.failure("no `data` in the reply")


class StreamingUser(_LoadUser):
    @task
    def chat_stream(self) -> None:
        """Locust's own entry (stream=True) times the headers; first token and whole stream are ours."""
        params = {"message": random.choice(_MESSAGES), "api_type": "responses"}
        started = time.perf_counter()
        first_token: float | None = None
        body = b""
        with self.client.get(
            "/chat",
            params=params,
            stream=True,
            name="GET /chat (first byte)",
            timeout=CHAT_TIMEOUT_S,
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            try:
                for piece in r.iter_content(chunk_size=None):
                    body += piece
                    if first_token is None and b'"type":"chunk"' in body:
                        first_token = time.perf_counter()
                problem = _stream_problem(r.status_code, body.decode("utf-8", "replace"))
            except requests.RequestException as exc:
                problem = f"stream broke: {type(exc).__name__}"
        ended = time.perf_counter()
        fire = self.environment.events.request.fire
        if first_token is not None:
            fire(
                request_type="GET",
                name="GET /chat (first token)",
                response_time=(first_token - started) * 1000,
                response_length=0,
                exception=None,
                context={},
            )
        fire(
            request_type="GET",
            name="GET /chat (whole stream)",
            response_time=(ended - started) * 1000,
            response_length=len(body),
            exception=AssertionError(problem) if problem else None,
            context={},
        )


class ChatRateUser(_LoadUser):
    """One request every USERS_PER_RPS seconds from a random phase; late requests are not caught up.

    Not Locust's `constant_throughput`: its first wait is measured from perf_counter's zero, which in a
    fresh process lines every user up on the same beat."""

    _due: float | None = None

    def wait_time(self) -> float:
        now = time.perf_counter()
        self._due = now + USERS_PER_RPS if self._due is None else max(self._due + USERS_PER_RPS, now)
        return self._due - now

    def on_start(self) -> None:
        gevent.sleep(random.uniform(0, USERS_PER_RPS))  # spread a step's new users over one period

    @task
    def chat(self) -> None:
        self.post_chat()


# -- shapes -------------------------------------------------------------------------------------------------
class StagesShape(LoadTestShape):
    """k6-style stages: each ramps linearly from the previous target to its own over its duration."""

    def __init__(self, stages: list[tuple[float, int]]) -> None:
        super().__init__()
        self.stages = stages

    def tick(self) -> tuple[int, float] | None:
        elapsed, previous = self.get_run_time(), 0
        for seconds, users in self.stages:
            if elapsed < seconds:
                rate = abs(users - previous) / seconds if users != previous else 1.0
                return users, max(rate, 0.01)
            elapsed -= seconds
            previous = users
        return None


class CapacityShape(LoadTestShape):
    """Raise the chat rate step by step; judge each step when it ends; stop at the first that fails."""

    def __init__(self, args: argparse.Namespace, thresholds: Thresholds) -> None:
        super().__init__()
        self.args = args
        self.thresholds = thresholds
        self.steps: list[Step] = []
        self.index = 0

    def rate(self, index: int) -> float:
        return self.args.start_rate + index * self.args.step_rate

    def tick(self) -> tuple[int, float] | None:
        index = int(self.get_run_time() // self.args.step_seconds)
        while self.index < index:  # a step has ended: judge it
            step = self.judge(self.index)
            self.steps.append(step)
            self.index += 1
            if not step.held:
                return None
        rate = self.rate(index)
        if rate > self.args.max_rate:
            return None
        return math.ceil(rate * USERS_PER_RPS), 100.0

    def judge(self, index: int) -> Step:
        start = CONFIG.started + index * self.args.step_seconds + self.args.settle_seconds
        end = CONFIG.started + (index + 1) * self.args.step_seconds
        window = [s for s in CONFIG.samples if start <= s.at < end]
        figures = report.figures(window, f"step {index + 1}", end - start)
        target = self.rate(index)
        why = []
        if figures.p95_ms >= self.thresholds.p95_ms:
            why.append(f"p95 {figures.p95_ms:.0f} ms")
        if figures.error_ratio >= self.thresholds.error_ratio:
            why.append(f"errors {100 * figures.error_ratio:.1f} %")
        if figures.rate < HELD_RATE_FRACTION * target:
            why.append(f"achieved {figures.rate:.1f} req/s")
        users = math.ceil(target * USERS_PER_RPS)
        step = Step(target, users, figures, held=not why, why=", ".join(why))
        print(
            f"capacity step {index + 1}: target {target:g} req/s, achieved {figures.rate:.1f}, "
            f"p95 {figures.p95_ms:.0f} ms, errors {100 * figures.error_ratio:.1f} %: "
            + ("held" if step.held else f"not held ({step.why})"),
            flush=True,
        )
        return step


# -- the run ------------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, stack_info: dict[str, Any]) -> int:
    base_url = args.url.rstrip("/")
    thresholds = Thresholds(p95_ms=args.p95_ms, error_ratio=args.max_error_ratio)
    CONFIG.admin_token = os.environ["ADMIN_TOKEN"]
    CONFIG.source_ip = args.source_ip
    CONFIG.think = args.think_range
    http = _session(args.source_ip)
    CONFIG.agent_id = _create_agent(http, base_url)
    try:
        if not args.no_warmup:
            _warm_up(http, base_url, args.profile)
        user_class: type[HttpUser]
        shape: LoadTestShape
        if args.profile == "capacity":
            user_class, shape = ChatRateUser, CapacityShape(args, thresholds)
        else:
            user_class = StreamingUser if args.profile == "streaming" else StandardUser
            shape = StagesShape(args.stage_list)
        return _drive(args, stack_info, base_url, thresholds, user_class, shape)
    finally:
        http.delete(
            f"{base_url}/admin/agents/{CONFIG.agent_id}", headers=_admin_headers(), timeout=ADMIN_TIMEOUT_S
        )


def _drive(
    args: argparse.Namespace,
    stack_info: dict[str, Any],
    base_url: str,
    thresholds: Thresholds,
    user_class: type[HttpUser],
    shape: LoadTestShape,
) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    env = Environment(user_classes=[user_class], shape_class=shape, host=base_url)
    runner = env.create_local_runner()

    def record(name: str, response_time: float, exception: Any, **_: Any) -> None:
        CONFIG.samples.append(Sample(time.perf_counter(), name, response_time, exception is None))

    env.events.request.add_listener(record)
    csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(out / args.profile), full_history=True)
    csv_greenlet = gevent.spawn(csv_writer)
    cpu_before = _cpu(stack_info)
    load_before = os.getloadavg()
    wall_started = datetime.now(UTC)
    CONFIG.started = time.perf_counter()
    runner.start_shape()
    while runner.state != STATE_STOPPED or runner.shape_greenlet is not None:
        gevent.sleep(0.5)
    seconds = time.perf_counter() - CONFIG.started
    cpu_after = _cpu(stack_info)
    load_after = os.getloadavg()
    runner.quit()
    gevent.sleep(1.5)  # one more pass of the CSV writer with the final figures
    csv_greenlet.kill()
    csv_writer.close_files()

    samples = [Sample(s.at - CONFIG.started, s.name, s.ms, s.ok) for s in CONFIG.samples]
    rows = report.per_endpoint(samples, seconds)
    summary: dict[str, Any] = {
        "profile": args.profile,
        "started_at": wall_started.isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
        "url": base_url,
        "thresholds": thresholds,
        "endpoints": rows,
        "machine": report.machine(),
        "load_average": {"before": load_before, "after": load_after},
        "cpu_seconds": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after},
        "stack": stack_info,
    }
    if isinstance(shape, CapacityShape):
        held = [s for s in shape.steps if s.held]
        summary["steps"] = shape.steps
        summary["highest_rate_held"] = max((s.target_rate for s in held), default=None)
        passed = bool(held)
    else:
        judged = next(r for r in rows if r.name == _judged_name(args.profile))
        summary["judged"] = judged.name
        passed = thresholds.met_by(judged)
    summary["passed"] = passed
    markdown = _markdown(args, summary, rows)
    md_path, _ = report.write(out, args.profile, summary, markdown)
    print(markdown, flush=True)
    print(f"\nreport: {md_path} and {out / args.profile}_stats.csv", flush=True)
    return 0 if passed else 1


def _judged_name(profile: str) -> str:
    return "GET /chat (whole stream)" if profile == "streaming" else report.ALL


def _markdown(args: argparse.Namespace, summary: dict[str, Any], rows: list[report.Figures]) -> str:
    t: Thresholds = summary["thresholds"]
    machine, stack = summary["machine"], summary["stack"]
    before, after = summary["load_average"]["before"], summary["load_average"]["after"]
    lines = [
        f"# Load: {args.profile} ({'PASSED' if summary['passed'] else 'FAILED'})",
        "",
        f"- started {summary['started_at']}, {summary['seconds']} s, against {summary['url']}",
        f"- machine: {machine['cpus']} CPUs ({machine['cpu_model']}), Python {machine['python']}; "
        f"load average {before[0]:.2f} before, {after[0]:.2f} after (1 min; other work on the machine "
        "counts too)",
        f"- CPU seconds used during the run: {summary['cpu_seconds']}",
    ]
    if stack.get("own_stack"):
        lines.append(
            f"- a local stack started for this run (in {stack['startup_s']} s), fake OpenAI at "
            f"{stack['token_latency_ms']:g} ms per token; per-IP rate limits lifted "
            f"({', '.join(f'{k}={v}' for k, v in stack['stack_env'].items())}) because every simulated "
            "user sends from 127.0.0.1; no quotas set"
        )
    else:
        lines.append("- against a running stack: its own rate limits and quotas apply")
    if args.profile == "capacity":
        lines.append(
            f"- steps of {args.step_seconds:g} s (first {args.settle_seconds:g} s not measured), from "
            f"{args.start_rate:g} req/s by {args.step_rate:g}; a step holds with p95 < {t.p95_ms:g} ms, "
            f"errors < {100 * t.error_ratio:g} % and at least {100 * HELD_RATE_FRACTION:g} % of the rate"
        )
        lines += ["", report.steps_table(summary["steps"]), ""]
        held = [s for s in summary["steps"] if s.held]
        if held:
            best = held[-1]
            lines.append(
                f"**Highest chat rate held: {best.target_rate:g} req/s** (achieved "
                f"{best.figures.rate:.1f} req/s, p95 {best.figures.p95_ms:.0f} ms)"
            )
        else:
            lines.append("**No rate held.**")
    else:
        stages = ", ".join(f"{s:g} s → {u}" for s, u in args.stage_list)
        lines.append(f"- stages (users): {stages}; think time {args.think} s")
        lines.append(
            f"- thresholds on {summary['judged']}: p95 < {t.p95_ms:g} ms, errors < {100 * t.error_ratio:g} %"
        )
    lines += ["", report.figures_table(rows), ""]
    return "\n".join(lines)


# -- setup helpers ------------------------------------------------------------------------------------------
def _admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {CONFIG.admin_token}"}


def _session(source_ip: str | None) -> requests.Session:
    session = requests.Session()
    if source_ip:
        adapter = requests.adapters.HTTPAdapter()
        adapter.poolmanager = PoolManager(source_address=(source_ip, 0))
        session.mount("http://", adapter)
    return session


def _create_agent(http: requests.Session, base_url: str) -> str:
    """The agent `test_agent` talks to (deleted after the run)."""
    r = http.post(
        f"{base_url}/admin/agents",
        json={"name": f"load-test-{uuid.uuid4().hex[:8]}", "api_type": "responses"},
        headers=_admin_headers(),
        timeout=ADMIN_TIMEOUT_S,
    )
    r.raise_for_status()
    return str(r.json()["data"]["id"])


def _warm_up(http: requests.Session, base_url: str, profile: str) -> None:
    """One of each request first, unmeasured: the functions import their SDKs on first use (cold start)."""
    http.post(f"{base_url}/chat", json={"message": "warm up", "stream": False}, timeout=CHAT_TIMEOUT_S)
    http.get(f"{base_url}/chat", params={"message": "warm up"}, timeout=CHAT_TIMEOUT_S)
    if profile == "standard":
        http.post(
            f"{base_url}/admin-api.php/test_agent?id={CONFIG.agent_id}",
            json={"message": "warm up"},
            headers=_admin_headers(),
            timeout=AGENT_TEST_TIMEOUT_S,
        )
        for action in ADMIN_READS:
            http.get(f"{base_url}/admin-api.php/{action}", headers=_admin_headers(), timeout=ADMIN_TIMEOUT_S)


def _cpu(stack_info: dict[str, Any]) -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = {"load generator": usage.ru_utime + usage.ru_stime}
    stack = [report.cpu_seconds(p) for p in stack_info.get("stack_pids", [])]
    if stack and all(s is not None for s in stack):
        seconds["stack (gateway + emulator)"] = sum(s for s in stack if s is not None)
    fake = stack_info.get("fake_openai_pid")
    fake_cpu = report.cpu_seconds(fake) if fake else None
    if fake_cpu is not None:
        seconds["fake OpenAI (+ log collector)"] = fake_cpu
    return seconds


# -- response checks ----------------------------------------------------------------------------------------
def _json(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _stream_problem(status: int, text: str) -> str | None:
    """What is wrong with a widget-protocol stream, if anything: it must end `done` then `close`."""
    if status != 200:
        return f"HTTP {status}: {text[:200]}"
    types = []
    for line in text.splitlines():
        if line.startswith("data: "):
            types.append(_json(line[6:]).get("type"))
    if "error" in types:
        return "error frame in the stream"
    if "done" not in types:
        return "no done frame"
    if not text.endswith("event: close\n\n"):
        return "stream did not end with close"
    return None
