"""`python -m tests.load` (`make load`): load profiles against a local stack; report in `.artifacts/load/`.

Without `--url` a local stack is started for the run (`infra.local.harness.StackProcess`: gateway, emulator,
pollers, with the fake OpenAI in this process at `--token-latency-ms` per token) with the per-IP rate limits
lifted, since every simulated user comes from 127.0.0.1; the admin token is the stack's. With `--url` the
stack is yours (admin token in `ADMIN_TOKEN`; its rate limits apply). Only loopback addresses are accepted:
this is not a tool for loading someone else's server.

Exit status: 0 when the thresholds held (capacity: when at least the first rate held), 1 when not,
2 for a usage error.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
INFO_VARIABLE = "LOAD_STACK_INFO"
# Every simulated user shares one address: the per-IP limits (60 chat and 300 admin requests a minute by
# default) would measure the limiter, not the stack. Quotas exist only where an admin sets one.
LIFTED_LIMITS = {"CHAT_RATE_LIMIT": "1000000", "ADMIN_RATE_LIMIT": "1000000"}
# The original's k6 stages (seconds, target users): ramp to 10, hold, ramp to 20, hold, ramp down.
ORIGINAL_STAGES = "30:10,60:10,30:20,60:20,30:0"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("standard", "streaming", "capacity"), default="standard")
    parser.add_argument("--url", help="a running stack on a loopback address (default: start one)")
    parser.add_argument("--out", type=Path, default=ROOT / ".artifacts" / "load", help="report folder")
    parser.add_argument("--stages", default=ORIGINAL_STAGES, help="SECONDS:USERS,... (standard, streaming)")
    parser.add_argument(
        "--time-scale", type=float, default=0.7, help="multiply stage durations (0.7: a 2.5 min run)"
    )
    parser.add_argument("--think", default="1:4", help="think time between iterations, MIN:MAX seconds")
    parser.add_argument("--token-latency-ms", type=float, default=10.0, help="fake OpenAI delay per token")
    parser.add_argument("--p95-ms", type=float, default=2000.0, help="threshold: p95 below this")
    parser.add_argument("--max-error-ratio", type=float, default=0.05, help="threshold: errors below this")
    parser.add_argument("--start-rate", type=float, default=5.0, help="capacity: first chat rate (req/s)")
    parser.add_argument("--step-rate", type=float, default=5.0, help="capacity: rate added per step")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="capacity: length of a step")
    parser.add_argument("--settle-seconds", type=float, default=5.0, help="capacity: unmeasured start")
    parser.add_argument("--max-rate", type=float, default=100.0, help="capacity: stop after this rate")
    parser.add_argument("--source-ip", help="send from this loopback address (e.g. 127.0.0.7)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first requests")
    args = parser.parse_args(argv)
    try:
        args.stage_list = parse_stages(args.stages, args.time_scale)
        low, high = (float(x) for x in args.think.split(":"))
        args.think_range = (low, high)
    except ValueError as exc:
        parser.error(str(exc))
    if args.url is not None and not is_loopback(urlsplit(args.url).hostname or ""):
        parser.error(f"--url must be a loopback address (127.0.0.1, ::1, localhost), not {args.url}")
    if args.source_ip is not None and not is_loopback(args.source_ip):
        parser.error("--source-ip must be a loopback address")
    return args


def parse_stages(spec: str, scale: float) -> list[tuple[float, int]]:
    stages = []
    for part in spec.split(","):
        seconds, users = part.split(":")
        stages.append((float(seconds) * scale, int(users)))
    if not stages or any(s <= 0 or u < 0 for s, u in stages):
        raise ValueError(f"bad --stages {spec!r}: SECONDS:USERS with SECONDS > 0")
    return stages


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.url is not None:
        if not os.environ.get("ADMIN_TOKEN"):
            print("ADMIN_TOKEN must hold the stack's admin token", file=sys.stderr)
            return 2
        from tests.load.driver import run  # imports Locust, which patches this interpreter

        return run(args, json.loads(os.environ.get(INFO_VARIABLE) or "{}"))
    return run_with_local_stack(args, argv)


def run_with_local_stack(args: argparse.Namespace, argv: list[str]) -> int:
    from infra.local.harness import StackProcess

    print(f"starting a local stack (limits lifted: {LIFTED_LIMITS}) ...", flush=True)
    with StackProcess(env=LIFTED_LIMITS) as stack:
        stack.fake_openai.configure(token_latency_ms=args.token_latency_ms)
        assert stack.proc is not None
        info = {
            "own_stack": True,
            "stack_env": LIFTED_LIMITS,
            "token_latency_ms": args.token_latency_ms,
            "startup_s": round(stack.startup_s or 0.0, 1),
            # CPU accounting: the gateway process and its emulator child; the fake OpenAI runs here.
            "stack_pids": [stack.proc.pid, *_children(stack.proc.pid)],
            "fake_openai_pid": os.getpid(),
        }
        env = {**os.environ, "ADMIN_TOKEN": stack.admin_token, INFO_VARIABLE: json.dumps(info)}
        print(f"stack ready at {stack.base_url} in {info['startup_s']} s; running {args.profile}", flush=True)
        command = [sys.executable, "-m", "tests.load", *argv, "--url", stack.base_url]
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


if __name__ == "__main__":
    sys.exit(main())
