"""Finding, loading and validating the harness's CSVs and the host figures.

Everything that can go wrong with a user's file ends here as a ReportError
whose message names the file, so the command line prints one line instead
of a traceback.
"""

import json
import os
import re
from dataclasses import dataclass, fields

import pandas as pd


class ReportError(Exception):
    """A problem with an input file, said in one line that names the file."""


@dataclass(frozen=True)
class Kind:
    """One kind of result CSV: its file name stem and the columns a report needs."""

    stem: str
    text_columns: tuple
    numeric_columns: tuple
    # (column, value) at least one row must have: the rows the report draws.
    needs_row: tuple = ()


_WRITE_NUMBERS = ("threads", "ops_per_sec", "mb_per_sec", "avg_latency_us", "p50_us", "p99_us", "p999_us")
_WRITE = ("fsync_mode", "store")

KINDS = {
    "writes": Kind("write_benchmark", _WRITE, _WRITE_NUMBERS + ("batch_size",)),
    "batch": Kind("batch_benchmark", _WRITE, _WRITE_NUMBERS + ("batch_size",)),
    "reads": Kind(
        "read_benchmark",
        ("phase", "store", "read_mode", "consistency"),
        ("threads", "ops_per_sec", "mb_per_sec", "avg_latency_us", "p50_us", "p99_us"),
        needs_row=("phase", "read"),
    ),
    "scaling": Kind(
        "scaling_benchmark",
        ("store", "fsync_mode"),
        ("threads", "ops_per_sec", "mb_per_sec", "cpu_usage"),
    ),
    "latency": Kind(
        "latency_benchmark",
        ("fsync_mode", "store"),
        ("threads", "offered_rate", "ops_per_sec", "p50_us", "p99_us", "p999_us"),
    ),
    "compare": Kind(
        "compare",
        ("round", "workload", "store", "guarantee", "status"),
        ("ops_per_sec", "mb_per_sec", "p50_us", "p99_us", "p999_us"),
        needs_row=("round", "median"),
    ),
}


def newest_csv(kind, directory):
    """The newest `<stem>_<timestamp>.csv` in `directory`, by the timestamp in its name."""
    pattern = re.compile(rf"^{re.escape(KINDS[kind].stem)}_\d{{8}}_\d{{6}}(_\d+)?\.csv$")
    try:
        names = sorted(n for n in os.listdir(directory) if pattern.match(n))
    except OSError:
        names = []
    if not names:
        raise ReportError(f"{directory}/{KINDS[kind].stem}_*.csv: no such file; run the benchmark first")
    return os.path.join(directory, names[-1])


def load(kind, path):
    """The CSV at `path` as a DataFrame, or a ReportError saying what is wrong with it."""
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise ReportError(f"{path}: not a readable CSV: {_first_line(e)}") from None
    spec = KINDS[kind]
    missing = [c for c in spec.text_columns + spec.numeric_columns if c not in df.columns]
    if missing:
        raise ReportError(f"{path}: not a {spec.stem} CSV: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise ReportError(f"{path}: no rows")
    for column in spec.numeric_columns:
        df[column] = _numbers(path, df, column)
    if spec.needs_row and not (df[spec.needs_row[0]] == spec.needs_row[1]).any():
        column, value = spec.needs_row
        raise ReportError(f"{path}: no row with {column} = {value}")
    return medians_only(kind, path, df)


def medians_only(kind, path, df):
    """The rows a page draws from a run with rounds: each case and store's
    median round (whole), not every round. CSVs from before rounds (no
    `round` column) are drawn as they are; the compare page picks its own."""
    if kind == "compare" or "round" not in df.columns:
        return df
    medians = df[df["round"] == "median"].reset_index(drop=True)
    if medians.empty:
        raise ReportError(f"{path}: no row with round = median (did every cell fail?)")
    return medians


def _numbers(path, df, column):
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(bad.idxmax())
        raise ReportError(
            f"{path}: line {row + 2}: column {column} is {df[column][row]!r}, not a number"
        )
    return values


def _first_line(e):
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass(frozen=True)
class Host:
    """What `make compare` measured of the host before running the stores."""

    source: str
    hardware: str = ""
    fdatasync_p50_us: float = float("nan")
    fdatasync_p99_us: float = float("nan")
    fdatasync_per_sec: float = float("nan")
    buffered_write_mb_per_sec: float = float("nan")
    flushed_write_mb_per_sec: float = float("nan")


_MD_HOST = re.compile(r"^- Host: (?P<hardware>.+)$", re.M)
_MD_PROBE = re.compile(
    r"^- Disk probe: fdatasync \(4 KiB\): p50 (?P<fdatasync_p50_us>[\d.]+) us, "
    r"p99 (?P<fdatasync_p99_us>[\d.]+) us \(~(?P<fdatasync_per_sec>[\d.]+)/s\); "
    r"buffered sequential write: (?P<buffered_write_mb_per_sec>[\d.]+) MiB/s "
    r"\((?P<flushed_write_mb_per_sec>[\d.]+) MiB/s",
    re.M,
)


def host_for(csv_path, kind, warn):
    """The host figures for a result: its own `.host.json` sidecar, else those
    in its compare Markdown (runs before the sidecar existed), else for the
    single-purpose benchmarks the newest compare run's in the same directory.
    None when nothing was measured; `warn` hears about unreadable files."""
    base = os.path.splitext(csv_path)[0]
    candidates = [base + ".host.json", base + ".md"]
    if kind != "compare":
        candidates += _newest_compare_sidecars(os.path.dirname(csv_path) or ".")
    for path in candidates:
        if os.path.isfile(path):
            host = _read_host(path, warn)
            if host:
                return host
    return None


def _newest_compare_sidecars(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    runs = [n for n in names if n.startswith("compare_") and n.endswith((".host.json", ".md"))]
    # Newest run first; within a run the sidecar before the Markdown.
    runs.sort(key=lambda n: (n.split(".")[0], n.endswith(".host.json")), reverse=True)
    return [os.path.join(directory, n) for n in runs]


def _read_host(path, warn):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        values = json.loads(text) if path.endswith(".json") else _host_from_markdown(text)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        warn(f"{path}: ignored, unreadable host figures: {_first_line(e)}")
        return None
    if not isinstance(values, dict) or not values:
        return None
    known = {f.name for f in fields(Host)} - {"source"}
    try:
        return Host(source=os.path.basename(path),
                    **{k: (str(v) if k == "hardware" else float(v)) for k, v in values.items() if k in known})
    except (TypeError, ValueError) as e:
        warn(f"{path}: ignored, unreadable host figures: {_first_line(e)}")
        return None


def _host_from_markdown(text):
    values = {}
    for pattern in (_MD_HOST, _MD_PROBE):
        match = pattern.search(text)
        if match:
            values.update(match.groupdict())
    return values
