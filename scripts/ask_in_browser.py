"""Ask the running chat one question in headless Chromium and save a screenshot of the answer.

    python scripts/ask_in_browser.py http://127.0.0.1:8501 "Why was the Budapest summit cancelled?" OUT.png

Used for the README's screenshots (e.g. of `make run-local`); prints the seconds to the first streamed
words and to the finished answer. Needs Chromium (`make browser`) and Playwright (in requirements).
"""

from __future__ import annotations

import shutil
import sys
import time

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def main(url: str, question: str, out: str, timeout_s: float = 900.0) -> int:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("error: no chromium on PATH (`make browser` installs it)", file=sys.stderr)
        return 2
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.goto(url)
        chat = page.get_by_placeholder("Ask about the articles", exact=False)
        chat.wait_for(timeout=300_000)
        chat.fill(question)
        started = time.perf_counter()
        chat.press("Enter")
        answer = page.locator("[data-testid='stChatMessage']").nth(1)
        # The chat streams the model's words with a "▌" cursor after them (app.py): its first appearance
        # is the first streamed token; the sources' anchor appears once the answer is checked.
        page.wait_for_function(
            """() => { const m = document.querySelectorAll("[data-testid='stChatMessage']")[1];
                       return (m && m.innerText.includes("\u258c")) || document.querySelector('a[href="#sources-0"]'); }""",
            timeout=timeout_s * 1000, polling=50)
        first = time.perf_counter() - started
        page.locator('a[href="#sources-0"]').first.wait_for(timeout=timeout_s * 1000)
        done = time.perf_counter() - started
        page.wait_for_timeout(1000)
        page.screenshot(path=out, full_page=True)
        print(f"first streamed words after {first:.1f} s, the checked answer after {done:.1f} s; wrote {out}")
        print(answer.inner_text())
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
