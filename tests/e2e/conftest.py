"""Browser tests: Debian's Chromium (headless, driven by Playwright) against a running local stack.

- `web_stack` (session per xdist worker): the local stack as `make run` starts it, with chat attachments
  enabled (ENABLE_FILE_UPLOAD=true), which the shared `local_stack` keeps off for its protocol tests.
  One per worker, shared by every browser test.
- `browser` (session): one Chromium for all tests; `page` (function): a fresh context (its own
  localStorage and sessionStorage) and page, whose uncaught script errors are collected in `page.errors`.
- `shot` (function): `shot(page, name)` saves a full-page screenshot under `.artifacts/screenshots/`
  (git-ignored), kept as an artifact of the run.

Tests are marked `browser` and skipped when Chromium or Playwright is missing; CI installs Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.harness import StackProcess

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / ".artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason:
        for item in items:
            if item.get_closest_marker("browser"):
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def web_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    stack = StackProcess(workdir=tmp_path_factory.mktemp("web-stack"), env={"ENABLE_FILE_UPLOAD": "true"})
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def fake(web_stack: StackProcess) -> Iterator[Any]:
    """The stack's fake OpenAI, with no replies, faults or latency left over from another test."""
    web_stack.fake_openai.reset()
    yield web_stack.fake_openai
    web_stack.fake_openai.reset()
    web_stack.fake_openai.configure(token_latency_ms=0)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    new_page.errors = []
    new_page.on("pageerror", lambda error: new_page.errors.append(str(error)))
    try:
        yield new_page
    finally:
        context.close()


@pytest.fixture
def shot() -> Any:
    def save(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save
