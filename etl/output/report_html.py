"""report.html: one self-contained page (plots as embedded PNG, no network) beside report.json.

Rendered from report.json, the ``duration``/``similarity`` columns of ``data/*.parquet`` (never the
audio column) and ``rejects.parquet``. `etl build` writes it at the end; `etl report OUT` rewrites it.
"""
from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from . import storage
from ..config import ConfigError
from ..schema import REJECT_REASONS

REPORT_FILE = "report.html"
_REJECTED = "rejected"
_COLORS = {"train": "#4c72b0", "dev": "#dd8452", "test": "#55a868", "low_similarity": "#c44e52", _REJECTED: "#9a9a9a"}


_PLOTTED = ["duration", "similarity", "chars_per_second", "rms_db", "silence_fraction"]


def load_rows(fs, root: str) -> pd.DataFrame:
    """duration, similarity, the quality measures and group (split name, or 'rejected' with its reason) of every row."""
    frames = []
    data_dir = storage.join(root, storage.DATA_DIR)
    files = sorted(fs.glob(storage.join(data_dir, "*.parquet"))) if fs.exists(data_dir) else []
    for path in files:
        split = storage.split_of(path)
        if split:
            frames.append(_read(fs, path, _PLOTTED).assign(group=split, reason=None))
    rej = storage.join(root, "rejects.parquet")
    if fs.exists(rej):
        frames.append(_read(fs, rej, _PLOTTED + ["reason"]).assign(group=_REJECTED))
    if not frames:
        return pd.DataFrame({c: [] for c in _PLOTTED + ["group", "reason"]})
    rows = pd.concat(frames, ignore_index=True)
    return rows.astype({"group": "category", "reason": "category"})


def _read(fs, path: str, columns: list[str]) -> pd.DataFrame:
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        present = [c for c in columns if c in pf.schema_arrow.names]  # older rejects files lack some
        df = pf.read(columns=present).to_pandas()
    for c in columns:
        if c not in df:
            df[c] = np.nan
    # compact: four float32 columns and a category per row, for the histograms of millions of rows
    return df.astype({c: "float32" for c in columns if c in _PLOTTED} | ({"reason": "category"} if "reason" in df else {}))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return f'<img alt="" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _figure(width: float = 7.5, height: float = 3.2):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend (renders with Agg)

    fig = Figure(figsize=(width, height))
    return fig, fig.subplots()


def _histogram(rows: pd.DataFrame, column: str, lo: float, hi: float, marks: dict, xlabel: str) -> str:
    """Stacked histogram per group; values outside [lo, hi] are counted in the end bins (said on the plot)."""
    fig, ax = _figure()
    groups = [g for g in (*_COLORS, *sorted(set(rows["group"]) - set(_COLORS))) if (rows["group"] == g).any()]
    values = [rows.loc[rows["group"] == g, column].dropna().to_numpy() for g in groups]
    if not any(len(v) for v in values):
        return "<p>No rows to plot.</p>"
    outside = sum(int(((v < lo) | (v > hi)).sum()) for v in values)
    ax.hist([np.clip(v, lo, hi) for v in values], bins=50, range=(lo, hi), stacked=True,
            color=[_COLORS.get(g, None) for g in groups], label=[f"{g} ({len(v)})" for g, v in zip(groups, values)])
    for label, x in marks.items():
        if x is not None:
            ax.axvline(x, color="black", linestyle="--", linewidth=1)
            ax.annotate(f"{label} {x:g}", (x, 1), xycoords=("data", "axes fraction"), xytext=(3, -12),
                        textcoords="offset points", fontsize=8)
    ax.set_xlabel(xlabel + (f"   ({outside} row(s) outside the range counted in the end bins)" if outside else ""))
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    return _png(fig)


