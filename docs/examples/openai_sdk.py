"""The OpenAI-compatible API with the official SDK: list the agents, ask one, stream a reply.

CHATBOT_URL is the API's base URL; CHATBOT_API_KEY an API key with the `chat` scope (the admin token works
too); CHATBOT_MODEL an agent's name or id. Run by tests/integration/test_docs_commands.py (docs/api.md).
"""

from __future__ import annotations

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ["CHATBOT_URL"] + "/v1",
    api_key=os.environ.get("CHATBOT_API_KEY") or os.environ["ADMIN_TOKEN"],
)
model = os.environ.get("CHATBOT_MODEL", "support")

print("agents:", [m.id for m in client.models.list()])

reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
tokens = reply.usage.total_tokens if reply.usage else None
print("reply:", reply.choices[0].message.content, "| tokens:", tokens)

print("stream:", end=" ")
for chunk in client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Hi"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print(f" | tokens: {chunk.usage.total_tokens}")
