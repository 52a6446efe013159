"""Files sent with a chat message (`file_data`): decoded, measured and identified by content.

The original trusted the client's `size` and the file name's extension. Here the decoded size is measured,
the extension must be allowed, and the bytes must look like that type (magic numbers; text must be UTF-8
without NUL bytes), so a renamed executable is refused. At most `chat_max_files` per message.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from collections.abc import Mapping
from typing import Any

from chatbot.config import Settings
from chatbot.errors import BadRequest, PayloadTooLarge
from chatbot.models.chat import ChatFile

MIME_TYPES = {
    "txt": "text/plain",
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
}
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def parse_files(raw: Any, settings: Settings) -> list[ChatFile]:
    """`file_data` (a list or one object of `{name, type?, size?, data}`) as checked files."""
    if raw in (None, "", []):
        return []
    if not settings.enable_file_upload:
        raise BadRequest("File upload not enabled", code="file_upload_disabled")
    entries = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        raise BadRequest("Invalid file data format", code="invalid_file_data")
    if len(entries) > settings.chat_max_files:
        raise BadRequest(f"Too many files (at most {settings.chat_max_files})", code="too_many_files")
    allowed = {t.strip().lower().lstrip(".") for t in settings.allowed_file_types.split(",") if t.strip()}
    return [_parse_one(entry, allowed, settings.max_file_size) for entry in entries]


def _parse_one(entry: Any, allowed: set[str], max_size: int) -> ChatFile:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("data"), str) or not entry.get("data"):
        raise BadRequest("Invalid file data format", code="invalid_file_data")
    name = os.path.basename(str(entry.get("name") or "upload")).strip()[:255] or "upload"
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in allowed or extension not in MIME_TYPES:
        raise BadRequest("File type not allowed", code="file_type_not_allowed")
    encoded = entry["data"]
    if encoded.startswith("data:") and "," in encoded:
        encoded = encoded.split(",", 1)[1]
    # Refuse before decoding: the decoded size is about 3/4 of the encoded one.
    if len(encoded) * 3 // 4 > max_size + 3:
        raise PayloadTooLarge("File size exceeds limit", code="file_too_large")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Invalid file data format: data must be base64", code="invalid_file_data") from None
    if len(data) > max_size:
        raise PayloadTooLarge("File size exceeds limit", code="file_too_large")
    if not data:
        raise BadRequest("File is empty", code="invalid_file_data")
    if not content_matches(extension, data):
        raise BadRequest("File content does not match its type", code="file_type_mismatch")
    return ChatFile(name=name, extension=extension, mime_type=MIME_TYPES[extension], data=data)


def content_matches(extension: str, data: bytes) -> bool:
    if extension == "pdf":
        return data[:1024].lstrip().startswith(b"%PDF-")
    if extension == "png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if extension in ("jpg", "jpeg"):
        return data.startswith(b"\xff\xd8\xff")
    if extension == "doc":
        return data.startswith(_OLE2)
    if extension == "docx":
        return _is_docx(data)
    if extension == "txt":
        if b"\x00" in data:
            return False
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return True
    return False


def _is_docx(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    import zipfile  # only uploads need it; keep it off the chat function's import path

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError):
        return False
    return "[Content_Types].xml" in names and any(n.startswith("word/") for n in names)
