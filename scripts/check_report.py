#!/usr/bin/env python3
"""make test-report: the report pages render in a browser and show what they must.

A page is made for every report kind from a small committed fixture
(scripts/fixtures/), loaded in headless Chromium, and its rendered DOM is
held against what the fixture says must be there: one chart per workload
with a bar for each store that ran, the ratio tables with their values, the
host figures, the scaling regions and suggestion, the latency-vs-load
points of every store and percentile. The compare page is
screenshotted to benchmarks/report-screenshot.png. Then the same check is
turned on broken pages, each of which it must reject, and the report command
on a missing and on malformed CSVs, each of which must end in one line on
stderr naming the file.
"""

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from walrus_report import browser  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")
REPORT = os.path.join(HERE, "report.py")
SCREENSHOT = os.path.join("benchmarks", "report-screenshot.png")
# The fixture's shape is the guide's example: linear to 8 threads, a
# plateau at 16, a decline at 32.
SCALING_REGIONS = ["linear", "linear", "linear", "linear", "plateau", "decline"]
SCALING_SUGGESTED = "8"


class CheckFailed(Exception):
    pass


def require(condition, message):
    if not condition:
        raise CheckFailed(message)


# --- the rendered DOM as a tree ---------------------------------------------


class Node:
    def __init__(self, tag, attrs):
        self.tag, self.attrs, self.children, self.text = tag, dict(attrs), [], []

    def has_class(self, name):
        return name in (self.attrs.get("class") or "").split()

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, tag, cls=None, **data):
        """Descendants with this tag, class and data-* attribute values."""
        return [
            n
            for n in self.walk()
            if n.tag == tag
            and (cls is None or n.has_class(cls))
            and all(n.attrs.get("data-" + k.replace("_", "-")) == v for k, v in data.items())
        ]

    def all_text(self):
        return "".join(n_text for n in self.walk() for n_text in n.text)


class _DomBuilder(HTMLParser):
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", [])
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs)
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Node(tag, attrs))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        self.stack[-1].text.append(data)


def parse(html):
    builder = _DomBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def rendered(page_path):
    return parse(browser.dump_dom(page_path))


# --- what each page must show ------------------------------------------------


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def medians(rows):
    """The rows a page draws: each case's median round when the CSV has
    rounds (every round is in the file), else every row."""
    if rows and "round" in rows[0]:
        return [r for r in rows if r["round"] == "median"]
    return rows


def unique(values):
    return list(dict.fromkeys(values))


def marks(figure, failed=False):
    """The tooltip-carrying marks (bars, points) of a chart's SVG."""
    svgs = figure.find("svg")
    require(len(svgs) == 1, f"chart {figure.attrs} has {len(svgs)} <svg> elements, not 1")
    return [g for g in svgs[0].find("g", "tip") if g.has_class("failed") == failed]


def mark_titles(figure, failed=False):
    return [" ".join(t.all_text() for t in g.children if t.tag == "title") for g in marks(figure, failed)]


def charts(root, **data):
    return root.find("figure", "chart", **data)


def check_offline(root):
    for node in root.walk():
        for attr in ("src", "href", "xlink:href"):
            value = node.attrs.get(attr) or ""
            require(not re.match(r"^(https?:)?//", value), f"<{node.tag} {attr}={value!r}> loads from the network")
    require(not root.find("script"), "the page runs a script")


def check_host(root, host):
    blocks = root.find("section", "host")
    require(len(blocks) == 1, f"{len(blocks)} host sections, not 1")
    text = blocks[0].all_text()
    for want in (host["hardware"], f"p50 {host['fdatasync_p50_us']:,.0f} µs",
                 f"p99 {host['fdatasync_p99_us']:,.0f} µs", f"{host['flushed_write_mb_per_sec']:,.0f} MiB/s"):
        require(want in text, f"the host section does not show {want!r}: {text!r}")


def check_compare(root, rows, host):
    workloads = unique(r["workload"] for r in rows)
    stores = unique(r["store"] for r in rows)
    ops = {(r["workload"], r["store"]): float(r["ops_per_sec"]) for r in rows if r["round"] == "median"}
    require(len(charts(root)) == len(workloads), f"{len(charts(root))} charts for {len(workloads)} workloads")
    for w in workloads:
        found = charts(root, workload=w)
        require(len(found) == 1, f"{len(found)} charts for workload {w!r}, not 1")
        ran = [s for s in stores if (w, s) in ops]
        titles = mark_titles(found[0])
        require(len(titles) == len(ran), f"{w!r}: {len(titles)} bars for {len(ran)} stores that ran")
        for s, title in zip(ran, titles):
            require(title.startswith(f"{s}: {ops[w, s]:,.0f} ops/s"), f"{w!r}: bar {title!r} is not {s}'s median")
        failed = len(marks(found[0], failed=True))
        require(failed == len(stores) - len(ran), f"{w!r}: {failed} failed marks for {len(stores) - len(ran)} failures")
    tables = root.find("table", "ratios")
    baselines = [t.attrs.get("data-baseline") for t in tables]
    require(baselines == ["walrus-fd", "rocksdb", "raw"], f"ratio tables against {baselines}")
    for table, base in zip(tables, baselines):
        check_table(table, ["workload"] + stores,
                    [[w] + [ratio(ops.get((w, s)), ops.get((w, base))) for s in stores] for w in workloads],
                    f"ratios to {base}")
    check_host(root, host)


