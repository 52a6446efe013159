"""Request validation of `/chat`: the original's rules with proper status codes; file uploads."""

from __future__ import annotations

import base64
import io
import zipfile

import pytest

from chatbot.config import Settings
from chatbot.errors import BadRequest, PayloadTooLarge
from chatbot.services.chat import parse_chat_request
from chatbot.services.uploads import content_matches, parse_files

_REQUIRED = (
    "agents_table prompts_table vector_stores_table conversations_table jobs_table audit_table users_table "
    "api_keys_table webhook_events_table rate_limits_table usage_table jobs_queue_url jobs_dlq_url "
    "admin_token_secret_id openai_secret_id webhook_secret_id backup_bucket"
)
_TABLES = {name: name for name in _REQUIRED.split()}


def settings(**overrides) -> Settings:
    return Settings(**_TABLES, **overrides)


def parse(raw, method="POST", **overrides):
    return parse_chat_request(raw, method=method, settings=settings(**overrides))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- message -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "code", "message"),
    [
        ({}, "message_required", "Message is required"),
        ({"message": ""}, "message_required", "Message is required"),
        ({"message": "   \n"}, "message_empty", "Message cannot be empty"),
        ({"message": 42}, "invalid_message", "Message must be a string"),
        ({"message": "x" * 4001}, "message_too_long", "Message too long (at most 4000 characters)"),
    ],
)
def test_parse_refuses_bad_message_with_400(raw, code, message):
    with pytest.raises(BadRequest) as caught:
        parse(raw)

    assert caught.value.status == 400
    assert caught.value.code == code and caught.value.message == message


def test_parse_accepts_message_at_the_limit_counted_in_characters():
    # 4,000 characters of a 2-byte character: 8,000 bytes, still allowed (the limit is in characters)
    assert parse({"message": "é" * 4000}).message == "é" * 4000


def test_parse_message_limit_is_configurable():
    with pytest.raises(BadRequest):
        parse({"message": "abcdef"}, max_message_length=5)


# -- conversation id, api_type, stream -----------------------------------------------------------------------
def test_parse_generates_conversation_id_when_absent():
    request = parse({"message": "hi"})

    assert request.conversation_id.startswith("conv_") and len(request.conversation_id) > 8


@pytest.mark.parametrize("bad", ["conv 1", "conv/1", "../etc", "a" * 129, "conv_ü"])
def test_parse_refuses_invalid_conversation_id(bad):
    with pytest.raises(BadRequest, match="Invalid conversation ID format"):
        parse({"message": "hi", "conversation_id": bad})


def test_parse_keeps_valid_conversation_id():
    assert parse({"message": "hi", "conversation_id": "conv_AZ-09_x"}).conversation_id == "conv_AZ-09_x"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, None), ("responses", "responses"), ("chat", "chat"), ("assistants", "responses")],
)
def test_parse_api_type(given, expected):
    raw = {"message": "hi"} if given is None else {"message": "hi", "api_type": given}
    assert parse(raw).api_type == expected


def test_parse_refuses_unknown_api_type():
    with pytest.raises(BadRequest, match="Invalid api_type"):
        parse({"message": "hi", "api_type": "completions"})


@pytest.mark.parametrize("value", [False, "false", 0, "0"])
def test_parse_post_stream_false_values(value):
    assert parse({"message": "hi", "stream": value}).stream is False


@pytest.mark.parametrize("value", [True, "true", 1, "1", "yes"])
def test_parse_post_stream_true_values(value):
    assert parse({"message": "hi", "stream": value}).stream is True


def test_parse_get_always_streams():
    assert parse({"message": "hi", "stream": "false"}, method="GET").stream is True


def test_parse_get_ignores_file_data():
    assert parse({"message": "hi", "file_data": "x"}, method="GET", enable_file_upload=True).files == []


