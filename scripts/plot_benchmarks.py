#!/usr/bin/env python3
"""Graphs of the harness's CSV results (make show-writes / show-reads / show-scaling / show-compare).

Reads the newest benchmarks/<kind>_<timestamp>.csv (or the file given), draws
the guide's graphs (throughput vs threads per fsync mode, latency
percentiles, bandwidth, CPU), writes them as PNGs into one self-contained
HTML page next to the CSV, and opens it in a browser when one is available.
Needs pandas and matplotlib (`make plot-deps` installs them into .venv).
"""

import argparse
import base64
import glob
import io
import os
import sys
import webbrowser

STEMS = {
    "writes": "write_benchmark",
    "reads": "read_benchmark",
    "scaling": "scaling_benchmark",
    "batch": "batch_benchmark",
    "compare": "compare",
}


def newest(stem, directory):
    files = sorted(glob.glob(os.path.join(directory, f"{stem}_*.csv")), key=os.path.getmtime)
    if not files:
        sys.exit(f"no {stem}_*.csv in {directory}/: run the benchmark first")
    return files[-1]


def png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def series_label(row_keys, keys):
    return " ".join(f"{k}={v}" for k, v in zip(keys, row_keys if isinstance(row_keys, tuple) else (row_keys,)))


def line_plot(plt, df, x, y, group_by, title, ylabel, logy=False):
    fig, ax = plt.subplots(figsize=(7, 4))
    for keys, sub in df.groupby(group_by):
        sub = sub.sort_values(x)
        ax.plot(sub[x], sub[y], marker="o", label=series_label(keys, group_by))
    ax.set_title(title)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def bar_plot(plt, df, label_cols, y, title, ylabel, logy=False):
    fig, ax = plt.subplots(figsize=(max(7, len(df) * 0.5), 4))
    labels = df[label_cols].astype(str).agg(" ".join, axis=1)
    ax.bar(range(len(df)), df[y])
    ax.set_xticks(range(len(df)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def figures(kind, df, plt):
    figs = []
    if kind in ("writes", "batch", "scaling"):
        groups = [c for c in ("store", "fsync_mode", "batch_size") if c in df.columns and df[c].nunique() > 1]
        groups = groups or ["store"]
        figs.append(line_plot(plt, df, "threads", "ops_per_sec", groups, "Throughput vs threads", "ops/s", logy=True))
        figs.append(line_plot(plt, df, "threads", "mb_per_sec", groups, "Bandwidth vs threads", "MiB/s"))
        figs.append(line_plot(plt, df, "threads", "p99_us", groups, "p99 latency vs threads", "µs", logy=True))
        if "cpu_usage" in df.columns:
            figs.append(line_plot(plt, df, "threads", "cpu_usage", groups, "CPU vs threads", "% of one core"))
    elif kind == "reads":
        reads = df[df["phase"] == "read"]
        groups = [c for c in ("store", "consistency", "read_mode") if reads[c].nunique() > 1] or ["store"]
        figs.append(line_plot(plt, reads, "threads", "ops_per_sec", groups, "Read throughput vs threads", "ops/s", logy=True))
        figs.append(line_plot(plt, reads, "threads", "mb_per_sec", groups, "Read bandwidth vs threads", "MiB/s"))
        figs.append(bar_plot(plt, df, ["phase", "store", "threads", "consistency", "read_mode"], "avg_latency_us",
                             "Average latency per call", "µs", logy=True))
    elif kind == "compare":
        med = df[df["round"] == "median"]
        for workload, sub in med.groupby("workload", sort=False):
            figs.append(bar_plot(plt, sub, ["store"], "ops_per_sec", f"{workload}: median ops/s", "ops/s"))
    return figs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=sorted(STEMS))
    ap.add_argument("csv", nargs="?", help="CSV file (default: the newest of its kind)")
    ap.add_argument("--dir", default="benchmarks")
    ap.add_argument("--no-open", action="store_true", help="write the page but do not open a browser")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd
    except ImportError as e:
        sys.exit(f"{e}: run `make plot-deps` (or pip install pandas matplotlib)")

    path = args.csv or newest(STEMS[args.kind], args.dir)
    df = pd.read_csv(path)
    if df.empty:
        sys.exit(f"{path} has no rows")
    images = [png(f) for f in figures(args.kind, df, plt)]
    html_path = os.path.splitext(path)[0] + ".html"
    with open(html_path, "w") as out:
        out.write(f"<!doctype html><meta charset=utf-8><title>{os.path.basename(path)}</title>")
        out.write(f"<h1>{os.path.basename(path)}</h1>")
        for img in images:
            out.write(f'<p><img src="data:image/png;base64,{img}"></p>')
        out.write("<h2>Data</h2>" + df.to_html(index=False))
    print(f"wrote {html_path}")
    if not args.no_open and (os.environ.get("DISPLAY") or sys.platform == "darwin"):
        webbrowser.open("file://" + os.path.abspath(html_path))


if __name__ == "__main__":
    main()
