"""The admin API's rate limits over HTTP (the app in-process, callers from distinct source addresses): per
source IP — failed authentications count there too, so token guessing is slowed — and per credential,
whatever address it comes from; 429 `rate_limited` with `Retry-After`, on the REST and the legacy routes."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from chatbot.services.auth import AUTH_FAILURE_COST
from tests.unit._jobs_support import set_env
from tests.unit.auth_support import admin_env  # noqa: F401 - a fixture

LIMIT = 2 * AUTH_FAILURE_COST
# A long window, so the test never straddles two windows (each would start counting afresh).
WINDOW = 3600


@pytest.fixture
def client_from(admin_env, monkeypatch) -> Iterator[Callable[[str], TestClient]]:  # noqa: F811
    from chatbot.admin.app import create_app

    set_env(monkeypatch, ADMIN_RATE_LIMIT=str(LIMIT), ADMIN_RATE_WINDOW_SECONDS=str(WINDOW))
    app = create_app()
    clients: list[TestClient] = []

    def client_from(ip: str) -> TestClient:
        client = TestClient(app, client=(ip, 40000), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield client_from
    for client in clients:
        client.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_limited(response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "code": "rate_limited",
        "status": 429,
    }
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


def test_failed_authentications_rate_limit_their_source_ip(admin_env, client_from):  # noqa: F811
    guesser, neighbour = client_from("198.51.100.7"), client_from("198.51.100.8")
    # Given two wrong guesses from one address (each costs AUTH_FAILURE_COST of the IP's LIMIT)
    for path in ("/admin/me", "/admin-api.php?action=whoami"):
        assert guesser.get(path, headers=_bearer("guess")).status_code == 401

    # Then that address is refused before authentication, even with the right token, on every route style
    for path in ("/admin/me", "/admin-api.php?action=whoami", "/admin-api.php/list_agents"):
        _assert_limited(guesser.get(path, headers=_bearer(admin_env.admin_token)))
    _assert_limited(guesser.get("/admin/me", headers=_bearer("another guess")))
    # While another address is not
    assert neighbour.get("/admin/me", headers=_bearer(admin_env.admin_token)).status_code == 200


def test_a_credential_is_rate_limited_whatever_address_it_comes_from(admin_env, client_from):  # noqa: F811
    token = _bearer(admin_env.admin_token)
    # Given the admin token used LIMIT times, each time from a different address
    for i in range(LIMIT):
        assert client_from(f"192.0.2.{i + 1}").get("/admin/health", headers=token).status_code == 200

    # Then its next request is refused from a fresh address too, on the REST and the legacy routes
    fresh = client_from("192.0.2.200")
    _assert_limited(fresh.get("/admin/me", headers=token))
    _assert_limited(fresh.post("/admin-api.php/create_agent", json={"name": "x"}, headers=token))
    # While another credential from that address is not
    key = _viewer_key()
    assert fresh.get("/admin/me", headers=_bearer(key)).status_code == 200


def _viewer_key() -> str:
    """A viewer's key, made through the service (the admin token is rate limited by now)."""
    from chatbot.config import get_settings
    from chatbot.models.auth import ApiKeyCreate, UserCreate
    from chatbot.services.api_keys import ApiKeyService
    from chatbot.services.users import UserService

    settings = get_settings()
    user = UserService.from_settings(settings).create(UserCreate(email="v@example.com", role="viewer"))
    return ApiKeyService.from_settings(settings).generate(user.id, ApiKeyCreate(name="v")).key
