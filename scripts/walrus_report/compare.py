"""The store comparison page (make show-compare).

One bar chart per workload with every store side by side (the median over
the rounds, whiskers from the slowest to the fastest round), then the
medians and their ratios as tables: to the reference walrus store, to
RocksDB and to the raw-file baseline, the ratios people publish.
"""

from . import charts, page

RATIO_BASELINES = ("rocksdb", "raw")


def build(df, _host):
    workloads = list(dict.fromkeys(df["workload"]))
    stores = list(dict.fromkeys(df["store"]))
    medians = df[df["round"] == "median"]
    ops = {(r.workload, r.store): r.ops_per_sec for r in medians.itertuples()}
    colour = charts.colours(stores)
    figures = [
        _workload_chart(w, stores, medians[medians["workload"] == w], df[df["workload"] == w], colour)
        for w in workloads
    ]
    tables = [_medians_table(workloads, stores, ops)]
    tables += [_ratio_table(workloads, stores, ops, b) for b in _baselines(stores)]
    return [
        page.section(
            "Throughput per workload",
            page.note(
                "Bars are the median ops/s over the rounds; whiskers reach from the slowest to the "
                "fastest round. A store without a bar failed the workload (its reason is in the data)."
            ),
            page.grid(figures),
        ),
        page.section(
            "Ratios",
            page.note(
                "Each store's median ops/s divided by the baseline's, per workload. Ratios compare "
                "stores under the same fsync mode; what each mode promises differs (hover the bars)."
            ),
            *tables,
        ),
        page.section("Data", page.data_table(df)),
    ]


def _workload_chart(workload, stores, medians, rows, colour):
    chart = charts.Chart(workload, "", "ops/s (median)")
    chart.engineering_y()
    by_store = {r.store: r for r in medians.itertuples()}
    for x, store in enumerate(stores):
        m = by_store.get(store)
        if m is None:
            _failed_mark(chart, x, store, rows[rows["store"] == store])
            continue
        rounds = rows[(rows["store"] == store) & (rows["round"] != "median") & (rows["status"] == "ok")]
        low, high = rounds["ops_per_sec"].min(), rounds["ops_per_sec"].max()
        whisker = [[m.ops_per_sec - low], [high - m.ops_per_sec]] if len(rounds) else None
        tip = (
            f"{store}: {m.ops_per_sec:,.0f} ops/s, {m.mb_per_sec:,.1f} MiB/s (median of {len(rounds)} rounds"
            + (f", {low:,.0f} to {high:,.0f}" if len(rounds) else "")
            + f")\np50 {m.p50_us} µs, p99 {m.p99_us} µs, p99.9 {m.p999_us} µs\nguarantee: {m.guarantee}"
        )
        chart.bar(x, m.ops_per_sec, colour[store], tip, yerr=whisker, capsize=3, ecolor="#444")
    chart.ax.set_xticks(range(len(stores)), labels=stores, rotation=15)
    chart.ax.grid(False, axis="x")
    guarantees = medians["guarantee"].nunique()
    caption = "Guarantees differ between stores here: hover a bar for each." if guarantees > 1 else (
        f"Every store: {medians['guarantee'].iloc[0]}." if guarantees else "")
    return page.figure(chart.svg(), caption, workload=workload, stores=len(stores))


def _failed_mark(chart, x, store, rows):
    reasons = [s for s in rows["status"] if s != "ok"]
    text = chart.ax.text(x, 0, "failed", rotation=90, ha="center", va="bottom", color="#b00000")
    chart.tip(text, f"{store}: {reasons[0] if reasons else 'no result'}", cls="tip failed")


def _baselines(stores):
    """The reference walrus store (the fd backend if present), then the
    published baselines that ran."""
    walrus = [s for s in stores if s == "walrus-fd"] or [s for s in stores if s.startswith("walrus")]
    return list(dict.fromkeys(walrus[:1] + [b for b in RATIO_BASELINES if b in stores]))


def _medians_table(workloads, stores, ops):
    rows = [
        [w] + [(f"{ops[w, s]:,.0f}", None) if (w, s) in ops else ("failed", "failed") for s in stores]
        for w in workloads
    ]
    return "<h3>Median ops/s</h3>" + page.table(["workload"] + stores, rows, "medians")


def _ratio_table(workloads, stores, ops, baseline):
    rows = [[w] + [_ratio_cell(ops.get((w, s)), ops.get((w, baseline))) for s in stores] for w in workloads]
    return f"<h3>Relative to {baseline}</h3>" + page.table(
        ["workload"] + stores, rows, "ratios", data={"baseline": baseline}
    )


def _ratio_cell(value, base):
    if value is None:
        return ("failed", "failed")
    if not base:
        return ("n/a", None)
    ratio = value / base
    cls = "better" if ratio >= 1.005 else "worse" if ratio <= 0.995 else None
    return (f"{ratio:.2f}×", cls)
