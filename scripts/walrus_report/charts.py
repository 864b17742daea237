"""Matplotlib charts rendered as inline SVG, each mark carrying a tooltip.

SVG keeps the page one file that stays sharp at any zoom, and a `<title>`
inside a mark's group is a tooltip every browser shows on hover without
any script. Matplotlib writes an artist with a gid as `<g id="gid">`; the
tooltip is put inside that group after rendering.
"""

import io
import itertools
from html import escape

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import EngFormatter  # noqa: E402

plt.rcParams.update(
    {
        "svg.fonttype": "none",  # text stays text: smaller, selectable, the page's font
        "svg.hashsalt": "walrus-report",  # same input, same SVG
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
)

_gids = itertools.count(1)
_PALETTE = plt.get_cmap("tab10").colors
REGION_COLOURS = {"linear": "#2ca02c", "plateau": "#ff7f0e", "decline": "#d62728"}


def colours(names):
    """A fixed colour per name (store, read mode...), the same in every chart of a page."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


class Chart:
    """One figure with one axes; marks added through it get tooltips."""

    def __init__(self, title, xlabel, ylabel, size=(5.6, 3.4)):
        self.fig, self.ax = plt.subplots(figsize=size)
        self.ax.set_title(title, fontsize=11, loc="left")
        self.ax.set_xlabel(xlabel)
        self.ax.set_ylabel(ylabel)
        self.ax.grid(True, alpha=0.3)
        self._tips = {}
        # Extra arguments of the legend (e.g. placing it beside the axes).
        self.legend_kw = {}

    def engineering_y(self, unit=""):
        """Tick labels like 500k and 1.2M."""
        self.ax.yaxis.set_major_formatter(EngFormatter(unit=unit, sep=""))

    def tip(self, artist, text, cls="tip"):
        gid = f"tip{next(_gids)}"
        artist.set_gid(gid)
        self._tips[gid] = (text, cls)

    def bar(self, x, height, colour, tip, label=None, **kw):
        (bar,) = self.ax.bar(x, height, color=colour, label=label, **kw)
        self.tip(bar, tip)
        return bar

    def grouped_bars(self, categories, series, value, tip, colour, log=False):
        """One group of bars per category, one bar per series in it;
        `value(category, series)` is None where there is no bar."""
        width = 0.8 / max(len(series), 1)
        labelled = set()
        for j, name in enumerate(series):
            offset = (j - (len(series) - 1) / 2) * width
            for i, category in enumerate(categories):
                v = value(category, name)
                if v is None:
                    continue
                label = None if name in labelled else name
                labelled.add(name)
                self.bar(i + offset, v, colour[name], tip(category, name), label=label, width=width * 0.95, log=log)
        self.ax.set_xticks(range(len(categories)), labels=categories)
        self.ax.grid(False, axis="x")

    def points(self, xs, ys, tips, colour, label, marker_colours=None, linestyle="-", marker="o"):
        """A line through the points, each point a mark with its own tooltip."""
        self.ax.plot(xs, ys, color=colour, label=label, linewidth=1.5, linestyle=linestyle)
        marker_colours = marker_colours or [colour] * len(xs)
        for x, y, text, c in zip(xs, ys, tips, marker_colours):
            (mark,) = self.ax.plot([x], [y], marker=marker, markersize=6, color=c, linestyle="none")
            self.tip(mark, text)

    def integer_x(self, values):
        self.ax.set_xticks(sorted(set(values)))

    def svg(self):
        """The figure as an `<svg>` element, closed and freed."""
        if self.ax.get_legend_handles_labels()[1]:
            self.ax.legend(**{"fontsize": 8, "frameon": False, **self.legend_kw})
        buf = io.StringIO()
        self.fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(self.fig)
        text = buf.getvalue()
        text = text[text.index("<svg") :]
        for gid, (tip, cls) in self._tips.items():
            text = text.replace(f'<g id="{gid}">', f'<g id="{gid}" class="{cls}"><title>{escape(tip)}</title>', 1)
        return text
