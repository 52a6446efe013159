"""The redaction rule of every log line (`chatbot.observability.redact`), and the JSON line itself."""

from __future__ import annotations

import json

from chatbot.observability import REDACTED, get_logger, log_event, redact
from tests.log_capture import json_lines, powertools_output


def test_sensitive_keys_are_redacted_wherever_they_are():
    logged = redact(
        {
            "Authorization": "Bearer abc",
            "headers": {"x-api-key": "k", "Cookie": "c", "webhook-signature": "v1,xyz"},
            "admin_token": "t",
            "password": "p",
            "items": [{"client_secret": "s"}],
            "file_data": "aGVsbG8=",
            "content": "what the user typed",
        }
    )
    assert logged == {
        "Authorization": REDACTED,
        "headers": {"x-api-key": REDACTED, "Cookie": REDACTED, "webhook-signature": REDACTED},
        "admin_token": REDACTED,
        "password": REDACTED,
        "items": [{"client_secret": REDACTED}],
        "file_data": REDACTED,
        "content": REDACTED,
    }


def test_credential_looking_values_are_redacted_under_innocent_keys():
    text = redact("sent Bearer abc.def with sk-" + "a" * 20 + " and whsec_xyz and chatbot_" + "0" * 32)
    assert text == f"sent {REDACTED} with {REDACTED} and {REDACTED} and {REDACTED}"


def test_token_counts_are_kept_and_message_text_only_when_enabled():
    assert redact({"total_tokens": 12, "prompt_tokens": 3}) == {"total_tokens": 12, "prompt_tokens": 3}
    assert redact({"content": "hi"}, keep_message_text=True) == {"content": "hi"}


def test_log_event_writes_one_redacted_json_line_with_the_standard_fields():
    with powertools_output() as output:
        log_event(get_logger("chat"), "auth_failed", "warning", token="chatbot_" + "f" * 32, reason="bad")
    (line,) = [entry for entry in json_lines(output()) if entry.get("event") == "auth_failed"]
    assert line["token"] == REDACTED and line["reason"] == "bad"
    assert {"timestamp", "level", "service", "message"} <= set(line) and line["service"] == "chat"
    assert "f" * 32 not in json.dumps(line)
