"""CTM (Kaldi, NeMo Forced Aligner): one word per line, ``recording channel start duration word [confidence ...]``.

Words become segments (``etl.ingest.segmentation``). A recording with a malformed line (too few fields, a
time that is not a number, a negative duration, a word overlapping the previous one) is one
``unreadable_alignment`` row naming the file and line; every other recording is still read.
``input.ctm.hypothesis``: a second CTM of the same recordings (e.g. ASR output) gives the hypothesis.
A recording with words on two channels (``1``/``2``, ``A``/``B``: both sides of a telephone call) gives
each channel's segments from that channel of its file alone, with ids of their own (``_channels``).

Partitions are groups of whole files (``parts``): a recording's words may lie anywhere in its file.
The hypothesis CTM is read once (``hypothesis``) and handed to every partition.
"""

from __future__ import annotations

from ...audio.media import with_channel
from ...config import InputConfig
from ..segmentation import Unit
from .common import (
    File,
    Malformed,
    check_order,
    error_row,
    groups,
    iter_lines,
    list_files,
    segment_rows,
)

EXTENSIONS = (".ctm",)


def parse(url: str) -> tuple[dict, dict]:
    """{(recording, channel): [(Unit, line)]} in time order, and {recording: Malformed}."""
    streams: dict[tuple, list] = {}
    errors: dict[str, Malformed] = {}
    for n, line in iter_lines(url):
        if isinstance(line, Malformed):  # not UTF-8: its recording cannot be told
            errors.setdefault("", line)
            continue
        parts = line.split()
        if not parts or parts[0].startswith(";;"):
            continue  # blank, or a comment
        rec = parts[0]
        if rec in errors:
            continue
        try:
            if len(parts) < 5:
                raise Malformed(
                    n, f"expected 'recording channel start duration word', got {line.strip()!r}"
                )
            start, dur = _number(parts[2], n), _number(parts[3], n)
            streams.setdefault((rec, parts[1]), []).append(
                (Unit(parts[4], start, round(start + dur, 6)), n)
            )
        except Malformed as e:
            errors[rec] = e
    for key, units in streams.items():
        units.sort(key=lambda p: (p[0].start, p[0].end))
        if key[0] not in errors:
            try:
                check_order(units)
            except Malformed as e:
                errors[key[0]] = e
    return streams, errors


def _number(text: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise Malformed(line, f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise Malformed(line, f"{text!r} is not a number")
    return value


def parts(path: str) -> list[list[File]]:
    """The CTM files, grouped into partitions (listed, not opened)."""
    return groups(list_files(path, EXTENSIONS))


def hypothesis(inp: InputConfig) -> dict | None:
    """{recording: [Unit]} (every channel) and {(recording, channel): [Unit]} of
    ``input.ctm.hypothesis``, in one dict, or None when it is not set."""
    if not inp.ctm.hypothesis:
        return None
    hyp_units: dict = {}
    for f in list_files(inp.ctm.hypothesis, EXTENSIONS):
        for (rec, channel), units in parse(f.url)[0].items():
            hyp_units.setdefault(rec, []).extend(u for u, _ in units)
            hyp_units.setdefault((rec, channel), []).extend(u for u, _ in units)
    return hyp_units


def channel_number(label: str) -> int | None:
    """A CTM channel as a channel of the file, from 1: ``1``, ``2`` ... or ``A``, ``B`` ...; None for
    any other label."""
    if label.isdigit() and int(label) >= 1:
        return int(label)
    if len(label) == 1 and label.isalpha() and label.isascii():
        return ord(label.upper()) - ord("A") + 1
    return None


def _channels(streams: dict, errors: dict) -> dict:
    """{(recording, channel): the recording reference of its rows}: the recording itself, or, for a
    recording whose file lists words on several channels, that channel of it (``media.with_channel``:
    each cut from its own channel, with ids of their own). An unknown label of such a recording makes
    it malformed (in ``errors``)."""
    seen: dict[str, list] = {}
    for rec, channel in streams:
        seen.setdefault(rec, []).append(channel)
    out = {}
    for (rec, channel), units in streams.items():
        number = channel_number(channel) if len(seen[rec]) > 1 else None
        if len(seen[rec]) > 1 and number is None:
            errors.setdefault(
                rec, Malformed(units[0][1], f"channel {channel!r} is not 1, 2 ... or A, B ...")
            )
        out[(rec, channel)] = with_channel(rec, number)
    return out


def read_part(files: list[File], inp: InputConfig, hyp_units: dict | None) -> list[dict]:
    """The rows of one partition's files, in file order."""
    rows: list[dict] = []
    for f in files:
        streams, errors = parse(f.url)
        refs = _channels(streams, errors)
        done: set = set()
        for (rec, channel), units in streams.items():
            if rec in errors:
                if rec not in done:
                    rows.append(error_row(f.name, errors[rec], recording=rec))
                    done.add(rec)
                continue
            own = refs[(rec, channel)] != rec  # one channel of several: its own hypothesis words
            rows += segment_rows(
                refs[(rec, channel)],
                [u for u, _ in units],
                inp,
                hyp_units=hyp_units.get((rec, channel) if own else rec)
                if hyp_units is not None
                else None,
            )
        rows += [
            error_row(f.name, e, recording=rec or None)
            for rec, e in errors.items()
            if rec not in done
        ]
    return rows


def read(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    hyp_units = hypothesis(inp)
    return [r for files in parts(path) for r in read_part(files, inp, hyp_units)]
