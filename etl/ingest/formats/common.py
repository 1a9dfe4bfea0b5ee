"""What every alignment reader shares: the canonical row it emits, file listing and grouping into
partitions, and malformed input.

A reader returns plain dicts with the keys of ``ROW_KEYS``; ``frame`` turns them into the canonical
table (``schema.TABLE_COLUMNS`` plus ``schema.EXTRA_TABLE_COLUMNS``). The listing is all the client
does: ``list_files`` names the files (and their sizes) without opening one, ``groups`` packs them
into partitions, and the workers read each partition's files.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import fsspec
import pandas as pd

from ...config import InputConfig
from ...schema import ENCODING, EXTRA_TABLE_COLUMNS, SPEAKER_IN_ID
from .. import segmentation

ROW_KEYS = (
    "id",
    "recording",
    "start",
    "end",
    "text",
    "hypothesis",
    "speaker",
    *EXTRA_TABLE_COLUMNS,
    ENCODING,
    SPEAKER_IN_ID,
)
# A partition: at most this many files, or about this many bytes (a single larger file is one partition).
FILES_PER_PART = 256
BYTES_PER_PART = 64 << 20


class File(NamedTuple):
    """A listed file: its url, its name relative to the listed folder, and its size in bytes."""

    url: str
    name: str
    size: int


class Malformed(Exception):
    """A file (or one of its recordings) that cannot be read: its line and what is wrong there."""

    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line, self.message = line, message

    def __reduce__(
        self,
    ):  # pickled as its two arguments: it crosses workers inside a jsonl block's rows,
        return type(self), (
            self.line,
            self.message,
        )  # and a value a worker cannot unpickle hangs the build (dask/distributed#7060)


def row(recording, start, end, text, **extra) -> dict:
    out = dict.fromkeys(ROW_KEYS)
    out.update(recording=recording, start=start, end=end, text=text, **extra)
    return out


def error_row(name: str, err: Malformed, recording=None) -> dict:
    """One ``unreadable_alignment`` row for a file (or a recording of it): its id names file and line."""
    where = f"{name} line {err.line}" if err.line else name
    return row(
        recording,
        None,
        None,
        None,
        id=f"{name}:{err.line}" if err.line else name,
        alignment_error=f"{where}: {err.message}",
    )


def segment_rows(
    recording, units, inp: InputConfig, *, hyp_units=None, with_words=True, **extra
) -> list[dict]:
    """Timed units of one recording (or one speaker of it) -> one row per segment. Units whose text
    is a pause label (``input.silence_labels``, or blank) are no words: they are the pauses."""
    seg_cfg, labels = inp.segmentation, inp.silence_labels
    segs = segmentation.segment(
        segmentation.speech(units, labels), seg_cfg.max_pause, seg_cfg.max_duration
    )
    hyps = (
        segmentation.overlay(segs, segmentation.speech(hyp_units, labels))
        if hyp_units is not None
        else [None] * len(segs)
    )
    return [
        row(
            recording,
            s.start,
            s.end,
            s.text,
            hypothesis=h,
            words=s.words() if with_words else None,
            **extra,
        )
        for s, h in zip(segs, hyps)
    ]


def check_order(units_with_lines: list) -> None:
    """Time-ordered (unit, line) pairs: negative times or durations, and overlapping words, are malformed."""
    for u, line in units_with_lines:
        if u.start < 0 or u.end < u.start:
            raise Malformed(line, f"{u.text!r} has start {u.start:g} s and end {u.end:g} s")
    bad = segmentation.first_overlap([u for u, _ in units_with_lines])
    if bad is not None:
        line = next(n for u, n in units_with_lines if u is bad[1])
        raise Malformed(
            line,
            f"{bad[1].text!r} at {bad[1].start:g} s overlaps {bad[0].text!r} "
            f"({bad[0].start:g}-{bad[0].end:g} s)",
        )


def frame(rows: list[dict]) -> pd.DataFrame:
    """The canonical frame: every column of ``ROW_KEYS`` in every partition (None where a row has no
    value), so all partitions match the declared ``meta``. Whether the dataset gets a ``words``
    column is decided downstream by whether any row holds words."""
    return pd.DataFrame(
        [[r[k] for k in ROW_KEYS] for r in rows], columns=list(ROW_KEYS), dtype=object
    )


def list_files(path: str, extensions: tuple) -> list[File]:
    """The files under ``path`` (searched recursively) with one of ``extensions`` (lowercase, with
    the dot), sorted by name; ``name`` is the path relative to the folder (a single file: its base
    name). Lists only: no file is opened."""
    fs, root = fsspec.core.url_to_fs(path)
    if not fs.isdir(root):
        return [File(path, root.rstrip("/").rsplit("/", 1)[-1], _size(fs, root))]
    root = root.rstrip("/")
    found = sorted(
        (p, info)
        for p, info in fs.find(root, detail=True).items()
        if p.lower().endswith(extensions)
    )
    return [
        File(
            p if _local(fs) else fs.unstrip_protocol(p),
            p[len(root) + 1 :],
            int(info.get("size") or 0),
        )
        for p, info in found
    ]


def groups(items: list, size=lambda item: item.size) -> list[list]:
    """``items`` in order, in consecutive groups of at most ``FILES_PER_PART`` items or about
    ``BYTES_PER_PART`` bytes; one (empty) group when there are none, so a table has a partition."""
    out: list[list] = []
    cur: list = []
    nbytes = 0
    for item in items:
        if cur and (len(cur) >= FILES_PER_PART or nbytes + size(item) > BYTES_PER_PART):
            out.append(cur)
            cur, nbytes = [], 0
        cur.append(item)
        nbytes += size(item)
    return out + [cur] if cur or not out else out


def _size(fs, p: str) -> int:
    """A single file's size; 0 when it cannot be told (a missing file fails where it is read)."""
    try:
        return int(fs.size(p) or 0)
    except (OSError, ValueError):
        return 0


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
        line = data[: e.start].count(b"\n") + 1
        raise Malformed(line, "not UTF-8 text") from None


