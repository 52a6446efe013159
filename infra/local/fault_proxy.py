"""A fault-injecting HTTP proxy between AWS clients and the emulator, for fault tests without mocks.

Clients only see a different AWS_ENDPOINT_URL (`proxy.url`); every request is forwarded to the emulator as it
is, unless a rule told at run time picks it for a fault:

    with FaultProxy(emulator.url) as proxy:
        proxy.inject(service="dynamodb", fault="throttle", rate=0.3, operations={"UpdateItem"})
        ...
        proxy.clear()

The service comes from the SigV4 credential scope (`Credential=<key>/<date>/<region>/<service>/...`), the
operation from `X-Amz-Target` (`DynamoDB_20120810.UpdateItem` -> `UpdateItem`) or, for REST services such
as S3, the HTTP method (`PUT`, `GET`...). Faults, each in the wire shape the service's botocore protocol
parses:

- `throttle`: DynamoDB `ProvisionedThroughputExceededException` (400); SQS (JSON protocol, query-compatible)
  `ThrottlingException` with `x-amzn-query-error: RequestThrottled`; other JSON services
  `ThrottlingException`; S3 `SlowDown` (503).
- `error`: a 500 (`InternalServerError`, S3 `InternalError`).
- `deny`: `AccessDeniedException` (400; S3 `AccessDenied`, 403), as when a role lost a permission: botocore
  does not retry it.
- `slow`: wait `delay` seconds, then forward.
- `drop`: close the connection without answering, before forwarding (the request never happened).
- `drop_after`: forward, then close without answering (the request happened; the client cannot know).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

FAULTS = ("throttle", "error", "deny", "slow", "drop", "drop_after")
_SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}
_OWN = _HOP_BY_HOP | {"server", "date"}  # this proxy's own answer says these
# botocore's JSON protocol version per service (the Content-Type of an error it parses).
_JSON_VERSION = {"dynamodb": "1.0", "sqs": "1.0", "secretsmanager": "1.1"}
_ERRORS = {
    "throttle": (400, "ThrottlingException"),
    "error": (500, "InternalServerError"),
    "deny": (400, "AccessDeniedException"),
}
_S3_ERRORS = {"throttle": (503, "SlowDown"), "error": (500, "InternalError"), "deny": (403, "AccessDenied")}


@dataclass
class Rule:
    service: str
    fault: str
    rate: float
    operations: frozenset[str] = frozenset()  # empty: every operation
    delay: float = 1.0

    def matches(self, service: str, operation: str) -> bool:
        return self.service in (service, "*") and (not self.operations or operation in self.operations)


@dataclass
class FaultProxy:
    upstream: str
    host: str = "127.0.0.1"
    seed: int | None = None
    rules: list[Rule] = field(default_factory=list)
    injected: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (service, operation, fault)
    forwarded: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "proxy not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def inject(
        self,
        *,
        service: str,
        fault: str,
        rate: float = 1.0,
        operations: set[str] | None = None,
        delay: float = 1.0,
    ) -> None:
        """Add a rule: `rate` of the requests of `service` ("*": any) and `operations` get `fault`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        with self._lock:
            self.rules.append(Rule(service, fault, rate, frozenset(operations or ()), delay))

    def clear(self) -> None:
        """Stop injecting (the counts stay)."""
        with self._lock:
            self.rules.clear()

    def reset(self, seed: int | None = None) -> None:
        """Stop injecting, forget the counts and start the sampling afresh (from `seed`, or the proxy's):
        a single-threaded client then meets the same faults on every run."""
        with self._lock:
            self.rules.clear()
            self.injected.clear()
            self.forwarded = 0
            self._random = random.Random(self.seed if seed is None else seed)

    def count(self, fault: str | None = None, service: str | None = None) -> int:
        """How many faults were injected so far (of one kind, for one service)."""
        with self._lock:
            return sum(
                n
                for (svc, _, kind), n in self.injected.items()
                if fault in (None, kind) and service in (None, svc)
            )

    def pick(self, service: str, operation: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(service, operation) and self._random.random() < rule.rate:
                    key = (service, operation, rule.fault)
                    self.injected[key] = self.injected.get(key, 0) + 1
                    return rule
            self.forwarded += 1
            return None

    def start(self, port: int = 0) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = _Server((self.host, port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fault-proxy").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client or the emulator gone is not news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the test output

    def _any(self) -> None:
        body = self._read_body()
        scope = _SCOPE.search(self.headers.get("Authorization", "") + self.path)
        service = scope.group(1) if scope else "unknown"
        target = self.headers.get("X-Amz-Target", "")
        operation = target.rpartition(".")[2] if target else self.command
        rule = self.owner.pick(service, operation)
        if rule is not None and rule.fault in ("throttle", "error", "deny"):
            return self._error(service, rule.fault)
        if rule is not None and rule.fault == "drop":
            self.close_connection = True
            return None
        if rule is not None and rule.fault == "slow":
            time.sleep(rule.delay)
        try:
            status, headers, answer = self._forward(body)
        except OSError:  # the emulator is gone (stopping): answer as a gateway would
            return self._send(502, [("Content-Type", "text/plain")], b"emulator unreachable")
        if rule is not None and rule.fault == "drop_after":
            self.close_connection = True
            return None
        self._send(status, headers, answer)
        return None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _any

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urlsplit(self.owner.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _error(self, service: str, fault: str) -> None:
        status, code = _ERRORS[fault]
        headers: list[tuple[str, str]] = []
        if service == "s3":
            status, code = _S3_ERRORS[fault]
            body = f"<Error><Code>{code}</Code><Message>injected by fault_proxy</Message></Error>".encode()
            headers.append(("Content-Type", "application/xml"))
            return self._send(status, headers, body)
        if fault == "throttle" and service == "dynamodb":
            code = "ProvisionedThroughputExceededException"
        if service == "sqs":  # query-compatible: botocore takes the code from this header
            query_code = {"ThrottlingException": "RequestThrottled", "AccessDeniedException": "AccessDenied"}
            headers.append(("x-amzn-query-error", f"{query_code.get(code, code)};Sender"))
        headers.append(("Content-Type", f"application/x-amz-json-{_JSON_VERSION.get(service, '1.0')}"))
        body = json.dumps({"__type": f"com.amazonaws.{service}#{code}", "message": "injected by fault_proxy"})
        return self._send(status, headers, body.encode())

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            # A HEAD answer's Content-Length is the size of what GET would return: keep the emulator's.
            if key.lower() not in _OWN and (key.lower() != "content-length" or self.command == "HEAD"):
                self.send_header(key, value)
        if self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def parse_rule(text: str) -> dict[str, Any]:
    """`SERVICE:FAULT[:RATE[:OPERATION,...]]`, e.g. `dynamodb:throttle:0.3:PutItem,UpdateItem`."""
    service, fault, *rest = text.split(":")
    rule: dict[str, Any] = {"service": service, "fault": fault}
    if rest:
        rule["rate"] = float(rest[0])
    if len(rest) > 1:
        rule["operations"] = set(rest[1].split(","))
    return rule


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m infra.local.fault_proxy",
        description="Forward AWS requests to the emulator, failing chosen ones. Point a client's "
        "AWS_ENDPOINT_URL at the printed URL.",
    )
    parser.add_argument("--upstream", required=True, help="the emulator's URL (the make run banner's)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--fault", action="append", default=[], metavar="SERVICE:FAULT[:RATE[:OPS]]", help=f"one of {FAULTS}"
    )
    parser.add_argument("--delay", type=float, default=1.0, help="seconds a `slow` fault waits")
    args = parser.parse_args(argv)
    proxy = FaultProxy(args.upstream)
    for text in args.fault:
        proxy.inject(**parse_rule(text), delay=args.delay)
    proxy.start(args.port)
    print(f"fault proxy on {proxy.url} -> {args.upstream}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        proxy.stop()
        print(f"injected: {proxy.count()}, forwarded: {proxy.forwarded}", flush=True)


if __name__ == "__main__":
    main()
