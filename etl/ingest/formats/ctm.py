"""CTM (Kaldi, NeMo Forced Aligner): one word per line, ``recording channel start duration word [confidence ...]``.

Words become segments (``etl.ingest.segmentation``). A recording with a malformed line (too few fields, a
time that is not a number, a negative duration, a word overlapping the previous one) is one
``unreadable_alignment`` row naming the file and line; every other recording is still read.
``input.ctm.hypothesis``: a second CTM of the same recordings (e.g. ASR output) gives the hypothesis.
"""
from __future__ import annotations

from ..segmentation import Unit
from .common import Malformed, check_order, error_row, iter_lines, list_files, segment_rows

EXTENSIONS = (".ctm",)


def parse(url: str) -> tuple[dict, dict]:
    """{(recording, channel): [(Unit, line)]} in time order, and {recording: Malformed}."""
    streams: dict[tuple, list] = {}
    errors: dict[str, Malformed] = {}
    lines = iter_lines(url)
    try:
        for n, line in lines:
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue  # blank, or a comment
            rec = parts[0]
            if rec in errors:
                continue
            try:
                if len(parts) < 5:
                    raise Malformed(n, f"expected 'recording channel start duration word', got {line.strip()!r}")
                start, dur = _number(parts[2], n), _number(parts[3], n)
                streams.setdefault((rec, parts[1]), []).append((Unit(parts[4], start, round(start + dur, 6)), n))
            except Malformed as e:
                errors[rec] = e
    except UnicodeDecodeError:
        errors[""] = Malformed(None, "not UTF-8 text")
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


def read(path: str, inp: dict) -> list[dict]:
    hyp_units: dict[str, list] = {}
    if inp["ctm"]["hypothesis"]:
        for url, _ in list_files(inp["ctm"]["hypothesis"], EXTENSIONS):
            for (rec, _), units in parse(url)[0].items():
                hyp_units.setdefault(rec, []).extend(u for u, _ in units)
    rows: list[dict] = []
    for url, name in list_files(path, EXTENSIONS):
        streams, errors = parse(url)
        done: set = set()
        for (rec, _), units in streams.items():
            if rec in errors:
                if rec not in done:
                    rows.append(error_row(name, errors[rec], recording=rec))
                    done.add(rec)
                continue
            rows += segment_rows(rec, [u for u, _ in units], inp["segmentation"],
                                 hyp_units=hyp_units.get(rec) if inp["ctm"]["hypothesis"] else None)
        rows += [error_row(name, e, recording=rec or None) for rec, e in errors.items() if rec not in done]
    return rows
