"""The latency-vs-offered-load page (make show-latency, from make bench-latency).

Each row of the CSV is one open-loop cell: store calls issued on a fixed
schedule at `offered_rate` per second, latency counted from each call's
intended start (coordinated omission corrected). Per fsync mode and thread
count, one chart draws p50, p99 and p99.9 against the offered load, a line
per store and percentile: where a store's p99 turns upwards is the load it
stops keeping up with. The table beside it says what each store achieved
at each load, since a store that falls behind completes fewer calls than
were offered.
"""

from . import charts, page
from .writes import series_labels

_SERIES_COLUMNS = ("store", "batch_size", "entry_size", "topics")
# (name, column, line style, marker)
_PERCENTILES = (("p50", "p50_us", ":", "o"), ("p99", "p99_us", "--", "s"), ("p99.9", "p999_us", "-", "^"))


def build(df, _host):
    df = df.assign(series=series_labels(df, _SERIES_COLUMNS))
    colour = charts.colours(list(dict.fromkeys(df["series"])))
    groups = list(dict.fromkeys(zip(df["fsync_mode"], df["threads"])))
    figures, tables = [], []
    for mode, threads in groups:
        rows = df[(df["fsync_mode"] == mode) & (df["threads"] == threads)]
        figures.append(_chart(mode, threads, rows, colour))
        tables.append(_table(mode, threads, rows))
    return [
        page.section(
            "Latency vs offered load",
            page.note(
                "Open loop: calls issued on a fixed schedule; latency counts from each call's intended start, "
                "so time spent queued behind a slow call counts. Dotted: p50, dashed: p99, solid: p99.9; "
                "both axes log scale. The null store's lines are the harness's own floor (scheduling and "
                "timer wake-up)."
            ),
            page.grid(figures),
        ),
        page.section("Achieved vs offered load", *tables),
        page.section("Data", page.data_table(df.drop(columns="series"))),
    ]


def _chart(mode, threads, rows, colour):
    chart = charts.Chart(
        f"Latency vs offered load: {mode}, {threads} thr", "offered load (calls/s, log)", "µs (log)", size=(6.4, 3.6)
    )
    chart.legend_kw = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 7}
    for name, sub in rows.groupby("series", sort=False):
        sub = sub.sort_values("offered_rate")
        for pct, col, style, marker in _PERCENTILES:
            tips = [
                f"{name} {pct}: {getattr(r, col):,} µs at {r.offered_rate:,.0f}/s offered "
                f"({r.ops_per_sec:,.0f}/s achieved), {mode}, {threads} thr"
                for r in sub.itertuples()
            ]
            chart.points(
                list(sub["offered_rate"]),
                [max(v, 0.01) for v in sub[col]],
                tips,
                colour[name],
                f"{name} {pct}",
                linestyle=style,
                marker=marker,
            )
    chart.ax.set_xscale("log")
    chart.ax.set_yscale("log")
    loads = sorted(set(rows["offered_rate"]))
    chart.ax.set_xticks(loads, labels=[f"{x:,.0f}" for x in loads])
    chart.ax.minorticks_off()
    return page.figure(
        chart.svg(),
        f"fsync {mode}, {threads} thread(s): p50, p99, p99.9 per store against the offered load.",
        chart="latency-load",
        fsync=mode,
        threads=threads,
    )


def _table(mode, threads, rows):
    rows = rows.sort_values(["series", "offered_rate"], kind="stable")
    body = [
        [
            r.series,
            f"{r.offered_rate:,.0f}",
            f"{r.ops_per_sec:,.0f}",
            f"{r.ops_per_sec / r.offered_rate:.0%}" if r.offered_rate else "n/a",
            f"{r.p50_us:,.1f}",
            f"{r.p99_us:,.1f}",
            f"{r.p999_us:,.1f}",
        ]
        for r in rows.itertuples()
    ]
    return f"<h3>fsync {mode}, {threads} thread(s)</h3>" + page.table(
        ["store", "offered/s", "achieved/s", "achieved", "p50 µs", "p99 µs", "p99.9 µs"],
        body,
        "achieved",
        data={"fsync": mode, "threads": threads},
        row_data=[{"store": r.series, "rate": f"{r.offered_rate:.0f}"} for r in rows.itertuples()],
    )
