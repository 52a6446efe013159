"""`wsgi_environ`: the environ werkzeug's server (with moto's request handler) built, from an ASGI scope."""

from __future__ import annotations

from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

from infra.local.emulator import wsgi_environ


def _scope(**overrides):
    scope = {
        "type": "http",
        "method": "PUT",
        "path": "/bucket/a key/é.txt",
        "raw_path": b"/bucket/a%20key/%C3%A9.txt",
        "query_string": b"uploadId=1&partNumber=2",
        "http_version": "1.1",
        "server": ("127.0.0.1", 5100),
        "client": ("127.0.0.1", 40000),
        "headers": [],
    }
    scope.update(overrides)
    return scope


def test_paths_are_wsgi_text_and_the_raw_uri_is_kept():
    environ = wsgi_environ(_scope(), b"")
    assert environ["PATH_INFO"] == "/bucket/a key/é.txt".encode().decode("latin-1")
    assert (
        environ["RAW_URI"] == environ["REQUEST_URI"] == "/bucket/a%20key/%C3%A9.txt?uploadId=1&partNumber=2"
    )
    assert environ["QUERY_STRING"] == "uploadId=1&partNumber=2"
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"], environ["REMOTE_ADDR"]) == (
        "127.0.0.1",
        "5100",
        "127.0.0.1",
    )


def test_the_body_is_whole_and_its_length_known():
    headers = [(b"transfer-encoding", b"chunked"), (b"content-type", b"text/plain")]
    environ = wsgi_environ(_scope(headers=headers), b"hello")
    assert environ["wsgi.input"].read() == b"hello"
    assert environ["CONTENT_LENGTH"] == "5" and environ["CONTENT_TYPE"] == "text/plain"
    assert "HTTP_TRANSFER_ENCODING" not in environ


def test_repeated_headers_are_joined_and_underscored_ones_dropped_but_s3_metadata():
    headers = [
        (b"x-amz-target", b"DynamoDB_20120810.GetItem"),
        (b"accept", b"a"),
        (b"accept", b"b"),
        (b"x_forwarded_for", b"6.6.6.6"),
        (b"x-amz-meta-my_key", b"v1"),
    ]
    environ = wsgi_environ(_scope(headers=headers), b"")
    assert environ["HTTP_X_AMZ_TARGET"] == "DynamoDB_20120810.GetItem"
    assert environ["HTTP_ACCEPT"] == "a,b"
    assert "HTTP_X_FORWARDED_FOR" not in environ
    assert environ["HTTP_X_AMZ_META_MY_KEY"] == "v1"
    assert environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] == {"HTTP_X_AMZ_META_MY_KEY": "x-amz-meta-my_key"}


def test_an_underscored_header_never_stands_in_for_a_dashed_one():
    headers = [(b"x-amz-meta-a_b", b"underscored"), (b"x-amz-meta-a-b", b"dashed")]
    environ = wsgi_environ(_scope(headers=headers), b"")
    assert environ["HTTP_X_AMZ_META_A_B"] == "dashed"
    assert PRESERVED_HEADER_NAMES_ENVIRON_KEY not in environ
