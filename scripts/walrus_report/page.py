"""One self-contained HTML page: inline CSS and SVG, nothing fetched.

The markup is what the render check (scripts/check_report.py) counts:
every chart is a `<figure class="chart" data-...>`, tables carry a class
naming what they hold.
"""

import math
import os
from datetime import datetime
from html import escape

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
       margin: 0 auto; padding: 1.2rem 2rem 3rem; max-width: 1500px; color: #222; background: #fafafa; }
h1 { font-size: 1.5rem; margin: 0 0 .2rem; }
h2 { font-size: 1.15rem; margin: 1.8rem 0 .6rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.source { color: #666; margin: 0; }
.host { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; margin-top: 1rem; }
.host dl { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; margin: 0; }
.host dt { font-weight: 600; }
.host dd { margin: 0; }
.note { color: #555; max-width: 80ch; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(430px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .5rem; }
figure.chart svg { width: 100%; height: auto; display: block; }
figure.chart g.tip:hover { opacity: .75; }
figcaption { color: #555; font-size: .85rem; padding: .2rem .3rem 0; }
table { border-collapse: collapse; background: #fff; margin: .4rem 0 1rem; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
td.better { background: #e3f4e1; } td.worse { background: #fbe4e2; } td.failed { color: #b00; }
td.linear { color: #2ca02c; } td.plateau { color: #c46200; } td.decline { color: #d62728; }
details summary { cursor: pointer; color: #444; }
table.data { font-size: .8rem; }
"""


def render(title, source_path, host, body):
    """The whole page; `body` is a list of HTML fragments."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="source">From {escape(os.path.basename(source_path))}, page made {stamp}. '
        "Hover over a bar or point for its figures.</p></header>"
        f"{host_block(host)}{''.join(body)}</body></html>\n"
    )


def host_block(host):
    """The hardware line and the disk's measured limits, or why there are none."""
    if host is None:
        return (
            '<section class="host missing"><p>No host figures: <code>make compare</code> measures '
            "fdatasync latency and disk bandwidth and writes them beside its CSV.</p></section>"
        )
    rows = [
        ("Hardware", host.hardware or "not recorded"),
        (
            "fdatasync (4 KiB)",
            f"p50 {number(host.fdatasync_p50_us)} µs, p99 {number(host.fdatasync_p99_us)} µs "
            f"(~{number(host.fdatasync_per_sec)}/s)",
        ),
        (
            "Disk write bandwidth",
            f"{number(host.flushed_write_mb_per_sec)} MiB/s including the fdatasync "
            f"({number(host.buffered_write_mb_per_sec)} MiB/s into the page cache)",
        ),
        ("Measured by", host.source),
    ]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return f'<section class="host"><dl>{items}</dl></section>'


def number(x, decimals=0):
    """1234567 -> '1,234,567'; NaN -> '?'."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    return f"{x:,.{decimals}f}"


def section(heading, *parts):
    return f"<section><h2>{escape(heading)}</h2>{''.join(parts)}</section>"


def note(text):
    return f'<p class="note">{escape(text)}</p>'


def figure(svg, caption, **data):
    """A chart; `data` become `data-*` attributes the render check reads."""
    return f'<figure class="chart"{_data_attrs(data)}>{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def grid(figures):
    return f'<div class="grid">{"".join(figures)}</div>'


def table(header, rows, cls, data=None, row_data=None):
    """A table; a cell is text or (text, css class); `row_data[i]` are the
    `data-*` attributes of row i."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        attrs = _data_attrs(row_data[i]) if row_data else ""
        body.append(f"<tr{attrs}>{''.join(_cell(c) for c in row)}</tr>")
    return (
        f'<table class="{cls}"{_data_attrs(data or {})}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def data_table(df):
    """Every row of the CSV, folded away under the charts."""
    return (
        f"<details><summary>All {len(df)} rows of the CSV</summary>"
        f'{df.to_html(index=False, classes="data", border=0)}</details>'
    )


def _cell(cell):
    text, cls = cell if isinstance(cell, tuple) else (cell, None)
    return f'<td class="{cls}">{escape(str(text))}</td>' if cls else f"<td>{escape(str(text))}</td>"


def _data_attrs(data):
    return "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in data.items())
