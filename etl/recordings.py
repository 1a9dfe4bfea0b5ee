"""Recording id -> audio file: one listing of the audio folder plus a join (never a stat per row)."""
from __future__ import annotations

import os
import unicodedata

import fsspec
import pandas as pd

# Extensions ffmpeg reads that hold audio; anything else in the folder (txt, json, ...) is ignored.
AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".mp3", ".m4a", ".mp4", ".aac", ".ogg", ".oga", ".opus", ".webm", ".mka", ".mkv",
    ".wma", ".aif", ".aiff", ".au", ".caf", ".amr", ".3gp", ".mov", ".ac3", ".mp2", ".wv", ".ape",
)
# When one recording has several files (rec.wav and rec.mp3), the lossless or earliest-listed wins.
_PREFERENCE = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}


def is_safe_recording_id(rid: str) -> bool:
    """An id names a file *inside* the audio folder: no separators, no '..', no control characters."""
    if not rid or rid in (".", ".."):
        return False
    if "/" in rid or "\\" in rid or rid.startswith("~"):
        return False  # separators (and so absolute paths) or a home-dir expansion
    return not any(ord(c) < 32 for c in rid)


def list_audio(folder: str) -> dict[str, str]:
    """One listing: {recording id: file URL/path}. Ids are file stems with surrounding whitespace
    stripped; the full file name maps too, so a table that names "rec.mp3" resolves."""
    fs, root = fsspec.core.url_to_fs(folder)
    entries = fs.ls(root, detail=True)
    files = sorted(e["name"] for e in entries if e.get("type") == "file")
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    local = protocol in ("file", "local")
    by_id: dict[str, str] = {}
    rank: dict[str, int] = {}
    for name in files:
        base = name.rstrip("/").rsplit("/", 1)[-1]
        stem, ext = os.path.splitext(base)
        ext = ext.lower()
        if ext not in _PREFERENCE:
            continue
        url = name if local else fs.unstrip_protocol(name)
        # NFC: a name typed on Linux matches the same name stored decomposed by macOS
        for key in (_nfc(stem.strip()), _nfc(base.strip())):
            if key not in by_id or _PREFERENCE[ext] < rank[key]:
                by_id[key], rank[key] = url, _PREFERENCE[ext]
    return by_id


def existing_files(paths: list[str]) -> set[str]:
    """Which of ``paths`` exist: one listing per distinct folder, not a stat per file."""
    found: set[str] = set()
    by_dir: dict[str, list[str]] = {}
    for p in paths:
        by_dir.setdefault(p.rsplit("/", 1)[0] if "/" in p else ".", []).append(p)
    for folder, members in by_dir.items():
        fs, root = fsspec.core.url_to_fs(folder)
        try:
            names = {e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=False)}
        except (FileNotFoundError, NotADirectoryError):
            continue
        found.update(p for p in members if p.rsplit("/", 1)[-1] in names)
    return found


def resolve(recordings: pd.Series, listing: dict[str, str], wav_scp: dict[str, str | None] | None = None) -> pd.Series:
    """The file of each (already stripped) recording id, or None. A join on the listing (or on
    wav.scp, keeping only the entries whose file exists)."""
    if wav_scp is not None:
        present = existing_files([p for p in wav_scp.values() if p])
        table = pd.Series({r: p for r, p in wav_scp.items() if p in present}, dtype=object)
    else:
        table = pd.Series(listing, dtype=object)
    if table.empty:
        return pd.Series([None] * len(recordings), index=recordings.index, dtype=object)
    keys = recordings.map(lambda r: _nfc(r) if isinstance(r, str) else r)
    return keys.map(table).astype(object).where(lambda s: s.notna(), None)


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)