def _bars(labels: list[str], values: list[float], xlabel: str, fmt: str, colors=None) -> str:
    fig, ax = _figure(height=0.3 * len(labels) + 1.0)
    y = np.arange(len(labels))
    ax.barh(y, values, color=colors or "#4c72b0")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.annotate(format(v, fmt), (v, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.margins(x=0.15)
    if fmt == "d":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _png(fig)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: dict, rows: pd.DataFrame) -> str:
    """The whole page as a string (pure, given the report and the rows)."""
    filters = report.get("config", {}).get("filters", {})
    splits = report["splits"]
    parts = [f"<h1>etl build report</h1><p>{report['rows_in']} rows in: {report['rows_out']} kept "
             f"({report['hours_out']:.3f} h), {report['rows_rejected']} rejected. Every row is in one split "
             "or in rejects.parquet.</p>"]
    parts.append(_table(["split", "rows", "hours", "files"],
                        [[s, v["rows"], f"{v['hours']:.3f}", v["files"]] for s, v in splits.items()]))

    parts.append("<h2>Duration</h2>")
    kept = rows.loc[rows["group"] != _REJECTED, "duration"].dropna()
    hi = max(float(kept.max()) if len(kept) else 0.0, 1.0,
             float(filters["max_duration"]) * 1.2 if filters.get("max_duration") is not None else 0.0)
    parts.append(_histogram(rows, "duration", 0.0, hi, {"min": filters.get("min_duration") or None,
                                                          "max": filters.get("max_duration")}, "duration (s)"))
    parts.append(f"<p>Rows per split, and rejected rows in grey. Dashed lines: filters.min_duration = "
                 f"{filters.get('min_duration')}, filters.max_duration = {filters.get('max_duration')}.</p>")

    parts.append("<h2>Similarity of text and hypothesis</h2>")
    if rows["similarity"].notna().any():
        parts.append(_histogram(rows, "similarity", 0.0, 1.0, {"threshold": filters.get("min_similarity")},
                                "similarity"))
        parts.append(f"<p>Dashed line: the threshold filters.min_similarity = {filters.get('min_similarity')}; "
                     "rows below it are rejected as low_similarity (or kept apart as their own split).</p>")
    else:
        parts.append("<p>No similarity to plot: the table has no hypothesis column (or no rows).</p>")

    parts += _quality_sections(report, rows, filters)

    parts.append("<h2>Hours per split</h2>")
    if splits:
        parts.append(_bars(list(splits), [v["hours"] for v in splits.values()], "hours", ".3f",
                           [_COLORS.get(s, "#4c72b0") for s in splits]))

    parts.append("<h2>Rows per reject reason</h2>")
    rejects = report["rejects"]
    reasons = [r for r in (*REJECT_REASONS, *sorted(set(rejects) - set(REJECT_REASONS)))]
    if any(rejects.values()):
        parts.append(_bars(reasons, [rejects.get(r, 0) for r in reasons], "rows", "d", "#9a9a9a"))
    parts.append(_table(["reason", "rows", "meaning"], [[r, rejects.get(r, 0), REJECT_REASONS.get(r, "")]
                                                       for r in reasons]))

    parts.append("<h2>Characters outside the vocabulary</h2>")
    vocab = report.get("vocab", {})
    missing = vocab.get("missing_characters", {})
    parts.append(f"<p>vocab.json: {vocab.get('size', 0)} tokens from the train text. Characters of other splits "
                 "it lacks (they would be [UNK]):</p>")
    table = [[s, c, f"U+{ord(c):04X}", n] for s, chars in missing.items() for c, n in chars.items()]
    parts.append(_table(["split", "character", "code point", "occurrences"], table) if table else "<p>none</p>")
    return _PAGE.format(body="\n".join(parts))


def _quality_sections(report: dict, rows: pd.DataFrame, filters: dict) -> list[str]:
    """Histograms of the per-clip measures with their thresholds, and the recordings, most suspect first."""
    cps = filters.get("chars_per_second") or [None, None]
    plots = [("chars_per_second", "Characters per second", 0.0, 40.0, {"min": cps[0], "max": cps[1]}, "chars/s"),
             ("rms_db", "Clip level (RMS)", -100.0, 0.0, {"min_rms_db": filters.get("min_rms_db")}, "rms (dBFS)"),
             ("silence_fraction", "Silence in the clip", 0.0, 1.0,
              {"max": filters.get("max_silence_fraction")}, "share of 10 ms frames 40 dB below the clip's loudest")]
    parts = []
    for col, title, lo, hi, marks, xlabel in plots:
        parts.append(f"<h2>{title}</h2>")
        if col in rows and rows[col].notna().any():
            parts.append(_histogram(rows, col, lo, hi, marks, xlabel))
            parts.append("<p>Dashed lines: " + ", ".join(f"{k} = {v}" for k, v in marks.items()) + "</p>")
        else:
            parts.append("<p>Nothing to plot.</p>")
    recs = report.get("recordings", {})
    parts.append(f"<h2>Recordings, most suspect first</h2><p>{len(report.get('suspects', {}))} suspect "
                 f"recording(s) of {len(recs)}, listed in suspect_recordings.txt (usable in splits.exclude_ids; "
                 "<code>etl sample --where 'recording in @suspects'</code> samples them). Suspicion: the largest "
                 "robust z-score (median/MAD) against the corpus; suspect beyond 3.5.</p>")
    cols = ["rows_in", "rows_kept", "fault_share", "median_similarity", "median_chars_per_second", "median_rms_db",
            "median_silence_fraction", "suspicion", "suspect"]
    shown = list(recs.items())[:200]
    parts.append(_table(["recording", *cols], [[rec, *(_fmt(v.get(c)) for c in cols)] for rec, v in shown]))
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
img{{max-width:100%}}</style></head>
<body>
{body}
</body></html>
"""


def write_report_html(out: str, report: dict | None = None) -> str:
    """Write ``out/report.html`` (atomically) from the dataset in ``out``; returns its path."""
    fs, root = storage.fs_and_path(out)
    if report is None:
        path = storage.join(root, "report.json")
        if not fs.exists(path):
            raise ConfigError(f"{path} not found: is {out} a dataset folder that etl build wrote?")
        with fs.open(path, "rb") as f:
            report = json.loads(f.read().decode("utf-8"))
    page = render(report, load_rows(fs, root))
    dest = storage.join(root, REPORT_FILE)
    storage.write_bytes(fs, dest, page.encode("utf-8"))
    return dest
