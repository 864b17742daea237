"""`report.py KIND [CSV]`: one self-contained HTML page in benchmarks/.

A missing or malformed input ends with one line on stderr naming the file
and exit status 1, never a traceback.
"""

import argparse
import importlib
import os
import shutil
import subprocess
import sys

from . import browser
from .data import KINDS, ReportError, host_for, load, newest_csv

TITLES = {
    "writes": "Walrus write benchmark",
    "batch": "Walrus batch-append benchmark",
    "reads": "Walrus read benchmark",
    "scaling": "Walrus thread scaling",
    "compare": "Walrus store comparison",
    "latency": "Walrus open-loop latency vs offered load",
}


_MODULES = {
    "writes": "writes",
    "batch": "writes",
    "reads": "reads",
    "scaling": "scaling",
    "compare": "compare",
    "latency": "latency",
}


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        out = write_report(args.kind, args.csv, args.dir, args.out)
        if args.screenshot:
            browser.screenshot(out, args.screenshot, *args.window)
            print(f"screenshot: {args.screenshot}")
    except (ReportError, browser.BrowserError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"report: {out}")
    if not args.no_open:
        open_in_browser(out)
    return 0


def write_report(kind, csv_path, directory, out_path=None):
    """Writes the page for `csv_path` (default: the newest CSV of `kind`) and returns its path."""
    csv_path = csv_path or newest_csv(kind, directory)
    df = load(kind, csv_path)
    host = host_for(csv_path, kind, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    # Imported only now: matplotlib takes a while, and a bad CSV should fail at once.
    from . import page

    html = page.render(TITLES[kind], csv_path, host, _body(kind, df, host))
    out_path = out_path or os.path.join(directory, os.path.splitext(os.path.basename(csv_path))[0] + ".html")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as f:
            f.write(html)
    except OSError as e:
        raise ReportError(f"{out_path}: cannot write the page: {e.strerror}") from None
    return out_path


def _body(kind, df, host):
    module = importlib.import_module(f".{_MODULES[kind]}", __package__)
    return module.build(df, host)


def open_in_browser(path):
    """Hands the page to the desktop's browser without waiting for it; on a
    machine without a display there is nothing to open, and that is fine."""
    url = "file://" + os.path.abspath(path)
    if sys.platform == "darwin":
        cmd = ["open", url]
    elif (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which("xdg-open"):
        cmd = ["xdg-open", url]
    else:
        return
    try:
        subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
    except OSError:
        pass


def _parser():
    p = argparse.ArgumentParser(prog="report.py", description="Self-contained HTML page of a benchmark CSV.")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("csv", nargs="?", help="the CSV (default: the newest of its kind in --dir)")
    p.add_argument("--dir", default="benchmarks", help="where CSVs are found and pages written (default: benchmarks)")
    p.add_argument("--out", help="the page's path (default: <dir>/<csv name>.html)")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")
    p.add_argument("--screenshot", metavar="PNG", help="also save a headless-Chromium screenshot of the page")
    p.add_argument("--window", type=int, nargs=2, default=(1400, 2000), metavar=("W", "H"),
                   help="screenshot size in pixels (default: 1400 2000)")
    return p
