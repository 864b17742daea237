"""The write benchmark page (make show-writes, and show-batch for batch CSVs).

Per fsync mode: throughput against threads and the latency percentiles;
then the bandwidth every run reached against the disk bandwidth the host
probe measured, which is what a disk-bound run should approach.
"""

from . import charts, page

# Columns that tell runs of one fsync mode apart, when they vary.
_SERIES_COLUMNS = ("store", "batch_size", "entry_size", "topics")
_PERCENTILES = (("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us"))
_SHORT = {"batch_size": "batch", "entry_size": "entry", "fsync_mode": "fsync"}
_PERCENTILE_COLOURS = {"p50": "#9ecae1", "p99": "#4292c6", "p99.9": "#08519c"}


def build(df, host):
    df = df.assign(series=series_labels(df, _SERIES_COLUMNS))
    modes = list(dict.fromkeys(df["fsync_mode"]))
    colour = charts.colours(list(dict.fromkeys(df["series"])))
    throughput = [_throughput_chart(mode, df[df["fsync_mode"] == mode], colour) for mode in modes]
    latency = [_latency_chart(mode, df[df["fsync_mode"] == mode]) for mode in modes]
    disk = host.flushed_write_mb_per_sec if host else None
    return [
        page.section("Throughput vs threads, per fsync mode", page.grid(throughput)),
        page.section(
            "Latency percentiles, per fsync mode",
            page.note("Per store call (a batch is one call), log scale."),
            page.grid(latency),
        ),
        page.section(
            "Bandwidth utilisation",
            page.note(_bandwidth_note(disk)),
            page.grid([_bandwidth_chart(df, colour, disk)]),
            _bandwidth_table(df, disk),
        ),
        page.section("Data", page.data_table(df.drop(columns="series"))),
    ]


def series_labels(df, columns):
    """'walrus-fd', or 'walrus-fd, batch 100' when batch sizes vary: the store
    names a run, with whichever of the other columns vary."""
    varying = [c for c in columns if c != "store" and c in df.columns and df[c].nunique() > 1]

    def label(row):
        return ", ".join([str(row["store"])] + [f"{_SHORT.get(c, c)} {row[c]}" for c in varying])

    return df.apply(label, axis=1)


def _throughput_chart(mode, rows, colour):
    chart = charts.Chart(f"Throughput vs threads: {mode}", "threads", "ops/s")
    chart.engineering_y()
    for name, sub in rows.groupby("series", sort=False):
        sub = sub.sort_values("threads")
        tips = [
            f"{name}, {r.threads} thread(s), {mode}: {r.ops_per_sec:,.0f} ops/s, {r.mb_per_sec:,.1f} MiB/s, "
            f"avg {r.avg_latency_us} µs"
            for r in sub.itertuples()
        ]
        chart.points(list(sub["threads"]), list(sub["ops_per_sec"]), tips, colour[name], name)
    chart.integer_x(rows["threads"])
    chart.ax.set_ylim(0, rows["ops_per_sec"].max() * 1.15)
    return page.figure(chart.svg(), f"fsync {mode}: one line per store.", chart="throughput", fsync=mode)


def _latency_chart(mode, rows):
    chart = charts.Chart(f"Latency percentiles: {mode}", "", "µs per call (log)")
    categories = [f"{r.series}\n{r.threads} thr" for r in rows.itertuples()]
    values = {(c, name): getattr(r, col) for c, r in zip(categories, rows.itertuples()) for name, col in _PERCENTILES}
    chart.grouped_bars(
        categories,
        [name for name, _ in _PERCENTILES],
        lambda c, name: values[c, name] or None,
        lambda c, name: f"{c.replace(chr(10), ', ')}, {mode}: {name} {values[c, name]:,} µs",
        _PERCENTILE_COLOURS,
        log=True,
    )
    return page.figure(chart.svg(), f"fsync {mode}: p50, p99, p99.9 per store and thread count.",
                       chart="latency", fsync=mode)


def _bandwidth_chart(df, colour, disk):
    chart = charts.Chart("Bandwidth per run", "", "MiB/s")
    categories = list(dict.fromkeys(f"{r.fsync_mode}\n{r.threads} thr" for r in df.itertuples()))
    mb = {(f"{r.fsync_mode}\n{r.threads} thr", r.series): r.mb_per_sec for r in df.itertuples()}

    def tip(c, name):
        share = f" = {mb[c, name] / disk:.0%} of the disk's {disk:,.0f} MiB/s" if disk else ""
        return f"{name}, {c.replace(chr(10), ', ')}: {mb[c, name]:,.1f} MiB/s{share}"

    chart.grouped_bars(categories, list(colour), lambda c, name: mb.get((c, name)), tip, colour)
    if disk:
        chart.ax.axhline(disk, color="#b00000", linestyle="--", linewidth=1,
                         label=f"disk incl. fdatasync: {disk:,.0f} MiB/s")
    return page.figure(chart.svg(), "MiB/s of payload per run, against the measured disk bandwidth.",
                       chart="bandwidth", disk_mb_per_sec=f"{disk:.0f}" if disk else "")


def _bandwidth_note(disk):
    if not disk:
        return "No disk bandwidth was measured for this host (make compare probes it), so there is no line to read against."
    return (
        f"The dashed line is the host's sequential write bandwidth including the final fdatasync "
        f"({disk:,.0f} MiB/s). Runs without fsync can pass it: their bytes are still in the page cache."
    )


def _bandwidth_table(df, disk):
    header = ["run", "fsync", "threads", "MiB/s"] + (["of disk bandwidth"] if disk else [])
    rows = [
        [r.series, r.fsync_mode, str(r.threads), f"{r.mb_per_sec:,.1f}"] + ([f"{r.mb_per_sec / disk:.0%}"] if disk else [])
        for r in df.itertuples()
    ]
    return page.table(header, rows, "bandwidth")
