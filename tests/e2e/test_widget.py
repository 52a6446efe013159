"""The chat widget in Chromium, on its demo page and embedded on a page from another origin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

# Records, in the page, every text the reply bubble shows (the greeting is the first bubble), to see the
# states a stream went through.
RECORD_REPLY_TEXT = """node => {
  node.shownTexts = [];
  new MutationObserver(() => {
    const replies = node.querySelectorAll(".cbw-assistant");
    const text = replies.length > 1 ? replies[replies.length - 1].textContent : "";
    if (text && text !== node.shownTexts.at(-1)) node.shownTexts.push(text);
  }).observe(node, { childList: true, subtree: true, characterData: true });
}"""
FLOATING = '[data-widget-id="demo-floating"]'
INLINE = '[data-widget-id="demo-inline"]'


def send(page, widget: str, text: str) -> None:
    page.locator(f"{widget} .cbw-input").fill(text)
    page.locator(f"{widget} .cbw-input").press("Enter")


def is_chat(request) -> bool:
    return urlsplit(request.url).path == "/chat"


def last_reply(page, widget: str):
    return page.locator(f"{widget} .cbw-assistant").last


def test_demo_widget_streams_a_reply_over_event_source(web_stack, fake, page, shot):
    # Given a reply that arrives word by word
    fake.configure(token_latency_ms=40)
    fake.queue_replies("one two three four five six seven eight")
    chat_requests = []
    page.on("request", lambda r: is_chat(r) and chat_requests.append(r))
    page.goto(web_stack.url("/widget/"))

    # When the visitor opens the floating widget and sends a message with the keyboard
    page.locator(f"{FLOATING} .cbw-toggle").click()
    page.locator(f"{FLOATING} .cbw-messages").evaluate(RECORD_REPLY_TEXT)
    send(page, FLOATING, "Count for me")

    # Then the reply is shown while it streams, then in full
    page.locator(f"{FLOATING} .cbw-assistant", has_text="one two three four five six seven eight").wait_for()
    shown = page.locator(f"{FLOATING} .cbw-messages").evaluate("node => node.shownTexts")
    # shown in parts before the whole reply had arrived
    assert len(shown) > 1 and all(shown[-1].startswith(text) for text in shown)
    assert page.locator(f"{FLOATING} .cbw-typing").count() == 0
    assert page.locator(f"{FLOATING} .cbw-sr-only").inner_text() == "one two three four five six seven eight"
    assert [(r.method, r.headers.get("accept")) for r in chat_requests] == [("GET", "text/event-stream")]
    # the first message names no conversation: the server does, and the widget keeps its id
    assert "conversation_id=" not in chat_requests[0].url
    conversation = page.evaluate("localStorage.getItem('chatbot-widget:demo-floating:conversation')")
    assert conversation.startswith("conv_")
    assert page.errors == []
    shot(page, "widget-demo-reply")

    # And the next message goes on in that conversation
    fake.queue_replies("nine ten")
    send(page, FLOATING, "And then?")
    page.locator(f"{FLOATING} .cbw-assistant", has_text="nine ten").wait_for()
    assert len(chat_requests) == 2 and f"conversation_id={conversation}" in chat_requests[1].url


def test_upstream_error_is_shown_in_the_chat_and_retry_sends_again(web_stack, fake, page, shot):
    # Given an upstream that fails after two words, then recovers
    fake.queue_faults("error_event:2", path="/v1/responses")
    page.goto(web_stack.url("/widget/"))
    page.locator(f"{FLOATING} .cbw-toggle").click()

    send(page, FLOATING, "Hello")

    error = page.locator(f"{FLOATING} .cbw-error")
    error.filter(has_text="An error occurred while processing your request.").wait_for()
    assert error.get_attribute("role") == "alert"
    shot(page, "widget-upstream-error")

    error.get_by_role("button", name="Retry").click()
    last_reply(page, FLOATING).filter(has_text="Hello from fake OpenAI! You said: Hello").wait_for()
    assert error.count() == 0
    assert len(fake.requests_to("/v1/responses")) == 2
    assert page.errors == []


def test_attachment_is_sent_when_enabled(web_stack, fake, page, shot):
    page.goto(web_stack.url("/widget/"))
    assert page.locator(f"{FLOATING} .cbw-attach").count() == 0  # not enabled on this one

    content = b"The launch code is 1234."
    page.locator(f"{INLINE} .cbw-file-input").set_input_files(
        {"name": "notes.txt", "mimeType": "text/plain", "buffer": content}
    )
    page.locator(f"{INLINE} .cbw-file", has_text="notes.txt").wait_for()
    send(page, INLINE, "What does the file say?")

    last_reply(page, INLINE).filter(has_text="You said: What does the file say?").wait_for()
    uploads = fake.requests_to("/v1/files")
    assert [f["filename"] for u in uploads for f in u["body"]["files"]] == ["notes.txt"]
    assert uploads[0]["body"]["files"][0]["bytes"] == len(content)
    assert "input_file" in json.dumps(fake.requests_to("/v1/responses")[-1]["body"])
    assert page.locator(f"{INLINE} .cbw-file").count() == 0  # cleared after sending
    shot(page, "widget-attachment")


def test_model_output_with_html_is_shown_as_text_and_never_run(web_stack, fake, page, shot):
    payload = (
        '<script>window.__xss = "script"</script> <img src=x onerror="window.__xss = \'img\'"> '
        "**bold** [site](javascript:alert(1))"
    )
    fake.queue_replies(payload)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(web_stack.url("/widget/"))

    send(page, INLINE, "Show me some HTML")

    reply = last_reply(page, INLINE)
    reply.locator("strong", has_text="bold").wait_for()  # the Markdown whitelist still applies
    text = reply.inner_text()
    assert '<script>window.__xss = "script"</script>' in text and "<img src=x onerror=" in text
    assert reply.locator("script, img, a").count() == 0  # a javascript: link is not a link either
    page.wait_for_timeout(200)  # an injected onerror would have fired by now
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert page.errors == []
    shot(page, "widget-xss-as-text")


@pytest.fixture
def other_origin(web_stack) -> Iterator[str]:
    """A page on another port (another origin) embedding the widget from the gateway."""
    script = web_stack.url("/widget/chatbot-widget.js")
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>Partner site</title></head>
<body><h1>A partner site</h1><div id="box" style="height:400px"></div>
<script>window.ChatbotWidgetConfig = [
  {{ id: "partner", title: "Partner chat", open: true }},
  {{ id: "partner-inline", mode: "inline", container: "#box", streaming: "fetch" }}
];</script>
<script src="{script}"></script></body></html>""".encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_widget_embedded_on_another_origin_chats_through_cors(web_stack, fake, page, other_origin, shot):
    requests = []
    page.on("request", lambda r: is_chat(r) and requests.append(r))
    page.goto(other_origin)

    floating, inline = '[data-widget-id="partner"]', '[data-widget-id="partner-inline"]'
    send(page, floating, "Hi from the partner site")
    send(page, inline, "And with fetch streaming")

    last_reply(page, floating).filter(has_text="You said: Hi from the partner site").wait_for()
    last_reply(page, inline).filter(has_text="You said: And with fetch streaming").wait_for()
    partner = other_origin.rstrip("/")
    seen = {
        (
            r.method,
            r.all_headers().get("origin"),
            r.response().all_headers().get("access-control-allow-origin"),
        )
        for r in requests
    }
    assert seen == {("GET", partner, "*"), ("POST", partner, "*")}  # cross-origin EventSource and fetch
    assert page.evaluate("localStorage.getItem('chatbot-widget:partner:conversation')").startswith("conv_")
    assert page.errors == []
    shot(page, "widget-other-origin")


def test_gateway_serves_the_web_files_with_their_types(web_stack):
    with web_stack.http(follow_redirects=False) as client:
        types = {
            path: client.get(path).headers["content-type"].split(";")[0]
            for path in [
                "/widget/",
                "/widget/chatbot-widget.js",
                "/widget/chatbot-widget.css",
                "/console/",
                "/console/app.js",
                "/console/pages/agents.js",
            ]
        }
        bare = client.get("/console")
        escape = client.get("/console/%2e%2e/%2e%2e/pyproject.toml")

    javascript = {"text/javascript", "application/javascript"}  # module scripts need a JavaScript type
    assert types["/widget/"] == types["/console/"] == "text/html"
    assert types["/widget/chatbot-widget.css"] == "text/css"
    assert {types[p] for p in types if p.endswith(".js")} <= javascript
    assert (bare.status_code, bare.headers["location"]) == (302, "/console/")
    assert escape.status_code == 404