def byte_ranges(url: str, size: int, step: int | None = None) -> list[tuple[int, int | None]]:
    """A line file's partitions as [lo, hi) byte ranges of about ``step`` bytes (default
    ``BYTES_PER_PART``; ``hi`` None: to the end), for ``block_lines``; a gzipped file is one range
    (it cannot be split)."""
    step = step or BYTES_PER_PART
    if url.lower().endswith(".gz") or size <= step:
        return [(0, None)]
    return [(lo, lo + step if lo + step < size else None) for lo in range(0, size, step)]


def block_lines(url: str, lo: int = 0, hi: int | None = None):
    """The raw lines (bytes, ending in "\\n" except perhaps the last) of a (possibly gzipped) file
    that start at a byte in [lo, hi) (``hi`` None: to the end), streamed. Consecutive blocks of a
    file give each line exactly once."""
    with fsspec.open(url, "rb", compression="infer") as f:
        pos = lo
        if lo > 0:
            f.seek(lo - 1)
            pos = lo - 1 + len(f.readline())  # the rest of a line that started before lo
        while hi is None or pos < hi:
            raw = f.readline()
            if not raw:
                return
            pos += len(raw)
            yield raw


def iter_lines(url: str, lo: int = 0, hi: int | None = None, first_line: int = 1):
    """(line number, text or Malformed) of the lines of ``block_lines``, numbered from
    ``first_line``: a line that is not UTF-8 is Malformed, and the lines after it are still read.
    Lines end at "\\n" (a "\\r" before it is dropped); a BOM at the start of the file is ignored."""
    return decode_lines(block_lines(url, lo, hi), first_line)


def decode_lines(raws, first_line: int = 1):
    """``iter_lines`` of raw lines already read (bytes, each ending in "\\n" but perhaps the last)."""
    for n, raw in enumerate(raws, first_line):
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield n, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield n, Malformed(n, "not UTF-8 text")


def json_record(n: int, line: str) -> dict | Malformed:
    """Line ``n`` of a JSON-lines file (not blank) as its JSON object, or Malformed: not JSON, or not
    an object."""
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        return Malformed(n, f"not JSON ({e.msg} at column {e.colno})")
    return rec if isinstance(rec, dict) else Malformed(n, "not a JSON object")
