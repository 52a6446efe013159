"""`BackgroundServer`: uvicorn serving an ASGI app from a background thread, on a socket bound up front.

The local gateway and the emulator both run this way (the fake OpenAI has its own, which also hands out its
event loop); `read_body` and the ASGI types are theirs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The request's whole body (what arrived of it, if the client went away)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class BackgroundServer:
    """uvicorn serving `app` from a thread named `name`; `config` adds to or overrides uvicorn's settings."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 3000, *, name: str = "server", **config: Any
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.config = config
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def bind(self) -> None:
        """Bind now (raises OSError when the port is taken), so start-up fails before anything else runs."""
        if self._sock is not None:
            return
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on connections accepted from a
        # socket that names it; without it Nagle holds each response's body until the client's delayed
        # ACK, adding ~40 ms to every response on a kept-alive connection (and to SSE chunks).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        self._sock = sock
        self.port = int(sock.getsockname()[1])

    def start(self, timeout: float = 10.0) -> str:
        import uvicorn

        self.bind()
        config = uvicorn.Config(
            self.app,
            **{
                "log_config": None,
                "log_level": "warning",
                "access_log": False,
                "lifespan": "off",
                "ws": "none",
                "timeout_graceful_shutdown": 2,
                "timeout_keep_alive": 5,
                "backlog": 2048,
                **self.config,
            },
        )
        self._server = uvicorn.Server(config)
        sock = self._sock

        def serve() -> None:
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.005)
        return self.url

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._server = self._thread = self._sock = None
