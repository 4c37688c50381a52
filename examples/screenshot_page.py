"""A screenshot of the page for the docs: ``python examples/screenshot_page.py [docs/page.png]``.

Starts ``matrixcalculus serve`` on a free loopback port and Debian's Chromium (through
Playwright, as tests/test_web_browser.py does), opens a tutorial example -- ``A*x`` by ``A``, the
first tutorial's m x m x n tensor, at m = n = 2 -- waits for its typeset derivative, check,
explanation (the tensor collapsed into the vector-Jacobian product g*x'), explicit slices, picture
and code, and saves the whole page.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright


def main(path: str = "docs/page.png") -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "matrixcalculus.cli", "serve", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(f"{url}/api/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
            page.goto(f"{url}/?f=A*x&wrt=A&size=2")
            page.wait_for_selector("body[data-ready=true]")
            page.wait_for_function("() => document.querySelector('#source').textContent.includes('def derivatives')")
            page.wait_for_function("() => document.querySelector('#explicit img.picture')?.naturalWidth > 0")
            page.wait_for_function("() => document.querySelector('#steps details[open] math') !== null")
            page.screenshot(path=path, full_page=True)
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(15)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
