"""The fixed-window rate limiter: counting, windows, Retry-After, exact counts under concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from moto.dynamodb.responses import DynamoHandler

from chatbot.config import get_settings
from chatbot.errors import RateLimited
from chatbot.services.rate_limit import Limit, RateLimiter
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture

WINDOW_START = 1_700_000_040  # a multiple of 60


@pytest.fixture
def limiter(admin_env):  # noqa: F811
    return RateLimiter.from_settings(get_settings())


def test_hit_within_limit_counts(limiter):
    limit = Limit("t", 3, 60)
    counts = [limiter.hit(limit, "k", now=WINDOW_START + i).count for i in range(3)]
    assert counts == [1, 2, 3]
    usage = limiter.hit(Limit("t", 5, 60), "k", now=WINDOW_START + 3)
    assert usage.remaining == 1 and usage.reset_at == WINDOW_START + 60


def test_hit_over_limit_raises_with_retry_after(limiter):
    limit = Limit("t", 2, 60)
    limiter.hit(limit, "k", now=WINDOW_START)
    limiter.hit(limit, "k", now=WINDOW_START + 1)
    with pytest.raises(RateLimited) as err:
        limiter.hit(limit, "k", now=WINDOW_START + 45.5)
    assert err.value.status == 429 and err.value.retry_after == 15


def test_hit_next_window_starts_fresh(limiter):
    limit = Limit("t", 1, 60)
    limiter.hit(limit, "k", now=WINDOW_START + 59)
    with pytest.raises(RateLimited) as err:
        limiter.hit(limit, "k", now=WINDOW_START + 59.9)
    assert err.value.retry_after == 1  # never 0: a client must wait at least a second
    assert limiter.hit(limit, "k", now=WINDOW_START + 60).count == 1


def test_hit_keys_and_scopes_are_independent(limiter):
    limiter.hit(Limit("a", 1, 60), "k", now=WINDOW_START)
    assert limiter.hit(Limit("a", 1, 60), "other", now=WINDOW_START).count == 1
    assert limiter.hit(Limit("b", 1, 60), "k", now=WINDOW_START).count == 1


def test_penalize_counts_without_raising(limiter):
    limit = Limit("t", 3, 60)
    assert limiter.penalize(limit, "k", cost=10, now=WINDOW_START).count == 10
    with pytest.raises(RateLimited):
        limiter.hit(limit, "k", now=WINDOW_START)


def test_hit_is_one_write_with_ttl_after_window(limiter):
    limiter.hit(Limit("t", 5, 60), "192.0.2.1", now=WINDOW_START + 10)
    items = boto3.resource("dynamodb").Table(get_settings().rate_limits_table).scan()["Items"]
    assert len(items) == 1
    item = items[0]
    assert item["pk"] == "RL#t#192.0.2.1" and item["sk"] == str(WINDOW_START)
    assert item["count"] == 1 and WINDOW_START + 60 < item["ttl"] <= WINDOW_START + 60 + 300


@pytest.fixture
def atomic_updates(monkeypatch):
    """DynamoDB applies each UpdateItem atomically; moto's in-process backend does not under threads.

    Serializing moto's UpdateItem handler restores DynamoDB's guarantee without helping a limiter that
    reads and then writes (two calls): such a limiter would still lose counts here.
    """
    lock = threading.Lock()
    real = DynamoHandler.update_item

    def update_item(self, *args, **kwargs):
        with lock:
            return real(self, *args, **kwargs)

    monkeypatch.setattr(DynamoHandler, "update_item", update_item)


def test_hit_concurrent_increments_are_exact(limiter, atomic_updates):
    # Given N requests at once against a limit of N
    n = 40
    limit = Limit("t", n, 60)
    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = sorted(pool.map(lambda _: limiter.hit(limit, "k", now=WINDOW_START).count, range(n)))
    # Then every request got its own count and the next one is refused
    assert counts == list(range(1, n + 1))
    with pytest.raises(RateLimited):
        limiter.hit(limit, "k", now=WINDOW_START)
