"""Readers of aligner outputs and subtitles, as they come: each maps its files to canonical rows
(``schema.TABLE_COLUMNS`` plus ``schema.EXTRA_TABLE_COLUMNS``), so everything downstream is unchanged.

| format      | input                                              | module         |
|-------------|----------------------------------------------------|----------------|
| textgrid    | a folder of ``<recording>.TextGrid`` (MFA)         | textgrid.py    |
| ctm         | ``.ctm`` file(s): one word per line                | ctm.py         |
| nemo        | NeMo JSON-lines manifest                           | manifests.py   |
| lhotse      | lhotse SupervisionSet ``.jsonl(.gz)``              | manifests.py   |
| subtitles   | a folder of ``<recording>[.<lang>].vtt|srt``       | subtitles.py   |

``partitions`` gives the table as lazy partitions: the client only lists the files (names and sizes)
and groups them; each partition's files are opened and parsed where it is computed, on a worker.
"""

from __future__ import annotations

import json
import operator

import fsspec
import pandas as pd

from . import ctm, manifests, subtitles, textgrid
from .common import frame

FORMATS = ("textgrid", "ctm", "nemo", "lhotse", "subtitles")
# Formats whose files name speakers (lhotse supervisions; MFA's per-speaker "<speaker> - words" tiers):
# their datasets carry a ``speaker`` column, as a table's mapped ``input.columns.speaker`` does.
SPEAKER_FORMATS = ("textgrid", "lhotse")
# File extension -> format, for the formats an extension decides alone.
EXTENSIONS = {".textgrid": "textgrid", ".ctm": "ctm", ".vtt": "subtitles", ".srt": "subtitles"}
# The columns of every partition (what ``frame`` gives), for ``meta``: nothing is read to infer them.
META = frame([])


def partitions(path: str, fmt: str, inp: dict) -> list:
    """The canonical frames of an alignment in one of ``FORMATS``, as dask delayed objects in input
    order (one per partition). Building them lists files only; reading happens when they are computed."""
    from dask import delayed

    part = delayed(_frame_of)
    if fmt == "textgrid":
        return [
            part(textgrid.read_part, files, inp, path if k == 0 else None)
            for k, files in enumerate(textgrid.parts(path))
        ]
    if fmt == "subtitles":
        return [part(subtitles.read_part, items, inp) for items in subtitles.parts(path, inp)]
    if fmt == "ctm":
        hyp = (
            delayed(ctm.hypothesis)(inp) if inp["ctm"]["hypothesis"] else None
        )  # read once, for every part
        return [part(ctm.read_part, files, inp, hyp) for files in ctm.parts(path)]
    read = {"nemo": manifests.read_nemo_part, "lhotse": manifests.read_lhotse_part}[fmt]
    out, first, prev = [], 1, None
    for block in manifests.blocks(
        path
    ):  # a block's first line: 1 + the lines of its file's blocks before it
        first = (
            1
            if block.lo == 0
            else delayed(operator.add)(first, delayed(manifests.count_lines)(prev))
        )
        out.append(part(read, block, inp, first))
        prev = block
    return out or [part(_no_rows)]


def _frame_of(read_part, *args) -> pd.DataFrame:
    return frame(read_part(*args))


def _no_rows() -> list:
    return []


def sniff_json_lines(path: str) -> str | None:
    """``nemo`` or ``lhotse`` when the first line of a JSON(-lines) file is a manifest entry of that
    kind, else None (an ordinary table)."""
    try:
        with fsspec.open(path, "rb", compression="infer") as f:
            first = f.read(1 << 20).split(b"\n", 1)[
                0
            ]  # the first line alone: a bad byte further on is its line's reject
        rec = json.loads(first.decode("utf-8-sig"))
    except (ValueError, OSError, UnicodeDecodeError):
        return None
    if not isinstance(rec, dict):
        return None
    if "audio_filepath" in rec:
        return "nemo"
    if {"recording_id", "start", "duration"} <= rec.keys():
        return "lhotse"
    return None


def folder_formats(fs, root: str) -> list[str]:
    """The alignment formats whose files a folder holds (searched recursively), sorted."""
    return sorted(
        {EXTENSIONS[ext] for ext in (_ext(p) for p in fs.find(root)) if ext in EXTENSIONS}
    )


def _ext(p: str) -> str:
    base = p.rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[-1] if "." in base else ""