# -- tools ---------------------------------------------------------------------------------------------------
def test_parse_tools_from_json_string():
    request = parse({"message": "hi", "tools": '[{"type":"function","name":"f"},{"type":"web_search"}]'})

    assert request.tools == [{"type": "function", "name": "f"}]


def test_parse_empty_tools_means_explicitly_none():
    assert parse({"message": "hi", "tools": []}).tools == []
    assert parse({"message": "hi"}).tools is None


@pytest.mark.parametrize("bad", ["{not json", '{"type":"function"}', 5])
def test_parse_refuses_tools_that_are_not_an_array(bad):
    with pytest.raises(BadRequest, match="Invalid tools payload: expected JSON array"):
        parse({"message": "hi", "tools": bad})


def test_parse_refuses_too_many_tools():
    tools = [{"type": "function", "name": f"f{i}"} for i in range(4)]
    with pytest.raises(BadRequest, match="Too many tools"):
        parse({"message": "hi", "tools": tools}, chat_max_tools=3)


# -- files ---------------------------------------------------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
JPG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
DOC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16


def docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def test_parse_files_refused_when_uploads_disabled():
    with pytest.raises(BadRequest, match="File upload not enabled"):
        parse({"message": "hi", "file_data": [{"name": "a.txt", "data": b64(b"hello")}]})


@pytest.mark.parametrize(
    ("name", "data"), [("a.txt", b"hello"), ("a.pdf", PDF), ("a.png", PNG), ("a.jpg", JPG), ("a.doc", DOC)]
)
def test_parse_files_accepts_allowed_types(name, data):
    files = parse_files([{"name": name, "type": "x", "data": b64(data)}], settings(enable_file_upload=True))

    assert files[0].data == data and files[0].name == name


def test_parse_files_accepts_docx_and_single_object():
    files = parse_files({"name": "r.docx", "data": b64(docx())}, settings(enable_file_upload=True))

    assert files[0].extension == "docx"


def test_parse_files_refuses_renamed_executable():
    with pytest.raises(BadRequest, match="does not match"):
        parse_files([{"name": "a.pdf", "data": b64(b"MZ\x90\x00binary")}], settings(enable_file_upload=True))


def test_parse_files_refuses_disallowed_extension():
    with pytest.raises(BadRequest, match="File type not allowed"):
        parse_files([{"name": "a.exe", "data": b64(b"MZ")}], settings(enable_file_upload=True))


def test_parse_files_measures_decoded_size_not_the_declared_one():
    # Given a client that declares a tiny size for a file over the limit
    entry = {"name": "a.txt", "size": 1, "data": b64(b"x" * 101)}

    with pytest.raises(PayloadTooLarge, match="File size exceeds limit"):
        parse_files([entry], settings(enable_file_upload=True, max_file_size=100))


def test_parse_files_refuses_more_than_five():
    entries = [{"name": f"{i}.txt", "data": b64(b"hi")} for i in range(6)]
    with pytest.raises(BadRequest, match="Too many files"):
        parse_files(entries, settings(enable_file_upload=True))


@pytest.mark.parametrize("entry", [{"name": "a.txt"}, {"name": "a.txt", "data": "!!!not base64"}, "x"])
def test_parse_files_refuses_malformed_entries(entry):
    with pytest.raises(BadRequest, match="Invalid file data format"):
        parse_files([entry], settings(enable_file_upload=True))


def test_parse_files_in_chat_mode_is_a_clear_400():
    raw = {"message": "hi", "api_type": "chat", "file_data": [{"name": "a.txt", "data": b64(b"hello")}]}

    with pytest.raises(BadRequest, match="only supported with api_type=responses"):
        parse(raw, enable_file_upload=True)


def test_content_matches_text_must_be_utf8_without_nul():
    assert content_matches("txt", "héllo".encode())
    assert not content_matches("txt", b"\xff\xfe\x00h")
    assert not content_matches("docx", b"PK\x03\x04garbage")
