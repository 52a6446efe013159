"""`FakeOpenAI`: the app served by uvicorn on 127.0.0.1 from a background thread, plus a steering API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from .app import create_app, quiet_exception
from .settings import FakeOpenAISettings
from .state import FakeState
from .webhooks import build_event, send_webhook


class _QuietFilter(logging.Filter):
    """Drops uvicorn's crash report for connections the fake drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and quiet_exception(record.exc_info[1]))


_quiet_installed = False


def _install_quiet_filter() -> None:
    global _quiet_installed
    if not _quiet_installed:
        logging.getLogger("uvicorn.error").addFilter(_QuietFilter())
        _quiet_installed = True


class FakeOpenAI:
    """A fake OpenAI API on 127.0.0.1.

    >>> with FakeOpenAI(token_latency_ms=0) as fake:
    ...     client = openai.OpenAI(api_key="sk-test", base_url=fake.api_base)

    Settings not given here come from `FAKE_OPENAI_*` variables (see `FakeOpenAISettings`).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        *,
        token_latency_ms: float | None = None,
        ingest_delay_s: float | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        **settings: Any,
    ) -> None:
        given = {
            "token_latency_ms": token_latency_ms,
            "ingest_delay_s": ingest_delay_s,
            "webhook_url": webhook_url,
            "webhook_secret": webhook_secret,
            **settings,
        }
        self.settings = FakeOpenAISettings(**{k: v for k, v in given.items() if v is not None})
        self.state = FakeState(self.settings)
        self.app = create_app(self.state)
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` (give the SDK `api_base`, which adds `/v1`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + "/v1"

    def start(self, timeout: float = 10.0) -> str:
        """Serve in a background thread; returns `base_url` once the server accepts connections."""
        if self._thread is not None:
            return self.base_url
        _install_quiet_filter()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._serve, args=(config, sock), name="fake-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake OpenAI did not start on {self.host}:{self.port}")
            time.sleep(0.005)
        return self.base_url

    def _serve(self, config: uvicorn.Config, sock: socket.socket) -> None:
        assert self._server is not None
        server = self._server

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=[sock])

        try:
            with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
                runner.run(main())
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: pending sleeps (latency, timeout faults) end at once, then the thread exits."""
        server, thread, loop = self._server, self._thread, self._loop
        if server is None or thread is None:
            return

        def begin_shutdown() -> None:
            self.state.stopping.set()
            server.should_exit = True

        if loop is not None and not loop.is_closed():
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(begin_shutdown)
        else:
            server.should_exit = True
        thread.join(timeout)
        self._server = self._thread = self._loop = None

    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- steering and inspection ---------------------------------------------------------

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Recorded `/v1` requests, oldest first: method, path, query, headers (no authorization), body,
        fault."""
        return self.state.recorded()

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return self.state.recorded(path)

    def clear(self) -> None:
        """Forget recorded requests."""
        self.state.clear_requests()

    def reset(self) -> None:
        """Forget requests, queued faults and replies, files, vector stores, responses, webhook deliveries."""
        self.state.reset()

    def queue_faults(self, *faults: str, path: str | None = None) -> None:
        """Faults for the next matching `/v1` requests, one each, in order (`"none"` skips a request)."""
        self.state.queue_faults(list(faults), path)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def set_reply(self, text: str | None) -> None:
        """Reply with exactly `text` from now on (None: back to the echo)."""
        self.state.set_reply(text)

    def queue_replies(self, *texts: str) -> None:
        """Replies for the next model calls, one each, before the sticky reply or the echo."""
        self.state.queue_replies(list(texts))

    def configure(self, **settings: Any) -> None:
        """Change settings while serving (validated, e.g. `configure(token_latency_ms=20)`)."""
        for key, value in settings.items():
            setattr(self.state.settings, key, value)

    @property
    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Webhooks the fake sent: url, event, status (None when the target was unreachable)."""
        return self.state.deliveries()

    def send_webhook(
        self, url: str, event_type: str, data: dict[str, Any], secret: str | None = None
    ) -> httpx.Response:
        """Sign and POST an event to `url` from the calling thread (secret defaults to the configured one)."""
        if secret is None:
            configured = self.settings.webhook_secret
            if configured is None:
                raise ValueError("no webhook secret given or configured")
            secret = configured.get_secret_value()
        event = build_event(event_type, data)
        response = send_webhook(url, event, secret)
        self.state.record_delivery(url, event, response.status_code)
        return response
