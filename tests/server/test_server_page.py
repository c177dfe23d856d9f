"""The web chat page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _browser_or_skip():  # noqa: ANN202
    """Playwright's sync API; in CI (CI set) a missing browser or package fails instead of skipping."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install playwright)")
        sync_playwright = None
    if not shutil.which(CHROMIUM):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if missing:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail("browser test cannot run in CI: missing " + " and ".join(missing))
        pytest.skip("missing " + " and ".join(missing))
    return sync_playwright


def test_chat_page_streams_an_answer_and_shows_a_cited_passage(server, output_dir) -> None:
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)  # CSP, 404s
            page.goto(server.url + "/")
            page.get_by_label("Your API key").fill(server.keys["browser"])
            page.get_by_role("button", name="Use key").click()
            page.get_by_label("Question", exact=True).fill("What water temperature does the zebrafish aquarium need?")
            page.keyboard.press("Enter")
            answer = page.locator(".answer .text").last
            answer.get_by_text("28 degrees").wait_for(timeout=30_000)
            assert page.locator(".answer .label").last.inner_text().lower() == "generated answer"
            page.locator(".answer button.cite").first.click()
            passage = page.locator("#passage")
            passage.wait_for(state="visible")
            assert "fish.md" in page.locator("#passage-where").inner_text()
            assert "zebrafish" in page.locator("#passage-quote").inner_text().lower()
            assert "fish.md" in page.locator(".answer .sources").last.inner_text()
            page.screenshot(path=str(output_dir / "chat-page.png"), full_page=True)

            page.get_by_label("Question", exact=True).fill("Who won the 1966 football world cup final?")
            page.get_by_role("button", name="Ask", exact=True).click()
            page.locator(".answer.refused").wait_for(timeout=30_000)
            assert "No answer" in page.locator(".answer.refused").inner_text()
            page.screenshot(path=str(output_dir / "chat-page-refused.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()
