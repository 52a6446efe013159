"""Shared core of the chatbot platform: settings, models, repositories, services and the OpenAI gateway.

Handlers in `functions/` import from here; this package never imports from `functions` or `infra`.
"""
