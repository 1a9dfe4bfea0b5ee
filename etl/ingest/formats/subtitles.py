"""SRT and WebVTT subtitles, one file per recording: ``<recording>[.<lang>].vtt|srt`` (yt-dlp's names).

Cues lose their styling (``<i>``, ``<c.color>``, ``{\\an8}``) and cue settings (``align:``,
``position:``). YouTube auto-captions repeat the previous line in every rolling cue: a line equal to
the last one kept is a repeat and is dropped, so each spoken word appears once. Their inline word
times (``word<00:00:01.234><c> next</c>``) make the file word-level input (the ``words`` column).
Cues or words then merge into segments (``etl.ingest.segmentation``). A malformed file is one
``unreadable_alignment`` row naming the file and line.

Partitions are groups of recordings, chosen from the file names on the client (``parts``) and read
on the workers.

The parser is our own (about 60 lines): webvtt-py and srt report no line numbers, and neither
exposes the inline word times.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from ...config import InputConfig
from ...errors import UserError
from ..segmentation import Unit
from .common import File, Malformed, error_row, groups, list_files, read_text, segment_rows

EXTENSIONS = (".vtt", ".srt")
_TIME = r"(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}"
_TIMING = re.compile(rf"^\s*({_TIME})\s*-->\s*({_TIME})(?:\s+.*)?$")
_ARROW = re.compile(r"-->|^\s*\d[\d:.,]*\s*-+>")  # a timing line, well-formed or not
_INLINE = re.compile(r"<((?:\d+:)?\d{2}:\d{2}\.\d{3})>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")
_LANG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*$")


@dataclass
class Cue:
    start: float
    end: float
    line: int
    lines: list = field(default_factory=list)


def seconds(text: str) -> float:
    total = 0.0
    for part in text.replace(",", ".").split(":"):
        total = total * 60 + float(part)
    return round(total, 6)


def parse_cues(text: str, vtt: bool) -> list[Cue]:
    """The cues of an SRT or WebVTT document, each with the line of its timing."""
    lines = text.splitlines()
    if vtt and not (lines and lines[0].startswith("WEBVTT")):
        raise Malformed(1, "a WebVTT file starts with 'WEBVTT'")
    cues: list[Cue] = []
    cur: Cue | None = None
    for n, line in enumerate(lines, 1):
        m = _TIMING.match(line)
        if m:
            if (
                cur is not None and cur.lines
            ):  # no blank line before this cue: the last line was its id
                cur.lines.pop()
            start, end = seconds(m.group(1)), seconds(m.group(2))
            if end < start:
                raise Malformed(n, f"cue ends ({m.group(2)}) before it starts ({m.group(1)})")
            cur = Cue(start, end, n)
            cues.append(cur)
        elif _ARROW.search(line):
            raise Malformed(n, f"not a cue timing: {line.strip()!r}")
        elif line == "" or (not vtt and not line.strip()):
            cur = None  # (a WebVTT line of spaces is cue text: YouTube's empty first line)
        elif cur is not None:
            cur.lines.append(line)
    return cues


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub("", text)).split())


def _timed_words(line: str, cue: Cue) -> list[Unit]:
    """``a<t1><c> b</c><t2><c> c</c>``: each piece from its time to the next one's (the last to the cue's end)."""
    parts = _INLINE.split(line)
    starts = [cue.start] + [seconds(t) for t in parts[1::2]]
    texts = [_plain(p) for p in parts[0::2]]
    ends = starts[1:] + [cue.end]
    return [Unit(t, s, max(s, e)) for t, s, e in zip(texts, starts, ends) if t]


def units(cues: list[Cue]) -> tuple[list[Unit], bool]:
    """Cue texts without rolling repeats, as units; word units where the cue has inline times.
    Returns (units, whether any were word-timed)."""
    out: list[Unit] = []
    timed = False
    last = None
    for cue in cues:
        new = []
        for line in cue.lines:
            plain = _plain(line)
            if not plain or plain == last:
                continue  # empty, or the previous line rolled up
            last = plain
            if _INLINE.search(line):
                out += _timed_words(line, cue)
                timed = True
            else:
                new.append(plain)
        if new:
            out.append(Unit(" ".join(new), cue.start, cue.end))
    return out, timed


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


def _read_units(f: File) -> tuple[list[Unit], bool]:
    return units(parse_cues(read_text(f.url), f.name.lower().endswith(".vtt")))


def read_part(items: list[tuple], inp: InputConfig) -> list[dict]:
    """The rows of one partition's recordings, in order."""
    opts = inp.subtitles
    rows: list[dict] = []
    for rec, main, hyp in items:
        try:
            main_units, timed = _read_units(main)
        except Malformed as e:
            rows.append(error_row(main.name, e, recording=rec))
            continue
        hyp_units = None
        if opts.hypothesis_language:
            try:
                hyp_units = _read_units(hyp)[0] if hyp else None
            except Malformed as e:
                rows.append(error_row(hyp.name, e, recording=rec))
                continue
        rows += segment_rows(rec, main_units, inp, hyp_units=hyp_units, with_words=timed)
    return rows


def read(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    return [r for items in parts(path, inp) for r in read_part(items, inp)]
