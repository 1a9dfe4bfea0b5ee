"""report.html: one self-contained page (plots as inline SVG, no network) beside report.json.

Rendered from report.json and ``PlotCounts`` (records.py): per group and plotted column, counts over
fixed bin edges, reduced file by file (row group by row group for ``rejects.parquet``) from the
``duration``/``similarity``/measure columns of ``data/*.parquet`` and ``rejects.parquet`` (never the
audio column, never all rows at once). `etl build` counts on the workers and writes it at the end;
`etl report OUT` rewrites it, counting in-process with the same functions.
"""

from __future__ import annotations

import html
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ..errors import UserError
from ..records import ColumnHistogram, PlotCounts
from ..schema import REJECT_REASONS
from . import charts, storage

REJECTED = "rejected"
_COLORS = {
    "train": "#4c72b0",
    "dev": "#dd8452",
    "test": "#55a868",
    "low_similarity": "#c44e52",
    REJECTED: "#9a9a9a",
}
_OTHER = "#8172b3"  # a group of no colour of its own

PLOTTED = ["duration", "similarity", "chars_per_second", "rms_db", "silence_fraction"]
BINS = 50
_BATCH = 65_536  # rows per record batch read: memory flat in file size


def plot_ranges(filters: dict, kept_max_duration: float | None) -> dict:
    """[lo, hi] of each plotted column: fixed, except that duration's reaches the longest kept row."""
    hi = max(
        kept_max_duration or 0.0,
        1.0,
        float(filters["max_duration"]) * 1.2 if filters.get("max_duration") is not None else 0.0,
    )
    return {
        "duration": (0.0, hi),
        "similarity": (0.0, 1.0),
        "chars_per_second": (0.0, 40.0),
        "rms_db": (-100.0, 0.0),
        "silence_fraction": (0.0, 1.0),
    }


def _edges(lo: float, hi: float) -> np.ndarray:
    return np.histogram_bin_edges(np.empty(0, np.float32), BINS, (lo, hi))


def count_rows(rows: pd.DataFrame, ranges: dict) -> PlotCounts:
    """``PlotCounts`` of rows in memory (a ``group`` column and some of ``PLOTTED``): pure."""
    parts = []
    for g, n in rows["group"].value_counts(sort=False).items():
        if n > 0:
            of_g = rows[rows["group"] == g]
            parts.append(
                _count_group(
                    str(g),
                    int(n),
                    {c: of_g[c].to_numpy(np.float32) for c in ranges if c in of_g},
                    ranges,
                )
            )
    return combine_plot_counts(parts, ranges)


def _count_group(group: str, n: int, values: dict, ranges: dict) -> PlotCounts:
    """``PlotCounts`` of ``n`` rows of one group; ``values``: column -> float32 array (NaN: none)."""
    columns: dict[str, ColumnHistogram] = {}
    for col, (lo, hi) in ranges.items():
        v = values.get(col, np.empty(0, np.float32))
        v = v[~np.isnan(v)]
        counts = np.histogram(np.clip(v, lo, hi), bins=_edges(lo, hi))[0]
        columns[col] = {
            "lo": lo,
            "hi": hi,
            "counts": {group: counts.tolist()},
            "values": {group: len(v)},
            "outside": int(((v < lo) | (v > hi)).sum()),
        }
    return {"groups": {group: n}, "columns": columns}


def combine_plot_counts(parts: list[PlotCounts], ranges: dict) -> PlotCounts:
    """The sum of partial counts (of files, row groups or batches) over the same ``ranges``."""
    total: PlotCounts = {
        "groups": {},
        "columns": {
            c: {"lo": lo, "hi": hi, "counts": {}, "values": {}, "outside": 0}
            for c, (lo, hi) in ranges.items()
        },
    }
    for p in parts:
        for g, n in p["groups"].items():
            total["groups"][g] = total["groups"].get(g, 0) + n
        for c, h in p["columns"].items():
            t = total["columns"][c]
            t["outside"] += h["outside"]
            for g, n in h["values"].items():
                t["values"][g] = t["values"].get(g, 0) + n
            for g, counts in h["counts"].items():
                t["counts"][g] = [a + b for a, b in zip(t["counts"].get(g, [0] * BINS), counts)]
    return total


