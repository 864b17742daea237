"""The thread-scaling page (make show-scaling), read as the guide says.

Each point is in the linear region (the added threads still pay), the
plateau (they no longer help: the disk or a lock is saturated) or the
decline (throughput fell: contention or cache thrashing). The suggested
thread count is the fewest threads that reach the plateau's throughput.
"""

from html import escape

from . import charts, page
from .writes import series_labels

# A point is "linear" when the threads added since the best point so far
# bring at least this share of what they would if scaling were perfect.
LINEAR_EFFICIENCY = 0.5
# Within this fraction of the best throughput counts as reaching it; falling
# further below the best so far is a decline.
PLATEAU_TOLERANCE = 0.10

_SERIES_COLUMNS = ("store", "fsync_mode", "batch_size", "entry_size", "topics")


def regions(threads, ops):
    """The region of each point; `threads` ascending, `ops` its throughput."""
    out = []
    best = 0  # index of the best point so far
    for i, (t, v) in enumerate(zip(threads, ops)):
        if i == 0:
            out.append("linear")
            continue
        if v < (1 - PLATEAU_TOLERANCE) * ops[best]:
            out.append("decline")
        elif v > ops[best] and _efficiency(threads[best], ops[best], t, v) >= LINEAR_EFFICIENCY:
            out.append("linear")
        else:
            out.append("plateau")
        if v > ops[best]:
            best = i
    return out


def _efficiency(t0, v0, t1, v1):
    """Share of the ideal gain from t0 to t1 threads that was reached."""
    ideal = t1 / t0 - 1
    return (v1 / v0 - 1) / ideal if ideal > 0 and v0 > 0 else 0.0


def suggested_threads(threads, ops):
    """The fewest threads within PLATEAU_TOLERANCE of the best throughput."""
    peak = max(ops)
    return next(t for t, v in zip(threads, ops) if v >= (1 - PLATEAU_TOLERANCE) * peak)


def build(df, _host):
    df = df.assign(series=series_labels(df, _SERIES_COLUMNS))
    parts = []
    figures = []
    for name, sub in df.groupby("series", sort=False):
        sub = sub.sort_values("threads").drop_duplicates("threads", keep="last")
        threads, ops = list(sub["threads"]), list(sub["ops_per_sec"])
        kinds = regions(threads, ops)
        best = suggested_threads(threads, ops)
        figures.append(_chart(name, sub, kinds, best))
        parts.append(_summary(name, sub, kinds, best))
    return [
        page.section(
            "Throughput vs threads",
            page.note(
                f"Green points scale linearly (added threads bring at least {LINEAR_EFFICIENCY:.0%} of their ideal "
                f"gain), orange ones are on the plateau (disk bandwidth or a lock saturated), red ones decline "
                f"(more than {PLATEAU_TOLERANCE:.0%} below the best: contention or cache thrashing). The dotted "
                "line is perfect scaling from one thread."
            ),
            page.grid(figures),
        ),
        page.section("Regions and suggested thread count", *parts),
        page.section("Data", page.data_table(df.drop(columns="series"))),
    ]


def _chart(name, sub, kinds, best):
    chart = charts.Chart(f"Scaling: {name}", "threads", "ops/s")
    chart.engineering_y()
    threads, ops = list(sub["threads"]), list(sub["ops_per_sec"])
    ideal = [ops[0] * t / threads[0] for t in threads]
    chart.ax.plot(threads, ideal, linestyle=":", color="#999", label="perfect scaling")
    tips = [
        f"{t} thread(s): {v:,.0f} ops/s, {r.mb_per_sec:,.1f} MiB/s, CPU {r.cpu_usage:.0f}% of a core; {k}"
        for t, v, k, r in zip(threads, ops, kinds, sub.itertuples())
    ]
    chart.points(threads, ops, tips, "#555", name, [charts.REGION_COLOURS[k] for k in kinds])
    chart.ax.axvline(best, color="#1f77b4", linestyle="--", linewidth=1, label=f"suggested: {best} thread(s)")
    chart.ax.set_ylim(0, max(ops) * 1.25)
    chart.integer_x(threads)
    return page.figure(chart.svg(), f"Suggested: {best} thread(s).", chart="scaling", series=name, suggested=best)


def _summary(name, sub, kinds, best):
    threads, ops = list(sub["threads"]), list(sub["ops_per_sec"])
    rows = [
        [str(t), f"{v:,.0f}", f"{v / ops[0]:.2f}×", f"{r.cpu_usage:.0f}%", (k, k)]
        for t, v, k, r in zip(threads, ops, kinds, sub.itertuples())
    ]
    table = page.table(
        ["threads", "ops/s", "speed-up over 1st", "CPU", "region"],
        rows,
        "regions",
        data={"series": name},
        row_data=[{"threads": t, "region": k} for t, k in zip(threads, kinds)],
    )
    return (
        f"<h3>{escape(name)}</h3>"
        f'<p class="suggestion" data-series="{escape(name)}" data-threads="{best}">'
        f"Suggested thread count: <strong>{best}</strong>. {escape(_advice(kinds, threads, best))}</p>"
        + table
    )


def _advice(kinds, threads, best):
    if best == threads[-1] and kinds[-1] == "linear":
        return "Still scaling at the most threads tried: try a wider THREADS range."
    if "decline" in kinds[threads.index(best) :]:
        return "More threads than this lose throughput: keep to the suggestion."
    return "More threads than this do not raise throughput."
