"""What every alignment reader shares: the canonical row it emits, file listing, and malformed input.

A reader returns plain dicts with the keys of ``ROW_KEYS``; ``frame`` turns them into the canonical
table (``schema.TABLE_COLUMNS`` plus the optional ``schema.EXTRA_TABLE_COLUMNS`` that hold a value).
"""
from __future__ import annotations

import io

import fsspec
import pandas as pd

from .. import segmentation
from ...schema import EXTRA_TABLE_COLUMNS

ROW_KEYS = ("id", "recording", "start", "end", "text", "hypothesis", "speaker", *EXTRA_TABLE_COLUMNS)
_OPTIONAL = ("speaker", *EXTRA_TABLE_COLUMNS)


class Malformed(Exception):
    """A file (or one of its recordings) that cannot be read: its line and what is wrong there."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def row(recording, start, end, text, **extra) -> dict:
    out = dict.fromkeys(ROW_KEYS)
    out.update(recording=recording, start=start, end=end, text=text, **extra)
    return out


def error_row(name: str, err: Malformed, recording=None) -> dict:
    """One ``unreadable_alignment`` row for a file (or a recording of it): its id names file and line."""
    where = f"{name} line {err.line}" if err.line else name
    return row(recording, None, None, None, id=f"{name}:{err.line}" if err.line else name,
               alignment_error=f"{where}: {err.message}")


def segment_rows(recording, units, seg_cfg: dict, *, hyp_units=None, with_words=True, **extra) -> list[dict]:
    """Timed units of one recording (or one speaker of it) -> one row per segment."""
    segs = segmentation.segment(segmentation.speech(units), seg_cfg["max_pause"], seg_cfg["max_duration"])
    hyps = segmentation.overlay(segs, segmentation.speech(hyp_units)) if hyp_units is not None else [None] * len(segs)
    return [row(recording, s.start, s.end, s.text, hypothesis=h, words=s.words() if with_words else None, **extra)
            for s, h in zip(segs, hyps)]


def check_order(units_with_lines: list) -> None:
    """Time-ordered (unit, line) pairs: negative times or durations, and overlapping words, are malformed."""
    for u, line in units_with_lines:
        if u.start < 0 or u.end < u.start:
            raise Malformed(line, f"{u.text!r} has start {u.start:g} s and end {u.end:g} s")
    bad = segmentation.first_overlap([u for u, _ in units_with_lines])
    if bad is not None:
        line = next(n for u, n in units_with_lines if u is bad[1])
        raise Malformed(line, f"{bad[1].text!r} at {bad[1].start:g} s overlaps {bad[0].text!r} "
                              f"({bad[0].start:g}-{bad[0].end:g} s)")


def frame(rows: list[dict]) -> pd.DataFrame:
    """The canonical frame; an optional column only when some row holds a value in it, so an input
    without word timings gives exactly today's table (and output)."""
    keep = [k for k in ROW_KEYS if k not in _OPTIONAL or any(r[k] is not None for r in rows)]
    return pd.DataFrame([[r[k] for k in keep] for r in rows], columns=keep, dtype=object)


def list_files(path: str, extensions: tuple) -> list[tuple[str, str]]:
    """(url, name) of the files under ``path`` (searched recursively) with one of ``extensions``
    (lowercase, with the dot), sorted by name; ``name`` is the path relative to the folder (a single
    file: its base name)."""
    fs, root = fsspec.core.url_to_fs(path)
    if not fs.isdir(root):
        return [(path, root.rstrip("/").rsplit("/", 1)[-1])]
    root = root.rstrip("/")
    found = sorted(p for p in fs.find(root) if p.lower().endswith(extensions))
    return [(p if _local(fs) else fs.unstrip_protocol(p), p[len(root) + 1:]) for p in found]


def _local(fs) -> bool:
    proto = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    return proto in ("file", "local")


def read_text(url: str) -> str:
    """A whole text file (UTF-8, a BOM ignored); not UTF-8 is malformed."""
    with fsspec.open(url, "rb", compression="infer") as f:
        data = f.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise Malformed(line, "not UTF-8 text") from None


def iter_lines(url: str):
    """(line number, text) of a (possibly gzipped) text file, streamed."""
    with fsspec.open(url, "rb", compression="infer") as f:
        for n, raw in enumerate(io.TextIOWrapper(f, encoding="utf-8-sig", errors="strict"), 1):
            yield n, raw.rstrip("\r\n")
