"""Rotation of the admin token: the four Secrets Manager rotation steps, and `rotate_now` to run them here.

The steps follow AWS's rotation template and are idempotent per `ClientRequestToken` (the new version's id),
so Secrets Manager may retry any of them:
- createSecret: store a new random token as AWSPENDING under the token's version id, unless already there;
- setSecret: nothing — the token is only ever checked against this secret, no other system holds a copy;
- testSecret: the pending value is readable and well-formed;
- finishSecret: move AWSCURRENT to the new version (Secrets Manager moves AWSPREVIOUS to the old one) and
  forget cached values, so the old token stops working here at once and in other containers within the
  cache time (unless a grace period keeps AWSPREVIOUS valid).
On AWS the RotationFunction runs them on the secret's schedule. `rotate_now` runs them in-process, for the
`rotate_admin_token` admin action and locally, where the emulator's RotateSecret cannot invoke a Lambda.
"""

from __future__ import annotations

import re
import secrets as random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chatbot import aws, clock, secrets
from chatbot.errors import ChatbotError, ServiceUnavailable
from chatbot.observability import get_logger, log_event

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
# Tokens we generate are 64 hex characters; the template's first token is 64 alphanumerics.
_WELL_FORMED = re.compile(r"^[A-Za-z0-9]{32,256}$")


class RotationFailed(ChatbotError):
    status, code, default_message = 500, "rotation_failed", "Token rotation failed"


@dataclass(frozen=True)
class Rotated:
    version_id: str
    token: str
    rotated_at: str


def new_token() -> str:
    return random.token_hex(32)


def run_step(secret_id: str, token: str, step: str) -> None:
    """One step as the rotation Lambda receives it; checks the version is the one being rotated first."""
    if step not in STEPS:
        raise RotationFailed(f"Unknown rotation step: {step[:40]}")
    # RotationEnabled is not required: the same steps also run in-process (rotate_now, the local stack)
    # on secrets without a rotation configuration.
    stages = _describe(secret_id)["VersionIdsToStages"]
    if token in stages:
        if secrets.CURRENT in stages[token]:
            log_event(_logger(), "rotation_step_skipped", step=step, reason="already_current")
            return
        if secrets.PENDING not in stages[token]:
            raise RotationFailed("Secret version is not pending rotation")
    elif step != "createSecret":
        raise RotationFailed("Secret version to rotate does not exist")
    _STEP_FUNCTIONS[step](secret_id, token)
    log_event(_logger(), "rotation_step_completed", step=step)


def rotate_now(secret_id: str) -> Rotated:
    """Run all four steps for a new version and return the new token (the only time it is shown)."""
    token = str(uuid.uuid4())
    for step in STEPS:
        run_step(secret_id, token, step)
    version = secrets.read_version(secret_id, version_id=token)
    if version is None:
        raise RotationFailed("Rotated token is not readable")
    return Rotated(version_id=token, token=version.value, rotated_at=clock.iso())


def create_secret(secret_id: str, token: str) -> None:
    if secrets.read_version(secret_id) is None:
        raise RotationFailed("Secret has no current version")
    if secrets.read_version(secret_id, stage=secrets.PENDING, version_id=token) is not None:
        return
    _call(
        "put_secret_value",
        SecretId=secret_id,
        ClientRequestToken=token,
        SecretString=new_token(),
        VersionStages=[secrets.PENDING],
    )


def set_secret(secret_id: str, token: str) -> None:
    """Nothing to do: no database or third party holds the admin token; this secret is its only home."""


def test_secret(secret_id: str, token: str) -> None:
    pending = secrets.read_version(secret_id, stage=secrets.PENDING, version_id=token)
    if pending is None or not _WELL_FORMED.match(pending.value):
        raise RotationFailed("Pending token is missing or malformed")


def finish_secret(secret_id: str, token: str) -> None:
    stages = _describe(secret_id)["VersionIdsToStages"]
    current = next((v for v, s in stages.items() if secrets.CURRENT in s), None)
    if current != token:
        move: dict[str, Any] = {"MoveToVersionId": token}
        if current:
            move["RemoveFromVersionId"] = current
        _call("update_secret_version_stage", SecretId=secret_id, VersionStage=secrets.CURRENT, **move)
    if secrets.PENDING in stages.get(token, []):
        _call(
            "update_secret_version_stage",
            SecretId=secret_id,
            VersionStage=secrets.PENDING,
            RemoveFromVersionId=token,
        )
    secrets.invalidate(secret_id)


_STEP_FUNCTIONS: dict[str, Callable[[str, str], None]] = {
    "createSecret": create_secret,
    "setSecret": set_secret,
    "testSecret": test_secret,
    "finishSecret": finish_secret,
}


def _describe(secret_id: str) -> dict[str, Any]:
    return _call("describe_secret", SecretId=secret_id)  # type: ignore[no-any-return]


def _call(operation: str, **kwargs: Any) -> Any:
    try:
        return getattr(aws.client("secretsmanager"), operation)(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise ServiceUnavailable("Secret store unavailable", code="secrets_unavailable") from exc


def _logger() -> Any:
    return get_logger("chatbot")
