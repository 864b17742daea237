"""The read benchmark page (make show-reads).

Per consistency mode: MiB/s of single reads (read_next) beside batch reads
(batch_read) per store and thread count, and how many times faster the
batch reads were. The populate phase (`phase` = write) only sets up the
reads; it stays in the data table.
"""

from . import charts, page

_MODES_FIRST = ("single", "batch")


def build(df, _host):
    reads = df[df["phase"] == "read"]
    modes = sorted(reads["read_mode"].unique(), key=lambda m: (_MODES_FIRST + (m,)).index(m))
    colour = charts.colours(modes)
    consistencies = list(dict.fromkeys(reads["consistency"]))
    figures = [_chart(c, reads[reads["consistency"] == c], modes, colour) for c in consistencies]
    return [
        page.section(
            "Single vs batch reads, per consistency mode",
            page.note("Read phase only. Batch reads should move more MiB/s than single reads."),
            page.grid(figures),
            _batch_gain_table(reads),
        ),
        page.section("Data", page.data_table(df)),
    ]


def _key(row):
    return f"{row.store}\n{row.threads} thr"


def _chart(consistency, rows, modes, colour):
    chart = charts.Chart(f"Reads: {consistency}", "", "MiB/s")
    by_key = {(_key(r), r.read_mode): r for r in rows.itertuples()}
    categories = list(dict.fromkeys(_key(r) for r in rows.itertuples()))

    def tip(c, mode):
        r = by_key[c, mode]
        return (
            f"{r.store}, {r.threads} thread(s), {mode} reads, {consistency}: {r.mb_per_sec:,.1f} MiB/s, "
            f"{r.ops_per_sec:,.0f} entries/s, avg {r.avg_latency_us} µs per call"
        )

    chart.grouped_bars(
        categories,
        modes,
        lambda c, mode: by_key[c, mode].mb_per_sec if (c, mode) in by_key else None,
        tip,
        colour,
    )
    return page.figure(chart.svg(), f"{consistency}: one bar per read mode.", chart="reads", consistency=consistency)


def _batch_gain_table(reads):
    single = reads[reads["read_mode"] == "single"]
    batch = reads[reads["read_mode"] == "batch"]
    pairs = single.merge(batch, on=["consistency", "store", "threads"], suffixes=("_single", "_batch"))
    if pairs.empty:
        return ""
    rows = []
    for r in pairs.itertuples():
        gain = r.mb_per_sec_batch / r.mb_per_sec_single if r.mb_per_sec_single else float("inf")
        rows.append(
            [r.consistency, r.store, str(r.threads), f"{r.mb_per_sec_single:,.1f}", f"{r.mb_per_sec_batch:,.1f}",
             (f"{gain:.2f}×", "better" if gain > 1 else "worse")]
        )
    header = ["consistency", "store", "threads", "single MiB/s", "batch MiB/s", "batch ÷ single"]
    return "<h3>Batch reads against single reads</h3>" + page.table(header, rows, "batch-gain")
