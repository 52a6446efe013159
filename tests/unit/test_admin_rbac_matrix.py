"""The RBAC matrix: every action of the admin action table, every kind of caller, every route style.

The actions are read from the table itself (`chatbot.admin.actions` is imported whole), so an action added
anywhere is in the matrix without touching this file. For each action and caller:
- no credentials, a wrong token, an expired key, a revoked key, a deactivated user's key: 401 with the
  code saying why (checked before anything else, so the inputs do not matter; REST route);
- viewer, admin, super-admin keys and the admin token: 403 `forbidden` when the role lacks the action's
  permission; otherwise anything but 401/403 (valid-ish inputs built from the action's models may still
  fail with 400/404/409/422 — the point is the gate) and never a 5xx;
- "self or P" actions are called twice for a caller without P: about someone else (403) and about
  themselves (allowed).
Role callers go through the REST route and one legacy form each (`?action=` and `/NAME` alternate), so every
action is checked in all three styles.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chatbot.admin.app import load_actions
from chatbot.admin.framework import Action, actions
from chatbot.models.auth import ROLE_PERMISSIONS
from infra.local.fake_openai import FakeOpenAI
from tests.unit.admin_api_support import (
    BAD_CREDENTIALS,
    ROLE_CALLERS,
    World,
    admin_world,
    sample_inputs,
)

load_actions()
ACTION_NAMES = sorted(a.name for a in actions)
LEGACY_STYLES = ("query", "path")
GRANTED_CALLERS = {**ROLE_CALLERS, "admin_token": "super-admin"}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with FakeOpenAI(token_latency_ms=0) as fake, admin_world(fake.api_base) as w:
        yield w


def test_matrix_covers_the_whole_action_table():
    load_actions()  # again: nothing imported since collection may add an action the matrix lacks
    assert sorted(a.name for a in actions) == ACTION_NAMES
    assert len(ACTION_NAMES) >= 50


@pytest.mark.parametrize("name", ACTION_NAMES)
def test_each_caller_gets_the_status_its_credentials_and_role_allow(world, name):
    action = actions.get(name)
    assert action is not None
    params, body = sample_inputs(action)
    wrong: list[str] = []

    for caller, code in BAD_CREDENTIALS.items():
        response = world.call(name, "rest", caller=caller, ids=params, body=body)
        _expect(wrong, "rest", caller, "", response, 401, code)
    for i, (caller, role) in enumerate(GRANTED_CALLERS.items()):
        granted = action.access.permission in ROLE_PERMISSIONS[role]  # type: ignore[index]
        # REST, and one legacy form per caller, alternating: each action is checked in all three.
        for style in ("rest", LEGACY_STYLES[i % 2]):
            if action.access.subject is None:
                response = world.call(name, style, caller=caller, ids=params, body=body)
                _expect(wrong, style, caller, "", response, None if granted else 403, "forbidden")
                continue
            ids, data = _about(world, action, params, body, "someone else")
            response = world.call(name, style, caller=caller, ids=ids, body=data)
            status = None if granted else 403
            _expect(wrong, style, caller, "about someone else", response, status, "forbidden")
            if caller != "admin_token":  # the admin token is nobody: it has no records of its own
                ids, data = _about(world, action, params, body, caller)
                response = world.call(name, style, caller=caller, ids=ids, body=data)
                _expect(wrong, style, caller, "about themselves", response, None, None)

    assert wrong == [], f"{name} ({action.access.describe()}):\n" + "\n".join(wrong)


def _expect(
    wrong: list[str], style: str, caller: str, case: str, response: Any, status: int | None, code: str | None
) -> None:
    """`status` None: allowed through the gate — neither 401 nor 403, and no server error."""
    got = response.status_code
    if status is None:
        ok = got not in (401, 403) and got < 500
        want = "not 401/403/5xx"
    else:
        ok = got == status and response.json()["error"]["code"] == code
        want = f"{status} {code}"
    if not ok:
        wrong.append(f"  {style:5} {caller:16} {case:18} want {want}, got {got} {response.text[:200]}")


def _about(
    world: World, action: Action, params: dict[str, str], body: dict[str, Any] | None, whom: str
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The inputs of a "self or P" action pointed at `whom`: ids name their user (or, for API key actions,
    one of their keys); an optional `user_id` in the body too."""
    if whom == "someone else":
        user_id, key_id = world.bystander_id, world.bystander_key_id
    else:
        user_id = world.callers[whom].user_id or ""
        key_id = world.new_key(user_id)[0]  # a spare: revoking it must not lock the caller out
    ids = dict(params)
    fields = set(action.params.model_fields) if action.params is not None else set()
    if "id" in fields:
        ids["id"] = key_id if action.resource == "api_key" else user_id
    if "user_id" in fields:
        ids["user_id"] = user_id
    data = dict(body) if body is not None else None
    if data is not None and action.body is not None and "user_id" in action.body.model_fields:
        data["user_id"] = user_id
    return ids, data
