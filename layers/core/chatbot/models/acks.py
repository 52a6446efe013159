"""Small reply shapes the original's admin scripts rely on (`{success, message}`, `{synced, message}`)."""

from __future__ import annotations

from pydantic import BaseModel


class Ack(BaseModel):
    success: bool = True
    message: str


class SyncResult(BaseModel):
    synced: int
    message: str
