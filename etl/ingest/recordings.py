"""Recording reference -> audio file: one recursive listing of the audio folder plus a join (never a
stat per row).

A table names a recording by its path relative to the audio folder (``2023/abc`` or ``2023/abc.mp3``),
by its file stem (``abc``), by its file name (``abc.mp3``) or, with ``input.recording_pattern``, by an id
found in its file name (yt-dlp's ``Title [dQw4w9WgXcQ].webm`` -> ``dQw4w9WgXcQ``). A reference is only
ever looked up in the listing, so nothing outside the audio folder can be named, let alone opened. A
short name (no folder) that names files in two places is ambiguous: etl never guesses.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field

import fsspec
import pandas as pd

from ..audio.media import AUDIO_FORMATS, split_channel, with_channel
from ..schema import RESOLVED_COLUMNS

# Extensions of the audio formats (``audio.media.AUDIO_FORMATS``); anything else in the folder (txt,
# json, ...) is ignored.
AUDIO_EXTENSIONS = tuple(AUDIO_FORMATS)
# When one recording has several files (rec.wav and rec.mp3), the lossless or earliest-listed wins.
_PREFERENCE = {ext: i for i, ext in enumerate(AUDIO_EXTENSIONS)}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DRIVE = re.compile(r"^[A-Za-z]:")
EXAMPLES = 5  # names shown per list of the listing summary


def reference_problem(ref, allow_absolute: bool = False) -> str | None:
    """Why ``ref`` cannot name a file inside the audio folder (None: it can). With ``allow_absolute``
    (``input.audio: null``), absolute paths and URLs are the user's explicit choice."""
    if not isinstance(ref, str) or not ref.strip():
        return "is empty"
    if any(ord(c) < 32 or ord(c) == 127 for c in ref):
        return "holds a control character"
    if allow_absolute and (_URL.match(ref) or ref.startswith("/")):
        return None
    if _URL.match(ref) or "::" in ref:
        return "is a URL (set input.audio: null to take URLs as given)"
    if "\\" in ref or _DRIVE.match(ref):
        return "holds a backslash or drive letter (use '/' relative to the audio folder)"
    if ref.startswith("/"):
        return "is an absolute path (set input.audio: null to take paths as given)"
    if ref.startswith("~"):
        return "starts with '~' (home folders are never expanded)"
    norm = posixpath.normpath(ref)
    if norm in (".", "..") or norm.startswith("../"):
        return "leaves the audio folder ('..')"
    return None


def is_safe_recording_id(rid, allow_absolute: bool = False) -> bool:
    """A reference names a file *inside* the audio folder (a relative path that stays inside once
    normalized), or, with ``allow_absolute``, any absolute path or URL."""
    return reference_problem(rid, allow_absolute) is None


@dataclass(frozen=True)
class AudioListing:
    """One recursive listing of an audio folder. Paths are relative to the folder, '/'-separated, NFC."""

    folder: str
    files: dict = field(default_factory=dict)  # relative file path -> URL (or local path) to open
    recordings: dict = field(
        default_factory=dict
    )  # relative path without extension -> its preferred file
    names: dict = field(
        default_factory=dict
    )  # stem / file name / pattern id -> tuple of files it names
    ignored: tuple = ()  # audio files whose name recording_pattern did not match (they have no id)
    identities: dict = field(default_factory=dict)  # URL (files' values) -> file_identity

    def digest(self) -> str:
        """``identities_digest`` of every listed file: another, a removed or a replaced file changes it."""
        return identities_digest(self.identities)

    def locate(self, ref: str) -> tuple[str | None, tuple]:
        """(relative file path, ()) when ``ref`` names one file; (None, candidates) when it names
        several; (None, ()) when none. ``ref`` is trusted to be safe (``reference_problem``)."""
        rel = _nfc(posixpath.normpath(ref.strip()))
        if "/" in rel:  # a path: exactly that file, or that recording in its preferred format
            hit = rel if rel in self.files else self.recordings.get(rel)
            return hit, ()
        found = self.names.get(rel, ())
        return (found[0], ()) if len(found) == 1 else (None, found)


