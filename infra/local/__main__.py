"""`python -m infra.local` (what `make run` starts): the whole platform on this machine until Ctrl-C.

Environment: HOST, PORT (gateway, default 127.0.0.1:3000), EMULATOR_PORT (default 5100), ADMIN_TOKEN (use
this admin token instead of the generated one), OPENAI_API_KEY (use OpenAI instead of the fake),
LOCAL_POLLERS (poller threads per queue, default 2), LOCAL_SCHEDULE_SCALE (60: a minute lasts a second),
LOCAL_SCHEDULES=off, LOCAL_LOG_LEVEL, LOCAL_SNAPSHOTS (the tables are restored from the newest snapshot
on start and saved on stop, in .local/snapshots; a folder, or off).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def _parameter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected Key=Value, got {text!r}")
    return key, value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local",
        description="Run the chatbot platform locally: AWS emulator, template resources, gateway, workers.",
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--host", default=None, help="gateway host (default $HOST or 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="gateway port (default $PORT or 3000; 0 = any free)"
    )
    parser.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        help="moto server port (default $EMULATOR_PORT or 5100; 0 = any)",
    )
    parser.add_argument("--template", default=None, help="SAM template (default template.yaml)")
    parser.add_argument("--no-fake-openai", action="store_true", help="do not start the fake OpenAI server")
    parser.add_argument("--stack-name", default="chatbot-local")
    parser.add_argument(
        "--parameter",
        type=_parameter,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter override (repeatable; Stage=local is the default)",
    )
    parser.add_argument(
        "--ready-file", default=None, help="write URLs and the admin token as JSON here when ready"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # `import httpx` (the fake OpenAI, the openai SDK) also imports httpx's command-line client when its
    # extras (rich, click, pygments) are installed, as dev tools pull them in: ~0.2 s of start-up for a
    # CLI this process never runs. A None entry makes that optional import fail, as httpx allows.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from infra.local.stack import LocalStack, StartupError, configure_logging

    configure_logging()
    stack = LocalStack(
        template=args.template,
        host=args.host,
        port=args.port,
        emulator_port=args.emulator_port,
        fake_openai=not args.no_fake_openai,
        stack_name=args.stack_name,
        parameters=dict(args.parameter),
    )
    # The handlers only record the signal. Not threading.Event.set(): a second signal arriving quickly (a
    # double Ctrl-C; a SIGTERM to make's whole process group) runs the handler inside its first run, and
    # Event.set() would then wait forever for the lock that first run holds.
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    try:
        stack.start()
    except StartupError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 130
    print(stack.banner(), flush=True)
    if args.ready_file:
        # Written once when serving and again when every resource exists ("complete": true).
        _write_ready(Path(args.ready_file), stack.ready_info())

        def complete() -> None:
            if stack.wait_provisioned(120):
                _write_ready(Path(args.ready_file), stack.ready_info())

        threading.Thread(target=complete, daemon=True).start()
    try:
        while not signals:
            # A short sleep, not an endless wait: Python runs handlers in the main thread only, and a signal
            # the kernel gives to another thread does not interrupt a wait here.
            time.sleep(0.2)
    finally:
        print("stopping the local stack ...", file=sys.stderr, flush=True)
        stack.stop()
    return 0


def _write_ready(path: Path, info: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)  # readers never see half a file


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # Daemon threads (SSE streams, uvicorn) may hold locks; interpreter shutdown must not wait on them.
    os._exit(code)
