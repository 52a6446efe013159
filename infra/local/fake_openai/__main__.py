"""`python -m infra.local.fake_openai --port N`: serve the fake until SIGINT/SIGTERM (or stdin closes).

Prints one JSON line `{"event": "fake_openai_ready", "port": N, "base_url": ...}` once it accepts connections.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading

from .server import FakeOpenAI

_READY = "fake_openai_ready"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.fake_openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FAKE_OPENAI_PORT", "8089")))
    parser.add_argument("--token-latency-ms", type=float, default=None)
    parser.add_argument("--ingest-delay-s", type=float, default=None)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", default=None)
    parser.add_argument("--watch-stdin", action="store_true", help="exit when stdin closes (parent gone)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    fake = FakeOpenAI(
        port=args.port,
        host=args.host,
        token_latency_ms=args.token_latency_ms,
        ingest_delay_s=args.ingest_delay_s,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    try:
        fake.start()
    except OSError as exc:
        print(f"fake_openai: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr, flush=True)
        return 2

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.watch_stdin:
        threading.Thread(target=_wait_parent_gone, args=(stop,), daemon=True).start()
    print(json.dumps({"event": _READY, "port": fake.port, "base_url": fake.base_url}), flush=True)
    stop.wait()
    fake.stop()
    sys.stdout.flush()
    # The stdin watcher thread may still block in read(); a normal interpreter exit would abort on it.
    os._exit(0)


def _wait_parent_gone(stop: threading.Event) -> None:
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.buffer.read(4096):
            pass
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
