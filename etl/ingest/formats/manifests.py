"""JSON-lines manifests with one segment per line: NeMo (``audio_filepath``, ``offset``, ``duration``,
``text``, ``pred_text``) and lhotse SupervisionSets (``id``, ``recording_id``, ``start``, ``duration``,
``text``, ``speaker``, ``alignment``), plain or gzipped.

lhotse supervisions are read directly (they are plain JSON lines), without lhotse itself. A line that
is not JSON, or lacks a field the format requires, is one ``unreadable_alignment`` row naming the
file and line; every other line is still read (a line that is not UTF-8 too). Negative durations pass
through as segments whose end precedes their start, and so become ``bad_timestamps``.

A plain file is read in byte blocks (``blocks``), each on a worker; a line's number counts the lines
of the blocks before it (``count_lines``).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from ...config import InputConfig
from . import common
from .common import Malformed, block_lines, error_row, iter_lines, json_record, list_files, row

EXTENSIONS = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


class Block(NamedTuple):
    """The lines of a manifest file that start at a byte in [lo, hi) (``hi`` None: to its end)."""

    url: str
    name: str
    lo: int
    hi: int | None


def blocks(path: str) -> list[Block]:
    """The manifest's partitions, from the listing alone: a plain file in blocks of about
    ``BYTES_PER_PART``; a gzipped one whole (it cannot be split)."""
    return [
        Block(f.url, f.name, lo, hi)
        for f in list_files(path, EXTENSIONS)
        for lo, hi in common.byte_ranges(f.name, f.size)
    ]


def count_lines(block: Block) -> int:
    """How many lines start in the block (the next block of the file numbers its lines from there)."""
    return sum(1 for _ in block_lines(block.url, block.lo, block.hi))


def _records(block: Block, first_line: int, required: tuple):
    """(line, record) of each JSON object line, or (line, Malformed)."""
    for n, line in iter_lines(block.url, block.lo, block.hi, first_line):
        if isinstance(line, Malformed):
            yield n, line
            continue
        if not line.strip():
            continue
        rec = json_record(n, line)
        if isinstance(rec, Malformed):
            yield n, rec
            continue
        missing = [k for k in required if rec.get(k) is None]
        yield n, (Malformed(n, f"no {missing[0]!r} field") if missing else rec)


def _seconds(value):
    """A JSON number as float; anything else is passed on for the row checks to reject."""
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    )


def _end(start, duration):
    if isinstance(start, float) and isinstance(duration, float):
        return round(start + duration, 6)
    return None


def relative_recording(audio_filepath: str, audio_root: str | None) -> str:
    """A manifest's ``audio_filepath`` as the table would hold it: relative to ``input.audio`` when
    it lies inside it, else as given."""
    if audio_root and "://" not in audio_root and os.path.isabs(audio_filepath):
        root = os.path.normpath(audio_root)
        path = os.path.normpath(audio_filepath)
        if path.startswith(root + os.sep):
            return path[len(root) + 1 :]
    return audio_filepath


def read_nemo_part(block: Block, inp: InputConfig, first_line: int = 1) -> list[dict]:
    """The rows of one block of a NeMo manifest whose first line is ``first_line`` of its file."""
    rows = []
    for _n, rec in _records(block, first_line, ("audio_filepath", "duration")):
        if isinstance(rec, Malformed):
            rows.append(error_row(block.name, rec))
            continue
        start, dur = _seconds(rec.get("offset") or 0.0), _seconds(rec["duration"])
        hyp = rec.get("pred_text")
        rows.append(
            row(
                relative_recording(str(rec["audio_filepath"]), inp.audio),
                start,
                _end(start, dur),
                rec.get("text") or "",
                hypothesis=None if hyp is None else str(hyp),
            )
        )
    return rows


def read_lhotse_part(block: Block, inp: InputConfig, first_line: int = 1) -> list[dict]:
    """The rows of one block of lhotse supervisions whose first line is ``first_line`` of its file."""
    rows = []
    for _n, rec in _records(block, first_line, ("recording_id", "start", "duration")):
        if isinstance(rec, Malformed):
            rows.append(error_row(block.name, rec))
            continue
        start, dur = _seconds(rec["start"]), _seconds(rec["duration"])
        rows.append(
            row(
                str(rec["recording_id"]),
                start,
                _end(start, dur),
                rec.get("text") or "",
                id=None if rec.get("id") is None else str(rec["id"]),
                speaker=None if rec.get("speaker") is None else str(rec["speaker"]),
                words=_lhotse_words(rec, start),
            )
        )
    return rows


def read_nemo(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    return _read_all(read_nemo_part, path, inp)


def read_lhotse(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    return _read_all(read_lhotse_part, path, inp)


def _read_all(read_part, path: str, inp: InputConfig) -> list[dict]:
    rows, first = [], 1
    for b in blocks(path):
        first = 1 if b.lo == 0 else first
        rows += read_part(b, inp, first)
        first += count_lines(b)
    return rows


def _lhotse_words(rec: dict, seg_start) -> list[dict] | None:
    """lhotse ``alignment["word"]``, seconds from the segment's start. lhotse writes each AlignmentItem
    as a list ``[symbol, start, duration, score]``; a dict with those keys is read too."""
    alignment = rec.get("alignment")
    items = alignment.get("word") if isinstance(alignment, dict) else None
    if not items or not isinstance(seg_start, float):
        return None
    try:
        triples = [
            (a["symbol"], a["start"], a["duration"]) if isinstance(a, dict) else tuple(a[:3])
            for a in items
        ]
        return [
            {
                "word": str(w),
                "start": round(float(s) - seg_start, 3),
                "end": round(float(s) + float(d) - seg_start, 3),
            }
            for w, s, d in triples
        ]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
