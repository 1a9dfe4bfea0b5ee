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
from collections.abc import Callable

import fsspec
import pandas as pd

from ...config import INPUT_FORMATS, InputConfig
from . import ctm, manifests, subtitles, textgrid
from .common import frame

# File extension -> aligner format, for the formats an extension decides alone (a folder's files).
EXTENSIONS = {
    ext: f.name for f in INPUT_FORMATS.values() if f.kind == "aligner" for ext in f.extensions
}
# The columns of every partition (what ``frame`` gives), for ``meta``: nothing is read to infer them.
META = frame([])


def partitions(path: str, fmt: str, inp: InputConfig) -> list:
    """The canonical frames of an alignment in one of the aligner formats (``PARTITIONS``), as dask
    delayed objects in input order (one per partition). Building them lists files only; reading
    happens when they are computed."""
    return PARTITIONS[fmt](path, inp)


def _textgrid(path: str, inp: InputConfig) -> list:
    from dask import delayed

    part = delayed(_frame_of)
    return [
        part(textgrid.read_part, files, inp, path if k == 0 else None)
        for k, files in enumerate(textgrid.parts(path))
    ]


def _subtitles(path: str, inp: InputConfig) -> list:
    from dask import delayed

    part = delayed(_frame_of)
    return [part(subtitles.read_part, items, inp) for items in subtitles.parts(path, inp)]


def _ctm(path: str, inp: InputConfig) -> list:
    from dask import delayed

    part = delayed(_frame_of)
    hyp = delayed(ctm.hypothesis)(inp) if inp.ctm.hypothesis else None  # read once, for every part
    return [part(ctm.read_part, files, inp, hyp) for files in ctm.parts(path)]


def _manifest(read) -> Callable[[str, InputConfig], list]:
    def parts(path: str, inp: InputConfig) -> list:
        from dask import delayed

        part = delayed(_frame_of)
        out, first, prev = [], 1, None
        for block in manifests.blocks(path):
            # a block's first line: 1 + the lines of its file's blocks before it
            first = (
                1
                if block.lo == 0
                else delayed(operator.add)(first, delayed(manifests.count_lines)(prev))
            )
            out.append(part(read, block, inp, first))
            prev = block
        return out or [part(_no_rows)]

    return parts


# The reader of each aligner format of ``config.INPUT_FORMATS``: (path, input config) -> partitions.
PARTITIONS: dict[str, Callable[[str, InputConfig], list]] = {
    "textgrid": _textgrid,
    "ctm": _ctm,
    "nemo": _manifest(manifests.read_nemo_part),
    "lhotse": _manifest(manifests.read_lhotse_part),
    "subtitles": _subtitles,
}


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
