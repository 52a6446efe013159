"""A fake OpenAI API for the local stack and the tests (see `server.py`, `faults.py`, `generation.py`)."""

from .app import create_app
from .faults import Fault
from .server import FakeOpenAI
from .settings import FakeOpenAISettings
from .state import FakeState
from .webhooks import build_event, new_webhook_secret, send_webhook, sign_webhook

__all__ = [
    "FakeOpenAI",
    "FakeOpenAISettings",
    "FakeState",
    "Fault",
    "build_event",
    "create_app",
    "new_webhook_secret",
    "send_webhook",
    "sign_webhook",
]
