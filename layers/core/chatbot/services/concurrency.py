"""Blocking calls (boto3) run in worker threads so several can be in flight at once.

The chat path starts its DynamoDB calls together (rate limit, history, quota) and waits for all of them;
asyncio's default executor has only `cpu + 4` threads, too few for a burst of concurrent chats, so these
calls get their own bounded pool (the boto3 connection pool allows 50 connections). Synchronous code (the
authentication gate) overlaps its calls with `in_background`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
MAX_THREADS = 48
_background = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="io")
# One limiter per event loop: its internal waiters belong to the loop that created it (tests run several).
_limiters: dict[int, anyio.CapacityLimiter] = {}


def _get_limiter() -> anyio.CapacityLimiter:
    loop_id = id(asyncio.get_running_loop())
    limiter = _limiters.get(loop_id)
    if limiter is None:
        limiter = anyio.CapacityLimiter(MAX_THREADS)
        _limiters.clear()
        _limiters[loop_id] = limiter
    return limiter


async def run_io(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a worker thread."""
    call = functools.partial(fn, *args, **kwargs) if kwargs else (lambda: fn(*args))
    return await anyio.to_thread.run_sync(call, limiter=_get_limiter())


def in_background(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Start `fn(*args)` in a worker thread, for synchronous code; `.result()` waits for it (and raises)."""
    return _background.submit(fn, *args)


def start_io(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Task[T]:
    """Start `fn` in a worker thread now; await the task when the result is needed."""
    return asyncio.ensure_future(run_io(fn, *args, **kwargs))


async def shielded(coro: Any) -> Any:
    """Await `coro` even while the surrounding task is being cancelled (a client that went away must not
    leave a reservation unsettled or a log line unwritten)."""
    with anyio.CancelScope(shield=True):
        return await coro
