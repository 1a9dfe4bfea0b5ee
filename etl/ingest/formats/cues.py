"""SRT and WebVTT documents -> cues, each with the line of its timing, as the WebVTT rules parse
them (https://www.w3.org/TR/webvtt1/#file-parsing):

- blocks are separated by empty lines (WebVTT: truly empty, so YouTube's lines of one space are
  text; SRT: blank); a line with ``-->`` past a block's second line (or after its timing) starts
  the next block, so a cue's last text line directly followed by the next timing stays its text (in
  SRT, a bare number there is the next cue's index);
- a block's timing is its first or second line; a line before it is the cue's identifier;
- WebVTT's header (``WEBVTT`` and the lines after it), ``NOTE``, ``STYLE`` and ``REGION`` blocks,
  and blocks before the first cue hold no cues;
- one departure: a block of YouTube's timed words (``<00:00:01.234><c>``) right after a cue with no
  text is that cue's bottom line (YouTube writes a line of one space above it, which some tools
  strip; the rules would drop the words);
- timestamps are ``[h:]mm:ss.ttt`` (``,`` too), and the short forms other tools write
  (``0:01.5``, ``00:0.120``).

A malformed cue (a timing line that does not parse, an end before its start, text outside any cue
after the first one) is one ``Malformed`` with its line, and the other cues are still read. A
WebVTT file that does not start with ``WEBVTT`` is malformed as a whole (raised).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .common import Malformed

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[.,](\d{1,3})"
_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)(?:[ \t].*)?$")
_STAMP = re.compile(rf"^{_TIME}$")
_ARROW = re.compile(r"-->|^\s*\d[\d:.,]*\s*-+>")  # a timing line, well-formed or not
_NOT_CUES = re.compile(r"^(?:NOTE|STYLE|REGION)(?:[ \t]|$)")
_INDEX = re.compile(r"^\s*\d+\s*$")
YOUTUBE_WORDS = re.compile(r"<(?:\d+:)?\d{2}:\d{2}\.\d{3}><c>")  # YouTube's timed words


@dataclass
class Cue:
    start: float
    end: float
    line: int  # the line of its timing
    lines: list = field(default_factory=list)  # its text lines, as written
    identifier: str | None = None


def seconds(text: str) -> float | None:
    """A timestamp in seconds; None when it is not one (seconds, or minutes after hours, >= 60)."""
    m = _STAMP.match(text)
    if not m:
        return None
    hours, minutes, secs, frac = m.groups()
    if int(secs) >= 60 or (hours is not None and int(minutes) >= 60):
        return None
    total = int(hours or 0) * 3600 + int(minutes) * 60 + int(secs) + int(frac) / 10 ** len(frac)
    return round(total, 6)


def split_lines(text: str) -> list[str]:
    """Lines as WebVTT ends them: CR LF, CR or LF (not ``str.splitlines``' other breaks)."""
    return re.split(r"\r\n|\r|\n", text)


def _header_end(lines: list[str]) -> int:
    """The index of the first line after a WebVTT header (its signature line and the lines up to
    an empty line or a timing)."""
    first = lines[0] if lines else ""
    if not re.match(r"^WEBVTT(?:[ \t]|$)", first):
        raise Malformed(1, "a WebVTT file starts with 'WEBVTT'")
    k = 1
    while k < len(lines) and lines[k] != "" and "-->" not in lines[k]:
        k += 1
    return k


def blocks(lines: list[str], first: int, vtt: bool):
    """The blocks of (line number, line) from ``lines[first:]``, split as the module says."""
    block: list[tuple[int, str]] = []
    timed = False
    for n, line in enumerate(lines[first:], first + 1):
        if line == "" or (not vtt and not line.strip()):
            if block:
                yield block
            block, timed = [], False
            continue
        if _ARROW.search(line):
            if block and (timed or len(block) >= 2):
                carried = [block.pop()] if not vtt and _INDEX.match(block[-1][1]) else []
                if block:
                    yield block
                block = carried
            timed = True
        block.append((n, line))
    if block:
        yield block


def _cue(block: list[tuple[int, str]]) -> Cue | Malformed | None:
    """A block's cue; Malformed if its timing is broken; None if it has no timing line."""
    k = next((i for i, (_, line) in enumerate(block[:2]) if _ARROW.search(line)), None)
    if k is None:
        return None
    n, line = block[k]
    m = _TIMING.match(line)
    start, end = (seconds(m.group(1)), seconds(m.group(2))) if m else (None, None)
    if m is None or start is None or end is None:
        return Malformed(n, f"not a cue timing: {line.strip()!r}")
    if end < start:
        return Malformed(n, f"cue ends ({m.group(2)}) before it starts ({m.group(1)})")
    ident = block[0][1] if k else None
    return Cue(start, end, n, [text for _, text in block[k + 1 :]], ident)


def parse_cues(text: str, vtt: bool) -> tuple[list[Cue], list[Malformed]]:
    """The cues of an SRT or WebVTT document, and its malformed cues (each with its line)."""
    lines = split_lines(text)
    cues: list[Cue] = []
    bad: list[Malformed] = []
    empty: Cue | None = None  # the cue of the block before, if it had no text
    for block in blocks(lines, _header_end(lines) if vtt else 0, vtt):
        got = _cue(block)
        if got is None and empty is not None and YOUTUBE_WORDS.search(block[0][1]):
            empty.lines = ["", *(line for _, line in block)]  # its line of one space was stripped
            continue
        empty = got if isinstance(got, Cue) and not got.lines else None
        if isinstance(got, Cue):
            cues.append(got)
            if not vtt and got.identifier is not None and not _INDEX.match(got.identifier):
                bad.append(Malformed(block[0][0], f"text before a cue timing: {got.identifier!r}"))
        elif got is not None:
            bad.append(got)
        elif _stray_text(block, vtt, after_a_cue=bool(cues or bad)):
            n, line = block[0]
            bad.append(Malformed(n, f"text outside any cue (no timing line): {line.strip()!r}"))
    return cues, bad


def _stray_text(block: list[tuple[int, str]], vtt: bool, after_a_cue: bool) -> bool:
    """A block with text but no timing that is not a WebVTT header, comment, style or region
    block: a cue that lost its timing. (SRT has no such blocks; before WebVTT's first cue they
    are header lines, e.g. YouTube's ``##``.)"""
    if not any(line.strip() for _, line in block):
        return False
    if not vtt:
        return True
    return after_a_cue and not _NOT_CUES.match(block[0][1])