def plot_pieces(fs, root: str) -> list[tuple]:
    """(file, group, row group or None: the whole file) of every row to plot: the final split files,
    and rejects.parquet one row group at a time (one large file, shared among tasks)."""
    data_dir = storage.join(root, storage.DATA_DIR)
    files = (
        sorted(fs.glob(storage.join(data_dir, storage.DATA_GLOB))) if fs.exists(data_dir) else []
    )
    pieces: list[tuple[str, str, int | None]] = [
        (path, split, None) for path in files for split in [storage.split_of(path)] if split
    ]
    rej = storage.join(root, storage.REJECTS_FILE)
    if fs.exists(rej):
        with fs.open(rej, "rb") as f:
            pieces += [(rej, REJECTED, i) for i in range(pq.ParquetFile(f).num_row_groups)]
    return pieces


def _batches(fs, piece: tuple, columns: list[str]):
    """The piece's rows, ``_BATCH`` at a time: (rows, {column: float32 array}); a column a file lacks
    (older rejects files) is left out."""
    path, _, row_group = piece
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        present = [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(
            batch_size=_BATCH,
            columns=present,
            row_groups=None if row_group is None else [row_group],
        ):
            yield (
                batch.num_rows,
                {
                    c: batch.column(c).to_numpy(zero_copy_only=False).astype(np.float32)
                    for c in present
                },
            )


def kept_max_duration(out: str, pieces: list[tuple]) -> float | None:
    """The longest kept row's duration among ``pieces`` (None: none), which sets duration's range."""
    fs, _ = storage.fs_and_path(out)
    best = None
    for piece in pieces:
        if piece[1] == REJECTED:
            continue
        for _, values in _batches(fs, piece, ["duration"]):
            v = values.get("duration", np.empty(0, np.float32))
            v = v[~np.isnan(v)]
            if len(v) and (best is None or v.max() > best):
                best = float(v.max())
    return best


def count_pieces(out: str, pieces: list[tuple], ranges: dict) -> PlotCounts:
    """``PlotCounts`` of ``pieces`` (a task on a worker, or ``load_plot_counts`` in-process), streamed."""
    fs, _ = storage.fs_and_path(out)
    total = combine_plot_counts([], ranges)
    for piece in pieces:
        for n, values in _batches(fs, piece, PLOTTED):
            total = combine_plot_counts([total, _count_group(piece[1], n, values, ranges)], ranges)
    return total


def load_plot_counts(out: str, filters: dict) -> PlotCounts:
    """``PlotCounts`` of the dataset in ``out``, in this process, one batch at a time."""
    fs, root = storage.fs_and_path(out)
    pieces = plot_pieces(fs, root)
    return count_pieces(out, pieces, plot_ranges(filters, kept_max_duration(out, pieces)))


def _counts_of_rows(rows: pd.DataFrame, filters: dict) -> PlotCounts:
    kept = rows.loc[rows["group"] != REJECTED, "duration"].dropna().astype("float32")
    return count_rows(rows, plot_ranges(filters, float(kept.max()) if len(kept) else None))


def _histogram(plots: PlotCounts, column: str, marks: dict, xlabel: str) -> str:
    """Stacked histogram per group; values outside [lo, hi] are counted in the end bins (said on the plot)."""
    h = plots["columns"][column]
    groups = [
        g
        for g in (*_COLORS, *sorted(set(plots["groups"]) - set(_COLORS)))
        if plots["groups"].get(g)
    ]
    if not any(h["values"].get(g) for g in groups):
        return "<p>No rows to plot.</p>"
    layers = [
        (
            f"{g} ({h['values'].get(g, 0)})",
            _COLORS.get(g, _OTHER),
            [float(n) for n in h["counts"].get(g, [0] * BINS)],
        )
        for g in groups
    ]
    outside = h["outside"]
    return charts.stacked_steps(
        _edges(h["lo"], h["hi"]).tolist(),
        layers,
        marks,
        xlabel
        + (f"   ({outside} row(s) outside the range counted in the end bins)" if outside else ""),
    )


def _plotted(plots: PlotCounts, column: str) -> bool:
    return any(plots["columns"][column]["values"].values())


def _bars(labels: list[str], values: list[float], xlabel: str, fmt: str, colors: list[str]) -> str:
    return charts.hbars(labels, values, xlabel, fmt, colors)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: dict, plots: PlotCounts | pd.DataFrame) -> str:
    """The whole page as a string (pure, given the report and the plots' counts, or rows to count:
    a frame with ``group`` and some of ``PLOTTED``)."""
    filters = report.get("config", {}).get("filters", {})
    if isinstance(plots, pd.DataFrame):
        plots = _counts_of_rows(plots, filters)
    splits = report["splits"]
    parts = [
        f"<h1>etl build report</h1><p>{report['rows_in']} rows in: {report['rows_out']} kept "
        f"({report['hours_out']:.3f} h), {report['rows_rejected']} rejected. Every row is in one split "
        "or in rejects.parquet.</p>"
    ]
    parts.append(
        _table(
            ["split", "rows", "hours", "files"],
            [[s, v["rows"], f"{v['hours']:.3f}", v["files"]] for s, v in splits.items()],
        )
    )

    parts.append("<h2>Duration</h2>")
    parts.append(
        _histogram(
            plots,
            "duration",
            {"min": filters.get("min_duration") or None, "max": filters.get("max_duration")},
            "duration (s)",
        )
    )
    parts.append(
        f"<p>Rows per split, and rejected rows in grey. Dashed lines: filters.min_duration = "
        f"{filters.get('min_duration')}, filters.max_duration = {filters.get('max_duration')}.</p>"
    )

    parts.append("<h2>Similarity of text and hypothesis</h2>")
    if _plotted(plots, "similarity"):
        parts.append(
            _histogram(
                plots, "similarity", {"threshold": filters.get("min_similarity")}, "similarity"
            )
        )
        parts.append(
            f"<p>Dashed line: the threshold filters.min_similarity = {filters.get('min_similarity')}; "
            "rows below it are rejected as low_similarity (or kept apart as their own split).</p>"
        )
    else:
        parts.append(
            "<p>No similarity to plot: the table has no hypothesis column (or no rows).</p>"
        )

    parts += _quality_sections(report, plots, filters)

    parts.append("<h2>Hours per split</h2>")
    if splits:
        parts.append(
            _bars(
                list(splits),
                [v["hours"] for v in splits.values()],
                "hours",
                ".3f",
                [_COLORS.get(s, _OTHER) for s in splits],
            )
        )

    parts.append("<h2>Rows per reject reason</h2>")
    rejects = report["rejects"]
    reasons = [r for r in (*REJECT_REASONS, *sorted(set(rejects) - set(REJECT_REASONS)))]
    if any(rejects.values()):
        parts.append(
            _bars(
                reasons,
                [rejects.get(r, 0) for r in reasons],
                "rows",
                "d",
                [_COLORS[REJECTED]] * len(reasons),
            )
        )
    parts.append(
        _table(
            ["reason", "rows", "meaning"],
            [[r, rejects.get(r, 0), REJECT_REASONS.get(r, "")] for r in reasons],
        )
    )

    parts += _shared_audio_section(report)

    parts.append("<h2>Characters outside the vocabulary</h2>")
    vocab = report.get("vocab", {})
    missing = vocab.get("missing_characters", {})
    parts.append(
        f"<p>vocab.json: {vocab.get('size', 0)} tokens from the train text. Characters of other splits "
        "it lacks (they would be [UNK]):</p>"
    )
    table = [[s, c, f"U+{ord(c):04X}", n] for s, chars in missing.items() for c, n in chars.items()]
    parts.append(
        _table(["split", "character", "code point", "occurrences"], table)
        if table
        else "<p>none</p>"
    )
    return _PAGE.format(body="\n".join(parts))


