"""SRT and WebVTT subtitles, one file per recording: ``<recording>[.<lang>].vtt|srt`` (yt-dlp's names).

Files are decoded in the encoding they were written in (``decode``) and parsed as the WebVTT rules
say (``cues``). Cues lose their styling (``<i>``, ``<c.color>``, ``{\\an8}``) and cue settings
(``align:``, ``position:``); inline word times (``word<00:00:01.234><c> next</c>``) make the file
word-level input (the ``words`` column). Cues or words then merge into segments
(``etl.ingest.segmentation``).

**Rolling captions.** YouTube's auto-captions type each line into the bottom row of a two-line cue,
word by word (inline times), and scroll it up into the next cue's top row; a 10-ms cue between holds
the finished line above an empty one. A file is rolling captions when its cues carry those inline
word times (``<00:00:01.234><c>``), decided per file. There each cue's words are its bottom line's:
spoken from the cue's start and the inline times on; the lines above it were spoken in the cues
before, and a hold cue (under ``HOLD_SECONDS``) holds no new speech. Nothing is dropped by comparing texts, so a phrase said twice is kept twice; every other
file keeps every line of every cue (two speakers saying the same line keep both).

A malformed cue is one ``unreadable_alignment`` row naming the file and line, and the file's other
cues are read; a file that cannot be read at all (no ``WEBVTT`` signature, no encoding reads it) is
one such row.

Partitions are groups of recordings, chosen from the file names on the client (``parts``) and read
on the workers.

The parser is our own (``cues.py``): webvtt-py and srt report no line numbers, and neither exposes
the inline word times; ``tests/ingest/test_subtitles.py`` checks it cue by cue against webvtt-py on
other projects' files.
"""

from __future__ import annotations

import html
import re
from typing import NamedTuple

from ...config import InputConfig
from ...errors import UserError
from ...schema import ENCODING
from ..segmentation import Unit
from .common import File, Malformed, error_row, groups, list_files, segment_rows
from .cues import YOUTUBE_WORDS, Cue, parse_cues, seconds
from .decode import read_decoded

