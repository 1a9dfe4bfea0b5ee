"""Readers of aligner outputs and subtitles, as they come: each maps its files to canonical rows
(``schema.TABLE_COLUMNS`` plus ``schema.EXTRA_TABLE_COLUMNS``), so everything downstream is unchanged.

| format      | input                                              | module         |
|-------------|----------------------------------------------------|----------------|
| textgrid    | a folder of ``<recording>.TextGrid`` (MFA)         | textgrid.py    |
| ctm         | ``.ctm`` file(s): one word per line                | ctm.py         |
| nemo        | NeMo JSON-lines manifest                           | manifests.py   |
| lhotse      | lhotse SupervisionSet ``.jsonl(.gz)``              | manifests.py   |
| subtitles   | a folder of ``<recording>[.<lang>].vtt|srt``       | subtitles.py   |
"""
from __future__ import annotations

import json

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
_READERS = {"textgrid": textgrid.read, "ctm": ctm.read, "nemo": manifests.read_nemo,
            "lhotse": manifests.read_lhotse, "subtitles": subtitles.read}


def read(path: str, fmt: str, inp: dict) -> pd.DataFrame:
    """The canonical rows of an alignment in one of ``FORMATS``."""
    return frame(_READERS[fmt](path, inp))


def sniff_json_lines(path: str) -> str | None:
    """``nemo`` or ``lhotse`` when the first line of a JSON(-lines) file is a manifest entry of that
    kind, else None (an ordinary table)."""
    try:
        with fsspec.open(path, "rt", encoding="utf-8-sig", compression="infer") as f:
            first = f.readline(1 << 20)
        rec = json.loads(first)
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
    return sorted({EXTENSIONS[ext] for ext in (_ext(p) for p in fs.find(root)) if ext in EXTENSIONS})


def _ext(p: str) -> str:
    base = p.rsplit("/", 1)[-1].lower()
    return "." + base.rsplit(".", 1)[-1] if "." in base else ""