def _shared_audio_section(report: dict) -> list[str]:
    """The pairs of recordings sharing audio (report.json's ``duplicate_audio``)."""
    d = report.get("duplicate_audio") or {"fingerprints": False, "pairs": []}
    out = ["<h2>Recordings sharing audio</h2>"]
    if not d["fingerprints"]:
        return out + [
            "<p>No fingerprints of an earlier build were known before decoding: copies are found "
            "while decoding (docs/duplicates.md).</p>"
        ]
    rows = [
        [x["recording_a"], x["recording_b"], f"{x['offset']:+.2f}", f"{x['shared_hours']:.3f}"]
        + [f"{x['start_a']:.0f}-{x['end_a']:.0f}", x["hits"]]
        for x in d["pairs"]
    ]
    return out + [
        f"<p>{len(rows)} pairs; the later copy's rows on audio the first copy's kept rows hold are "
        f"rejected as duplicate_audio ({report['rejects'].get('duplicate_audio', 0)} rows), and "
        "the copies are placed in one split.</p>",
        _table(["recording", "copy in", "offset (s)", "hours shared", "shared (s)", "hits"], rows),
    ]


def _quality_sections(report: dict, plots: PlotCounts, filters: dict) -> list[str]:
    """Histograms of the per-clip measures with their thresholds, and the recordings, most suspect first."""
    cps = filters.get("chars_per_second") or [None, None]
    sections = [
        ("chars_per_second", "Characters per second", {"min": cps[0], "max": cps[1]}, "chars/s"),
        ("rms_db", "Clip level (RMS)", {"min_rms_db": filters.get("min_rms_db")}, "rms (dBFS)"),
        (
            "silence_fraction",
            "Silence in the clip",
            {"max": filters.get("max_silence_fraction")},
            "share of 10 ms frames 40 dB below the clip's loudest",
        ),
    ]
    parts = []
    for col, title, marks, xlabel in sections:
        parts.append(f"<h2>{title}</h2>")
        if _plotted(plots, col):
            parts.append(_histogram(plots, col, marks, xlabel))
            parts.append(
                "<p>Dashed lines: " + ", ".join(f"{k} = {v}" for k, v in marks.items()) + "</p>"
            )
        else:
            parts.append("<p>Nothing to plot.</p>")
    recs = report.get("recordings", {})
    parts.append(
        f"<h2>Recordings, most suspect first</h2><p>{len(report.get('suspects', {}))} suspect "
        f"recording(s) of {len(recs)}, listed in suspect_recordings.txt (usable in splits.exclude_ids; "
        "<code>etl sample --where 'recording in @suspects'</code> samples them). Suspicion: the largest "
        "robust z-score (median/MAD) against the corpus; suspect beyond 3.5.</p>"
    )
    cols = [
        "rows_in",
        "rows_kept",
        "fault_share",
        "median_similarity",
        "median_chars_per_second",
        "median_rms_db",
        "median_silence_fraction",
        "suspicion",
        "suspect",
    ]
    shown = list(recs.items())[:200]
    parts.append(
        _table(["recording", *cols], [[rec, *(_fmt(v.get(c)) for c in cols)] for rec, v in shown])
    )
    if len(recs) > len(shown):
        parts.append(f"<p>... {len(recs) - len(shown)} more in report.json.</p>")
    return parts


def _fmt(v) -> str:
    if v is None:
        return ""
    return f"{v:.2f}" if isinstance(v, float) else str(v)


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>etl build report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left}}
img,svg{{max-width:100%;height:auto}}</style></head>
<body>
{body}
</body></html>
"""


def write_report_html(out: str, report: dict | None = None, plots: PlotCounts | None = None) -> str:
    """Write ``out/report.html`` (atomically) from the dataset in ``out``; returns its path. ``plots``:
    counted by the build on the workers; else counted here, one record batch at a time."""
    fs, root = storage.fs_and_path(out)
    if report is None:
        path = storage.join(root, storage.REPORT_JSON)
        if not fs.exists(path):
            raise UserError(f"{path} not found: is {out} a dataset folder that etl build wrote?")
        with fs.open(path, "rb") as f:
            report = json.loads(f.read().decode("utf-8"))
    if plots is None:
        plots = load_plot_counts(out, report.get("config", {}).get("filters", {}))
    page = render(report, plots)
    dest = storage.join(root, storage.REPORT_HTML)
    storage.write_bytes(fs, dest, page.encode("utf-8"))
    return dest