def list_audio(folder: str, pattern: str | None = None) -> AudioListing:
    """One recursive listing of ``folder`` (fsspec ``find``: local, s3://, memory://...). Hidden files
    and folders (names starting with '.') are skipped. With ``pattern`` (a regular expression with a
    group ``id``, searched in the file name without extension), a matching file is also found by that
    id; the files it does not match are listed in ``ignored`` (they keep their path, stem and name)."""
    fs, root = fsspec.core.url_to_fs(folder)
    root = root.rstrip("/")
    protocol = fs.protocol[0] if isinstance(fs.protocol, (tuple, list)) else fs.protocol
    local = protocol in ("file", "local")
    regex = re.compile(pattern) if pattern else None
    files, rank, ids, ignored, identities = {}, {}, {}, [], {}
    found = fs.find(root, detail=True)
    for name in sorted(found):
        rel = name[len(root) + 1 :] if name.startswith(root + "/") else name.rsplit("/", 1)[-1]
        parts = rel.split("/")
        stem, ext = os.path.splitext(parts[-1])
        if ext.lower() not in _PREFERENCE or any(p.startswith(".") for p in parts):
            continue
        rel = _nfc(rel)
        if regex is not None:
            m = regex.search(_nfc(stem))
            if m is not None and m.group("id"):
                ids[rel] = m.group("id").strip()
            else:  # no id; still found by its path, stem or name
                ignored.append(rel)
        files[rel] = name if local else fs.unstrip_protocol(name)
        identities[files[rel]] = file_identity(found[name])
        rank[rel] = _PREFERENCE[ext.lower()]
    return _index(folder, files, rank, ids, tuple(ignored), identities)


# fsspec ``info`` keys that tell one version of a file from another, most telling first: an object
# store's version or generation, its ETag/MD5, else the modification time (local: with the inode).
_VERSION_KEYS = ("VersionId", "version_id", "generation", "ETag", "etag", "md5Hash")
_TIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "mtime_ns", "created")


def file_identity(info: dict) -> str:
    """What a build records of one audio file to tell whether it changed since (its clips are reused
    only while this is the same): size plus the version/ETag on object stores, else the
    modification time (and the inode, locally). A JSON string, one per file."""
    out: dict = {"size": info.get("size")}
    version = next((k for k in _VERSION_KEYS if info.get(k) not in (None, "")), None)
    if version is not None:
        out[version] = str(info[version])
    else:
        when = next((k for k in _TIME_KEYS if info.get(k) not in (None, "")), None)
        if when is not None:
            out[when] = str(info[when])
        if info.get("ino") is not None:
            out["ino"] = int(info["ino"])
    return json.dumps(out, sort_keys=True)


def identities_of(urls) -> dict:
    """``file_identity`` of each of ``urls`` (files given as paths or URLs): one listing per distinct
    folder, not a stat per file. A file that is gone has none (it is left out)."""
    out: dict = {}
    by_dir: dict[str, set] = {}
    for u in set(urls):
        by_dir.setdefault(u.rsplit("/", 1)[0] if "/" in u else ".", set()).add(u)
    for folder, members in by_dir.items():
        fs, root = fsspec.core.url_to_fs(folder)
        try:
            infos = {e["name"].rstrip("/").rsplit("/", 1)[-1]: e for e in fs.ls(root, detail=True)}
        except (FileNotFoundError, NotADirectoryError):
            continue
        for u in members:
            info = infos.get(u.rsplit("/", 1)[-1])
            if info is not None:
                out[u] = file_identity(info)
    return out