def ratio(value, base):
    if value is None:
        return "failed"
    return f"{value / base:.2f}×" if base else "n/a"


def check_table(table, header, body, what):
    got_header = [th.all_text().strip() for th in table.find("th")]
    require(got_header == header, f"{what}: header {got_header}, not {header}")
    got = [[td.all_text().strip() for td in tr.find("td")] for tr in table.find("tbody")[0].find("tr")]
    require(got == body, f"{what}: rows {got}, not {body}")


def check_writes(root, rows, host):
    modes = unique(r["fsync_mode"] for r in rows)
    for chart, per_row in (("throughput", 1), ("latency", 3)):
        found = charts(root, chart=chart)
        require(len(found) == len(modes), f"{len(found)} {chart} charts for {len(modes)} fsync modes")
        for mode in modes:
            fig = charts(root, chart=chart, fsync=mode)
            require(len(fig) == 1, f"{len(fig)} {chart} charts for fsync {mode}")
            want = per_row * sum(r["fsync_mode"] == mode for r in rows)
            require(len(marks(fig[0])) == want, f"{chart} {mode}: {len(marks(fig[0]))} marks, not {want}")
    disk = f"{host['flushed_write_mb_per_sec']:.0f}"
    found = charts(root, chart="bandwidth", disk_mb_per_sec=disk)
    require(len(found) == 1, f"{len(found)} bandwidth charts against the disk's {disk} MiB/s, not 1")
    require(len(marks(found[0])) == len(rows), f"bandwidth: {len(marks(found[0]))} bars for {len(rows)} runs")
    check_host(root, host)


def check_reads(root, rows, host):
    reads = [r for r in rows if r["phase"] == "read"]
    consistencies = unique(r["consistency"] for r in reads)
    require(len(charts(root)) == len(consistencies), f"{len(charts(root))} charts for {len(consistencies)} modes")
    for c in consistencies:
        fig = charts(root, chart="reads", consistency=c)
        require(len(fig) == 1, f"{len(fig)} read charts for {c}")
        want = sum(r["consistency"] == c for r in reads)
        require(len(marks(fig[0])) == want, f"reads {c}: {len(marks(fig[0]))} bars, not {want}")
    pairs = len({(r["consistency"], r["store"], r["threads"]) for r in reads})
    gain = root.find("table", "batch-gain")
    require(len(gain) == 1 and len(gain[0].find("tbody")[0].find("tr")) == pairs,
            f"the batch-vs-single table does not have {pairs} rows")
    check_host(root, host)


def check_scaling(root, rows, host):
    fig = charts(root, chart="scaling")
    require(len(fig) == 1, f"{len(fig)} scaling charts, not 1")
    require(len(marks(fig[0])) == len(rows), f"scaling: {len(marks(fig[0]))} points for {len(rows)} rows")
    got = [tr.attrs.get("data-region") for tr in root.find("tr") if "data-region" in tr.attrs]
    require(got == SCALING_REGIONS, f"regions {got}, not {SCALING_REGIONS}")
    suggestion = root.find("p", "suggestion")
    require(len(suggestion) == 1 and suggestion[0].attrs.get("data-threads") == SCALING_SUGGESTED,
            f"the suggested thread count is not {SCALING_SUGGESTED}")
    check_host(root, host)


