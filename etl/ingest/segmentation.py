"""Timed units (words, tier intervals, subtitle cues) -> segments, and a second transcript laid over them.

Pure functions on plain values: no I/O, no pandas. A unit never straddles a segment boundary, so a
segment never starts or ends inside a word.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..config import SILENCE_LABELS


@dataclass(frozen=True)
class Unit:
    """A word (or interval, or cue) with its times in seconds from the start of the recording."""

    text: str
    start: float
    end: float


@dataclass
class Segment:
    start: float
    end: float
    units: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(u.text for u in self.units)

    def words(self) -> list[dict]:
        """The units as the ``words`` column holds them: times in seconds from the segment's start."""
        return [
            {
                "word": u.text,
                "start": round(u.start - self.start, 3),
                "end": round(u.end - self.start, 3),
            }
            for u in self.units
        ]


def pause_test(labels: Iterable[str] = SILENCE_LABELS):
    """Whether a unit's text marks a pause: blank, or one of ``labels`` (``input.silence_labels``),
    compared case-insensitively after strip."""
    known = frozenset(x.strip().casefold() for x in labels)
    return lambda text: not text.strip() or text.strip().casefold() in known


def speech(units, labels: Iterable[str] = SILENCE_LABELS) -> list[Unit]:
    """The units that are speech, in time order: pause and noise labels dropped, so the time they
    held is a gap between the words around them (``segment`` breaks there at ``max_pause``)."""
    is_pause = pause_test(labels)
    return sorted((u for u in units if not is_pause(u.text)), key=lambda u: (u.start, u.end))


def segment(units, max_pause: float = 0.5, max_duration: float = 20.0) -> list[Segment]:
    """Greedy segmentation of time-ordered units: a new segment starts at a pause of at least
    ``max_pause`` s, or where adding the next unit would make the segment longer than
    ``max_duration`` s. A single unit longer than ``max_duration`` is a segment of its own (the
    ``filters.max_duration`` filter then decides about it)."""
    out: list[Segment] = []
    cur: Segment | None = None
    for u in units:
        if cur is not None and u.start - cur.end < max_pause and u.end - cur.start <= max_duration:
            cur.units.append(u)
            cur.end = max(cur.end, u.end)
            continue
        cur = Segment(u.start, u.end, [u])
        out.append(cur)
    return out


def first_overlap(units) -> tuple[Unit, Unit] | None:
    """The first pair of time-ordered units where one starts before the previous one ends (1 ms slack)."""
    for prev, u in zip(units, units[1:]):
        if u.start < prev.end - 1e-3:
            return prev, u
    return None


def overlay(segments: list[Segment], units) -> list[str]:
    """Per segment, the texts of ``units`` (another transcript of the same recording) whose midpoint
    falls inside it, in time order: the hypothesis of that segment."""
    mids = sorted(((u.start + u.end) / 2, u.text) for u in units)
    keys = [m for m, _ in mids]
    out = []
    for seg in segments:
        lo, hi = bisect.bisect_left(keys, seg.start), bisect.bisect_right(keys, seg.end)
        out.append(" ".join(t for _, t in mids[lo:hi]))
    return out
