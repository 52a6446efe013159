"""Secrets Manager rotation Lambda for the admin token: one rotation step per invocation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from chatbot.observability import get_logger
from chatbot.services import token_rotation

logger = get_logger("rotation")


class RotationEvent(BaseModel):
    SecretId: str
    ClientRequestToken: str
    Step: Literal["createSecret", "setSecret", "testSecret", "finishSecret"]


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> None:
    rotation = RotationEvent.model_validate(event)
    logger.append_keys(step=rotation.Step, version_id=rotation.ClientRequestToken)
    token_rotation.run_step(rotation.SecretId, rotation.ClientRequestToken, rotation.Step)
