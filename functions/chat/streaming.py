"""An event-stream response that always finalises its frames, also when the client goes away.

Starlette abandons the body iterator when the response task is cancelled (client disconnect) while it
waits in `send`; the generator would then be closed only when garbage-collected. Closing it here, shielded
from the cancellation, makes the chat's cleanup (usage settled, `chat_failed` logged, upstream closed) run
at once and in the request's own task.
"""

from __future__ import annotations

from typing import Any

import anyio
from starlette.responses import StreamingResponse


class EventStreamResponse(StreamingResponse):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
