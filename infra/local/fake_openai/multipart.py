"""A small multipart/form-data reader (file uploads), so the fake needs no extra dependency."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """Parts of a multipart body, byte-exact; `ValueError` when the body is not multipart."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_maintype() != "multipart" or not isinstance(boundary, str):
        raise ValueError("expected a multipart/form-data body")
    delimiter = b"--" + boundary.encode("latin-1")
    parts: list[Part] = []
    # Everything before the first delimiter is preamble, everything after the closing one is epilogue.
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removesuffix(b"\r\n")
        raw_headers, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = Message()
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if value:
                headers[key.strip()] = value.strip()
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        parts.append(Part(name, headers.get_filename(), headers.get("content-type"), data))
    return parts