EXTENSIONS = (".vtt", ".srt")
_INLINE = re.compile(r"<((?:\d+:)?\d{2}:\d{2}\.\d{3})>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
HOLD_SECONDS = 0.05  # YouTube's hold cues last 10 ms; a cue that types words lasts far longer
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")

__all__ = ["Cue", "parse_cues", "units", "is_rolling", "read", "read_part", "parts"]


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def _timed_words(line: str, cue: Cue) -> list[Unit]:
    """``a<t1><c> b</c><t2><c> c</c>``: each piece from its time to the next one's (the last to the cue's end)."""
    parts = _INLINE.split(line)
    starts = [cue.start] + [seconds(t) or cue.start for t in parts[1::2]]
    texts = [_plain(p) for p in parts[0::2]]
    ends = starts[1:] + [cue.end]
    return [Unit(t, s, max(s, e)) for t, s, e in zip(texts, starts, ends) if t]


def is_rolling(cues: list[Cue]) -> bool:
    """Whether a file is YouTube's rolling captions: its cues carry YouTube's inline word times
    (``<00:00:01.234><c>``), each on its cue's bottom line alone."""
    timed = [
        (k, cue) for cue in cues for k, line in enumerate(cue.lines) if YOUTUBE_WORDS.search(line)
    ]
    return bool(timed) and all(k == len(cue.lines) - 1 for k, cue in timed)


def units(cues: list[Cue], rolling: bool | None = None) -> tuple[list[Unit], bool]:
    """The cues' speech as units (word units where a line has inline times), each said once.
    In rolling captions a cue's speech is its bottom line (``rolling`` None: decided from the
    cues). Returns (units, whether any were word-timed)."""
    rolling = is_rolling(cues) if rolling is None else rolling
    out: list[Unit] = []
    timed = False
    for cue in cues:
        plain = []
        for line in _speech_lines(cue, rolling):
            if _INLINE.search(line):
                out += _timed_words(line, cue)
                timed = True
            elif _plain(line):
                plain.append(_plain(line))
        if plain:
            out.append(Unit(" ".join(plain), cue.start, cue.end))
    return out, timed


def _speech_lines(cue: Cue, rolling: bool) -> list[str]:
    """A cue's lines that hold speech: all of them, or in rolling captions the bottom one, unless
    the cue is one of YouTube's hold cues (shorter than ``HOLD_SECONDS``: the finished line shown
    alone, its words already timed in the cue before; a file whose lines of one space were
    stripped shows it as the bottom line)."""
    if not rolling:
        return cue.lines
    return [] if cue.end - cue.start < HOLD_SECONDS else cue.lines[-1:]


def split_name(name: str) -> tuple[str, str | None]:
    """``talk.en.vtt`` -> (``talk``, ``en``); ``talk.vtt`` -> (``talk``, None)."""
    stem = name.rsplit(".", 1)[0]
    head, dot, tail = stem.rpartition(".")
    if dot and head and "/" not in tail and _LANG.match(tail):
        return head, tail
    return stem, None


def choose(files: list[File], language: str | None, hyp_language: str | None) -> dict:
    """{recording: (main File | None, hypothesis File | None)}, by file names alone."""
    by_rec: dict[str, dict] = {}
    for f in files:
        rec, lang = split_name(f.name)
        by_rec.setdefault(rec, {})[lang] = f
    out = {}
    for rec, langs in by_rec.items():
        hyp = langs.pop(hyp_language, None) if hyp_language else None
        if language is not None:
            main = langs.get(language)
        elif len(langs) > 1:
            raise UserError(
                f"input.subtitles.language: {rec!r} has subtitles in several languages "
                f"({', '.join(sorted(str(k) for k in langs))}); set it to the one to use"
            )
        else:
            main = next(iter(langs.values()), None)
        if main is not None:
            out[rec] = (main, hyp)
    return out


def parts(path: str, inp: InputConfig) -> list[list[tuple]]:
    """(recording, main File, hypothesis File | None) of each recording, grouped into partitions.
    From the listing alone: a recording with several languages and no ``input.subtitles.language``
    is a config error here, before any file is read."""
    opts = inp.subtitles
    chosen = choose(list_files(path, EXTENSIONS), opts.language, opts.hypothesis_language)
    items = [(rec, main, hyp) for rec, (main, hyp) in chosen.items()]
    return groups(items, size=lambda item: item[1].size + (item[2].size if item[2] else 0))


class Read(NamedTuple):
    """One subtitle file, read: its speech, whether word-timed, its malformed cues, its encoding."""

    units: list
    timed: bool
    bad: list
    encoding: str


def read_file(f: File, encoding: str | None = None) -> Read:
    """A subtitle file decoded (in ``encoding`` if given) and parsed; Malformed when it cannot be
    read at all."""
    text, encoding = read_decoded(f.url, encoding)
    cues, bad = parse_cues(text, f.name.lower().endswith(".vtt"))
    speech, timed = units(cues)
    return Read(speech, timed, bad, encoding)


def read_part(items: list[tuple], inp: InputConfig) -> list[dict]:
    """The rows of one partition's recordings, in order: each recording's segments, then one
    ``unreadable_alignment`` row per malformed cue (or per file that cannot be read). A
    recording's first row holds the encodings of its files (``schema.ENCODING``)."""
    rows: list[dict] = []
    for rec, main, hyp in items:
        first = len(rows)
        files = [main] + ([hyp] if inp.subtitles.hypothesis_language and hyp else [])
        got: list[Read] = []
        for f in files:
            try:
                got.append(read_file(f, inp.subtitles.encoding))
            except Malformed as e:
                rows.append(error_row(f.name, e, recording=rec))
                break
        else:
            hyp_units = got[1].units if len(got) > 1 else None
            rows += segment_rows(
                rec, got[0].units, inp, hyp_units=hyp_units, with_words=got[0].timed
            )
        rows += [error_row(f.name, e, recording=rec) for f, r in zip(files, got) for e in r.bad]
        if got and len(rows) > first:  # the encodings of the files read, on their first row
            rows[first][ENCODING] = tuple(r.encoding for r in got)
    return rows


def read(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    return [r for items in parts(path, inp) for r in read_part(items, inp)]
