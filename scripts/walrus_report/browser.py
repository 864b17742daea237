"""Headless Chromium: the rendered DOM of a page and a screenshot of it.

Used by the render check and to make the README's screenshot. Every run
gets a fresh profile and no background services, so it neither blocks on
first-run dialogs nor touches the network.
"""

import os
import shutil
import subprocess
import tempfile

_TIMEOUT_S = 60
_FLAGS = (
    "--headless",
    "--no-sandbox",  # CI runs as root, where the sandbox refuses to start
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class BrowserError(Exception):
    pass


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no chromium on PATH: run scripts/install-chromium.sh")


def _run(page_path, *flags):
    url = "file://" + os.path.abspath(page_path)
    with tempfile.TemporaryDirectory(prefix="walrus-chromium-") as profile:
        try:
            done = subprocess.run(
                [chromium(), *_FLAGS, f"--user-data-dir={profile}", *flags, url],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise BrowserError(f"chromium did not finish {page_path} within {_TIMEOUT_S}s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BrowserError(f"chromium failed on {page_path} (exit {done.returncode}): {last}")
    return done.stdout


def dump_dom(page_path):
    """The DOM after Chromium parsed and laid out the page, serialised."""
    return _run(page_path, "--dump-dom")


def screenshot(page_path, png_path, width=1400, height=2000):
    os.makedirs(os.path.dirname(os.path.abspath(png_path)), exist_ok=True)
    _run(page_path, f"--screenshot={os.path.abspath(png_path)}", f"--window-size={width},{height}")
    if not os.path.isfile(png_path):
        raise BrowserError(f"chromium wrote no screenshot {png_path}")