def identities_digest(identities: dict) -> str:
    """One hash of {url: file_identity}: what report.json keeps to tell a rerun the audio changed."""
    text = json.dumps(sorted(identities.items()), ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _index(
    folder: str, files: dict, rank: dict, ids: dict, ignored: tuple, identities: dict
) -> AudioListing:
    recordings: dict[str, str] = {}
    for rel in files:  # sorted: the earliest-listed of equally preferred formats wins
        key = os.path.splitext(rel)[0]
        if key not in recordings or rank[rel] < rank[recordings[key]]:
            recordings[key] = rel
    names: dict[str, set] = {}
    for rel in files:
        base = rel.rsplit("/", 1)[-1]
        preferred = recordings[os.path.splitext(rel)[0]]
        names.setdefault(base.strip(), set()).add(rel)  # the file name: exactly that file
        names.setdefault(os.path.splitext(base)[0].strip(), set()).add(
            preferred
        )  # the stem: its recording
        if rel in ids:
            names.setdefault(ids[rel], set()).add(preferred)
    return AudioListing(
        folder,
        files,
        recordings,
        {k: tuple(sorted(v)) for k, v in names.items()},
        ignored,
        identities,
    )


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


def resolve(
    recordings: pd.Series,
    listing: AudioListing | None,
    wav_scp: dict | None = None,
) -> pd.DataFrame:
    """Per row (on ``recordings.index``): ``url`` of its file or None; ``key``, the recording it names
    whatever the spelling (relative path without extension; the wav.scp id; the path as given with
    ``input.audio: null``) or None; ``candidates``, the files an ambiguous name names, else None.

    ``recordings`` holds stripped references already checked by ``reference_problem`` (pass None for
    the others: they are never looked up). With a listing and a Kaldi dir's ``wav_scp``, its
    recording ids are looked up as the files their entries name (``scp_reference``); without a
    listing, the wav.scp entries whose file exists
    (``table.read_wav_scp``: a URL naming a channel is kept as it is), else the references
    themselves, taken as absolute paths or URLs that must exist."""
    keys = [_nfc(r) if isinstance(r, str) else None for r in recordings.tolist()]
    refs = {k for k in keys if k is not None}
    if listing is not None:
        table = _resolve_listed(refs, listing, wav_scp)
    else:
        if wav_scp is not None:  # a file, or one channel of it (media.with_channel)
            targets = {r: p for r, p in wav_scp.items() if isinstance(p, str) and p}
        else:  # input.audio: null: absolute paths and URLs only, never relative to the working folder
            targets = {r: r for r in refs if _URL.match(r) or r.startswith("/")}
        files = {r: split_channel(p)[0] for r, p in targets.items()}
        present = existing_files(list(files.values()))
        table = {
            r: (targets[r], r, None) if files.get(r) in present else (None, None, None)
            for r in refs
        }
    none = (None, None, None)
    found = [table.get(k, none) if k is not None else none for k in keys]
    return pd.DataFrame(
        {
            col: pd.Series([f[i] for f in found], index=recordings.index, dtype=object)
            for i, col in enumerate(RESOLVED_COLUMNS)
        }
    )


def missing_audio_where(audio: str | None, wav_scp: dict | None) -> str:
    """Where a ``missing_audio`` row's file was looked for (its detail)."""
    if audio is not None:
        return audio + (" (the files wav.scp names, by path or file name)" if wav_scp else "")
    if wav_scp is not None:
        return "wav.scp (or its file does not exist)"
    return "input.audio: null (absolute paths and URLs only)"


def _resolve_listed(refs: set, listing: AudioListing, wav_scp: dict | None) -> dict:
    """``resolve``'s (url, key, candidates) per reference, found in the listing only. A reference
    naming one channel (``media.with_channel``) finds its file and keeps the channel. A recording id
    of ``wav_scp`` is looked up as the file its entry names (``scp_reference``), else as itself (as
    without a wav.scp); an entry that is an unread pipe finds nothing."""
    table: dict[str, tuple] = {}
    for ref in refs:
        looks = [ref]
        if wav_scp is not None and ref in wav_scp:
            named = scp_reference(wav_scp[ref], listing.folder)
            looks = [named, ref] if named is not None else []
        table[ref] = (None, None, None)
        for look in looks:
            base, channel = split_channel(look)
            rel, cands = listing.locate(base)
            if rel:
                url = with_channel(listing.files[rel], channel)
                table[ref] = (url, with_channel(os.path.splitext(rel)[0], channel), None)
                break
            if cands:
                table[ref] = (None, None, cands)
                break
    return table


def scp_reference(entry, folder: str) -> str | None:
    """A wav.scp entry (``table.read_wav_scp``: a path, maybe naming a channel) as a reference into
    the audio folder: its path relative to the folder when it lies inside, else its file name (the
    corpus copied elsewhere: found by name in the listing, so no byte from outside the folder is
    read); a channel stays. None for an unread pipe."""
    if not isinstance(entry, str) or not entry:
        return None
    path, channel = split_channel(entry)
    root = folder if _URL.match(folder) else os.path.abspath(folder)
    root = root.rstrip("/") + "/"
    inside = path.startswith(root) and ".." not in path[len(root) :].split("/")
    ref = path[len(root) :] if inside else path.rsplit("/", 1)[-1]
    return with_channel(_nfc(ref), channel)


def listing_summary(listing: AudioListing | None, refs: pd.Series, resolved: pd.DataFrame) -> dict:
    """How well table and folder fit: audio files no row uses, references that matched no file,
    ambiguous names (with their candidates) and files recording_pattern ignored. ``refs``: the rows'
    references that were looked up (others None); ``resolved``: ``resolve``'s frame for them."""
    looked_up = refs.notna()
    unmatched = sorted(
        set(refs[looked_up & resolved["url"].isna() & resolved["candidates"].isna()])
    )
    ambiguous = resolved.loc[looked_up & resolved["candidates"].notna(), "candidates"]
    amb = dict(sorted(zip(refs[ambiguous.index], ambiguous)))
    out: dict[str, object] = {
        "unmatched_recordings": _some(unmatched),
        "ambiguous_recordings": {
            "count": len(amb),
            "examples": {k: list(v) for k, v in list(amb.items())[:EXAMPLES]},
        },
    }
    if listing is not None:
        used = {split_channel(u)[0] for u in resolved["url"].dropna()}
        unused = [rel for rel, url in listing.files.items() if url not in used]
        out = {
            "audio_files": len(listing.files),
            "unused_audio_files": _some(unused),
            **out,
            "unmatched_by_recording_pattern": _some(list(listing.ignored)),
        }
    return out


def format_listing_summary(s: dict) -> list[str]:
    """The listing summary as lines for `etl plan` and the build's log."""
    lines = []
    if "audio_files" in s:
        lines.append(
            f"audio files: {s['audio_files']:,} listed, {s['unused_audio_files']['count']:,} used by no row"
            + _eg(s["unused_audio_files"]["examples"])
        )
    lines.append(
        f"recordings matching no file: {s['unmatched_recordings']['count']:,}"
        + _eg(s["unmatched_recordings"]["examples"])
    )
    amb = s["ambiguous_recordings"]
    lines.append(
        f"ambiguous recordings (give their path): {amb['count']:,}"
        + _eg([f"{k} -> {' | '.join(v)}" for k, v in amb["examples"].items()])
    )
    ign = s.get("unmatched_by_recording_pattern", {"count": 0})
    if ign["count"]:
        lines.append(
            f"audio files input.recording_pattern gives no id (found by path or stem only): "
            f"{ign['count']:,}" + _eg(ign["examples"])
        )
    return lines


def _some(names: list) -> dict:
    return {"count": len(names), "examples": list(names[:EXAMPLES])}


def _eg(examples: list) -> str:
    return f" (e.g. {', '.join(examples)})" if examples else ""


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)