def check_latency(root, rows, host):
    groups = unique((r["fsync_mode"], r["threads"]) for r in rows)
    found = charts(root, chart="latency-load")
    require(len(found) == len(groups), f"{len(found)} latency charts for {len(groups)} fsync/thread groups")
    percentiles = (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
    for mode, threads in groups:
        mine = [r for r in rows if (r["fsync_mode"], r["threads"]) == (mode, threads)]
        fig = charts(root, chart="latency-load", fsync=mode, threads=threads)
        require(len(fig) == 1, f"{len(fig)} latency charts for {mode}, {threads} thread(s)")
        titles = mark_titles(fig[0])
        require(len(titles) == 3 * len(mine), f"{mode}: {len(titles)} points for {3 * len(mine)} (3 per cell)")
        for r in mine:
            for name, col in percentiles:
                want = f"{r['store']} {name}: {float(r[col]):,} µs at {float(r['offered_rate']):,.0f}/s offered"
                require(any(t.startswith(want) for t in titles), f"{mode}: no point {want!r}")
        tables = root.find("table", "achieved", fsync=mode, threads=threads)
        require(len(tables) == 1, f"{len(tables)} achieved-load tables for {mode}, {threads} thread(s)")
        got = len(tables[0].find("tbody")[0].find("tr"))
        require(got == len(mine), f"{mode}: the achieved-load table has {got} rows, not {len(mine)}")


CASES = {
    "compare": ("compare_fixture.csv", check_compare),
    "writes": ("write_fixture.csv", check_writes),
    "reads": ("read_fixture.csv", check_reads),
    "scaling": ("scaling_fixture.csv", check_scaling),
    "latency": ("latency_fixture.csv", check_latency),
}


# --- running it ---------------------------------------------------------------


def report(*args):
    return subprocess.run([sys.executable, REPORT, *args, "--no-open"], capture_output=True, text=True, timeout=120)


def make_page(kind, out_dir):
    out = os.path.join(out_dir, f"{kind}.html")
    done = report(kind, os.path.join(FIXTURES, CASES[kind][0]), "--out", out)
    require(done.returncode == 0, f"report.py {kind} failed: {done.stderr.strip()}")
    return out


def broken_variants(html):
    """Pages the check must reject: what a broken report looks like."""
    return {
        "a workload's chart missing": re.sub(r'<figure class="chart".*?</figure>', "", html, count=1, flags=re.S),
        "the ratio tables missing": re.sub(r'<table class="ratios".*?</table>', "", html, flags=re.S),
        "the bars missing": html.replace('class="tip"', 'class="bar"'),
        "the page cut short": html[: len(html) * 55 // 100],
    }


def malformed_inputs(tmp):
    rows = open(os.path.join(FIXTURES, "compare_fixture.csv"), encoding="utf-8").read().splitlines()
    files = {
        "missing.csv": None,
        "wrong-columns.csv": "threads,speed\n1,2\n",
        "ragged.csv": "\n".join(rows[:3] + [rows[3] + ",1,2,3"]) + "\n",
        "not-a-number.csv": "\n".join(rows[:1] + [rows[1].replace(",180000,", ",fast,", 1)]) + "\n",
        "binary.csv": b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00garbage",
        "empty.csv": "",
    }
    paths = []
    for name, content in files.items():
        path = os.path.join(tmp, name)
        if isinstance(content, bytes):
            open(path, "wb").write(content)
        elif content is not None:
            open(path, "w", encoding="utf-8").write(content)
        paths.append(path)
    return paths


def check_error_line(path, out_dir):
    out = os.path.join(out_dir, "should-not-exist.html")
    done = report("compare", path, "--out", out)
    lines = done.stderr.strip().splitlines()
    require(done.returncode != 0, f"{path}: exit status 0")
    require(len(lines) == 1, f"{path}: {len(lines)} lines on stderr, not 1: {done.stderr!r}")
    require(path in lines[0] and "Traceback" not in done.stderr, f"{path}: {lines[0]!r} does not name the file")
    require(not os.path.exists(out), f"{path}: a page was written anyway")


def main():
    results = []

    def run(name, check, *args):
        try:
            check(*args)
            results.append(True)
            print(f"ok: {name}")
        except (CheckFailed, browser.BrowserError) as e:
            results.append(False)
            print(f"FAILED: {name}: {e}")

    host = json.load(open(os.path.join(FIXTURES, "compare_fixture.host.json"), encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="walrus-report-check-") as tmp:
        for kind, (fixture, check) in CASES.items():
            rows = read_csv(os.path.join(FIXTURES, fixture))
            if kind != "compare":  # the compare check picks the medians itself
                rows = medians(rows)

            def render_and_check(kind=kind, check=check, rows=rows):
                root = rendered(make_page(kind, tmp))
                check_offline(root)
                check(root, rows, host)

            run(f"{kind} page from {fixture} renders with every chart and table", render_and_check)
        run(f"screenshot {SCREENSHOT}", lambda: browser.screenshot(os.path.join(tmp, "compare.html"), SCREENSHOT))

        good = open(os.path.join(tmp, "compare.html"), encoding="utf-8").read()
        compare_rows = read_csv(os.path.join(FIXTURES, "compare_fixture.csv"))
        for what, html in broken_variants(good).items():

            def must_reject(what=what, html=html):
                path = os.path.join(tmp, "broken.html")
                open(path, "w", encoding="utf-8").write(html)
                try:
                    check_compare(rendered(path), compare_rows, host)
                except CheckFailed as e:
                    print(f"   rejected as it must be: {e}")
                    return
                raise CheckFailed("the check accepted the broken page")

            run(f"the check rejects a compare page with {what}", must_reject)

        latency_rows = medians(read_csv(os.path.join(FIXTURES, "latency_fixture.csv")))
        latency = open(os.path.join(tmp, "latency.html"), encoding="utf-8").read()

        def latency_points_missing():
            path = os.path.join(tmp, "broken-latency.html")
            open(path, "w", encoding="utf-8").write(latency.replace('class="tip"', 'class="dot"'))
            try:
                check_latency(rendered(path), latency_rows, host)
            except CheckFailed as e:
                print(f"   rejected as it must be: {e}")
                return
            raise CheckFailed("the check accepted the broken page")

        run("the check rejects a latency page without its points", latency_points_missing)

        for path in malformed_inputs(tmp):
            run(f"{os.path.basename(path)} ends in one line naming the file", check_error_line, path, tmp)

    failed = results.count(False)
    print(f"test-report: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
