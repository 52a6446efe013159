"""The upstream's own files (OpenAI `/files`): list, upload (base64 body), delete."""

from __future__ import annotations

from typing import Any

from chatbot.config import Settings, get_settings
from chatbot.models.acks import Ack
from chatbot.models.vector_stores import OpenAIFile, OpenAIFileList, OpenAIFileListQuery, OpenAIFileUpload
from chatbot.services.vector_stores import decode_file, guess_mime_type
from chatbot.upstream.openai_admin import OpenAIAdmin


class OpenAIFileService:
    def __init__(self, upstream: OpenAIAdmin | None = None, *, settings: Settings | None = None) -> None:
        self.upstream = upstream or OpenAIAdmin()
        self.settings = settings or get_settings()

    def list(self, query: OpenAIFileListQuery | None = None) -> OpenAIFileList:
        query = query or OpenAIFileListQuery()
        return OpenAIFileList(items=[to_file(f) for f in self.upstream.list_files(purpose=query.purpose)])

    def upload(self, data: OpenAIFileUpload) -> OpenAIFile:
        content = decode_file(data.file_data, limit=self.settings.admin_max_file_bytes)
        created = self.upstream.upload_file(
            data.name, content, purpose=data.purpose, mime_type=guess_mime_type(data.name)
        )
        return to_file(created)

    def delete(self, file_id: str) -> Ack:
        self.upstream.delete_file(file_id)
        return Ack(message="File deleted")


def to_file(remote: Any) -> OpenAIFile:
    return OpenAIFile(
        id=remote.id,
        filename=getattr(remote, "filename", None),
        bytes=getattr(remote, "bytes", None),
        purpose=getattr(remote, "purpose", None),
        status=getattr(remote, "status", None),
        created_at=getattr(remote, "created_at", None),
    )
