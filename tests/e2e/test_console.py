"""The admin console in Chromium: an operator's day, and every page for each role."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.browser

# Records every text an element shows, in the page, so a test sees the intermediate states of a stream.
RECORD_TEXT = """node => {
  node.shownTexts = [];
  new MutationObserver(() => {
    const text = node.textContent;
    if (text && text !== node.shownTexts.at(-1)) node.shownTexts.push(text);
  }).observe(node, { childList: true, subtree: true, characterData: true });
}"""
PAGES = ["agents", "prompts", "vector-stores", "jobs", "dlq", "users", "audit", "health", "metrics"]


def sign_in(page, stack, token: str) -> None:
    page.goto(stack.url("/console/"))
    page.get_by_label("Admin token or API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#who", has_text="Sign out").wait_for()


def me_status(stack, key: str) -> int:
    return httpx.get(stack.url("/admin/me"), headers={"Authorization": f"Bearer {key}"}).status_code


def row(page, text: str):
    return page.locator("tr", has_text=text)


def test_operator_manages_agents_jobs_and_keys(web_stack, fake, page, shot):
    page.on("dialog", lambda d: d.accept())  # the console confirms before revoking
    sign_in(page, web_stack, web_stack.admin_token)
    assert page.evaluate("JSON.parse(sessionStorage.getItem('chatbot-console')).me.role") == "super-admin"

    # creates an agent
    page.get_by_label("Name", exact=True).fill("E2E support")
    page.get_by_label("System message").fill("You help with e2e tests.")
    page.get_by_role("button", name="Create agent").click()
    page.get_by_role("heading", name="Test E2E support").wait_for()
    shot(page, "console-agent-detail")

    # makes it the default
    page.get_by_role("link", name="← All agents").click()
    row(page, "E2E support").get_by_role("button", name="Make default").click()
    row(page, "E2E support").locator(".badge", has_text="default").wait_for()
    assert row(page, "E2E support").get_by_role("button", name="Make default").count() == 0
    shot(page, "console-agents")

    # tests it with a streamed reply
    fake.configure(token_latency_ms=60)
    row(page, "E2E support").get_by_role("button", name="Test").click()
    page.get_by_label("Test message").fill("Are you streaming?")
    reply = page.get_by_test_id("agent-test-reply")
    reply.evaluate(RECORD_TEXT)
    page.get_by_role("button", name="Send").click()
    reply.filter(has_text="Hello from fake OpenAI! You said: Are you streaming?").wait_for()
    shown = reply.evaluate("node => node.shownTexts")
    # shown in parts before the whole reply had arrived
    assert len(shown) > 1 and all(shown[-1].startswith(text) for text in shown)
    page.get_by_text(re.compile(r"Done \(completed\) in \d+ ms")).wait_for()
    system = fake.requests_to("/v1/responses")[-1]["body"]["input"][0]
    assert system["role"] == "system" and "e2e tests" in str(system["content"])
    shot(page, "console-agent-test")

    # a diagnostic job that fails until requeued lands in the dead-letter queue
    page.get_by_role("link", name="Jobs").click()
    page.get_by_label("Payload (JSON)").fill('{"fail_until_requeued": true}')
    page.get_by_label("Max attempts").fill("1")
    page.get_by_role("button", name="Enqueue").click()
    job_id = re.search(r"job_\w+", page.locator(".notice", has_text="Enqueued").inner_text()).group(0)
    page.get_by_role("link", name="Dead letters").click()
    dead = row(page, job_id)
    dead.wait_for(timeout=20_000)
    dead.get_by_text("1 error(s)").click()  # its error history
    dead.get_by_text("#1 ").filter(has_text="until requeued from the DLQ").wait_for()
    shot(page, "console-dlq")

    # requeued, it completes
    dead.get_by_role("button", name="Requeue").click()
    page.get_by_text("The dead-letter queue is empty.").wait_for()
    page.get_by_role("link", name="Jobs").click()
    row(page, job_id).locator(".badge", has_text="completed").wait_for(timeout=20_000)
    shot(page, "console-jobs")

    # creates an API key, sees it once, and revokes it
    page.get_by_role("link", name="Users & API keys").click()
    page.get_by_label("Email").fill("e2e-ops@example.com")
    page.get_by_role("button", name="Create user").click()
    page.get_by_role("heading", name="API keys of e2e-ops@example.com").wait_for()
    page.get_by_label("Name").fill("e2e key")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-api-key").inner_text()
    assert key.startswith("chatbot_")
    shot(page, "console-api-key-created")
    assert me_status(web_stack, key) == 200
    page.get_by_role("button", name="Done — I saved it").click()
    assert page.get_by_test_id("new-api-key").count() == 0
    row(page, "e2e key").get_by_role("button", name="Revoke").click()
    row(page, "e2e key").locator(".badge", has_text="revoked").wait_for()
    assert me_status(web_stack, key) == 401
    shot(page, "console-api-keys")
    assert page.errors == []


def test_every_page_renders_and_a_viewer_is_offered_only_reading(web_stack, page, shot):
    sign_in(page, web_stack, web_stack.admin_token)
    for name in PAGES:
        page.goto(web_stack.url(f"/console/#/{name}"))
        page.locator("main h1").wait_for()
        page.locator("main .loading").wait_for(state="detached")
        assert page.locator("main p.error").count() == 0, page.locator("main").inner_text()
        shot(page, f"console-page-{name}")

    # A viewer (an API key of a viewer user) sees no mutating controls and no DLQ.
    with web_stack.http(headers=web_stack.admin_headers) as admin:
        user = admin.post("/admin/users", json={"email": "viewer@example.com", "role": "viewer"}).json()[
            "data"
        ]
        key = admin.post("/admin/api-keys", json={"user_id": user["id"], "scopes": ["admin"]}).json()["data"][
            "key"
        ]
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, web_stack, key)
    nav = page.locator("#nav").inner_text()
    assert "Agents" in nav and "Dead letters" not in nav
    assert page.get_by_role("button", name="Create agent").count() == 0
    page.get_by_role("link", name="Jobs").click()
    page.locator("main h1", has_text="Jobs").wait_for()
    assert page.get_by_role("button", name="Enqueue").count() == 0
    shot(page, "console-viewer-jobs")
    assert page.errors == []
