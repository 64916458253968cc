"""Loads Swagger UI from a running medlabel in headless Chromium (Debian's package, driven by
Playwright's Python API with the system browser): the page renders every operation, fetches
nothing from outside the server (no CDN), and "Try it out" -> "Execute" on GET /health shows a
200.

Usage: swagger_ui.py BASE_URL
"""
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def main() -> None:
    base = sys.argv[1].rstrip("/")
    outside = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page()
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(base) and not r.url.startswith("data:") else None)
        page.goto(f"{base}/docs/")
        page.wait_for_selector(".opblock", timeout=30_000)
        operations = page.locator(".opblock").count()
        assert operations >= 45, f"only {operations} operations rendered"
        health = page.locator("#operations-service-health")
        health.locator(".opblock-summary").first.click()
        health.locator("button.try-out__btn").click()
        health.locator("button.execute").click()
        status = health.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=30_000)
        code = status.inner_text().strip()
        assert code.startswith("200"), f"GET /health answered {code!r} in Swagger UI"
        browser.close()
    assert not outside, f"Swagger UI fetched from outside the server: {outside[:5]}"
    print(f"Swagger UI: {operations} operations rendered; Try it out on GET /health -> 200; nothing fetched from outside")


if __name__ == "__main__":
    main()
