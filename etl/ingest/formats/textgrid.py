"""Praat TextGrids, one per recording (Montreal Forced Aligner's output): ``<recording>.TextGrid``.

Read as Praat writes them (UTF-8, or UTF-16 with a BOM: ``read_textgrid``) and parsed by praatio
(long and short text forms). The intervals of the tier ``input.textgrid.tier`` (``words``) become
segments (``etl.ingest.segmentation``; pause labels, ``input.silence_labels``, are the gaps); MFA's
multi-speaker files name their tiers ``<speaker> - words``, which gives each segment its ``speaker``;
in a file of several speaker tiers the speaker is in each segment's id too (``rows.speaker_template``:
``<recording>_<speaker>_<start>-<end>`` by default), so two speakers at the same times keep both
segments. ``input.textgrid.hypothesis_tier``
names a second tier whose text, laid over each segment, is the hypothesis. A malformed file (or one
without the tier) is one ``unreadable_alignment`` row naming the file and line; if no file has the
tier, the config names a tier that does not exist: one line, exit 2. Partitions are groups of files
(``parts``), read on the workers.
"""

from __future__ import annotations

import codecs
import re

import fsspec

from ...config import InputConfig
from ...errors import UserError
from ...schema import SPEAKER_IN_ID
from ..segmentation import Unit
from .common import (
    File,
    Malformed,
    check_order,
    error_row,
    groups,
    list_files,
    segment_rows,
)

EXTENSIONS = (".textgrid",)
_ENTRY = re.compile(r"^\s*(?:intervals|points)\s*\[\d+\]\s*:?\s*$")
_ITEM = re.compile(r"^\s*item\s*\[\d+\]\s*:?\s*$")
_FIELD = re.compile(r"^\s*(xmin|xmax|number|time)\s*=\s*(\S*)\s*$")


def read_textgrid(url: str) -> str:
    """A TextGrid's text as Praat writes it: UTF-16 with a byte order mark (either order; Praat's
    choice when a label is not ASCII), else UTF-8 (a BOM ignored). Anything else is malformed."""
    with fsspec.open(url, "rb", compression="infer") as f:
        data = f.read()
    utf16 = data.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE))
    try:
        return data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError as e:
        if utf16:  # what precedes the bad code unit decodes: count its lines
            line = data[: e.start - e.start % 2].decode("utf-16").count("\n") + 1
            raise Malformed(line, "not UTF-16 text (the file starts with a UTF-16 BOM)") from None
        line = data[: e.start].count(b"\n") + 1
        raise Malformed(line, "not UTF-8 or UTF-16 text") from None


def _entry_lines(text: str) -> list[list[int]]:
    """Per tier, the line of each entry (long text form; the short form has no markers: empty)."""
    tiers: list[list[int]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if _ITEM.match(line):
            tiers.append([])
        elif _ENTRY.match(line) and tiers:
            tiers[-1].append(n)
    return tiers


def _parse_failure(text: str, e: Exception) -> Malformed:
    """praatio names no line: the first line whose time is not a number, else the first line."""
    for n, line in enumerate(text.splitlines(), 1):
        m = _FIELD.match(line)
        if m:
            try:
                float(m.group(2))
            except ValueError:
                return Malformed(n, f"{m.group(1)} {m.group(2)!r} is not a number")
    if "ooTextFile" in text[:200] and isinstance(e, IndexError):
        return Malformed(len(text.splitlines()), "the TextGrid ends early")
    return Malformed(
        1 if "ooTextFile" not in text[:200] else None,
        f"not a Praat TextGrid ({type(e).__name__}: {e})".replace(" ()", ""),
    )


def parse(text: str) -> list[dict]:
    """[{name, class, entries: [(Unit, line)]}] of a TextGrid document."""
    from praatio.utilities.textgrid_io import parseTextgridStr

    try:
        doc = parseTextgridStr(text, includeEmptyIntervals=True)
        tiers = [dict(t, entries=list(t["entries"])) for t in doc["tiers"]]
    except Exception as e:  # praatio raises IndexError, ValueError, its ParsingError...
        raise _parse_failure(text, e) from None
    lines = _entry_lines(text)
    out = []
    for k, t in enumerate(tiers):
        at = (
            lines[k]
            if k < len(lines) and len(lines[k]) == len(t["entries"])
            else [None] * len(t["entries"])
        )
        entries = [
            (Unit(str(e[-1]).strip(), float(e[0]), float(e[1] if len(e) > 2 else e[0])), n)
            for e, n in zip(t["entries"], at)
        ]
        out.append({"name": t["name"], "class": t["class"], "entries": entries})
    return out


def speaker_tiers(tiers: list[dict], name: str) -> dict:
    """{speaker (None for a plain ``words`` tier): [(Unit, line)]} of the tiers called ``name`` or
    ``<speaker> - name`` (MFA)."""
    out: dict = {}
    for t in tiers:
        if t["name"] == name:
            spk = None
        elif t["name"].endswith(" - " + name):
            spk = t["name"][: -len(" - " + name)]
        else:
            continue
        if spk in out:  # which one holds the words? (praatio's openTextgrid refuses it too)
            raise Malformed(None, f"two tiers are named {t['name']!r}")
        out[spk] = t
    for _spk, t in out.items():
        if t["class"] != "IntervalTier":
            raise Malformed(None, f"tier {t['name']!r} is a point tier, not an interval tier")
    return {
        spk: sorted(t["entries"], key=lambda p: (p[0].start, p[0].end)) for spk, t in out.items()
    }


def _rows_of_file(text: str, rec: str, inp: InputConfig) -> list[dict]:
    opts = inp.textgrid
    tiers = parse(text)
    main = speaker_tiers(tiers, opts.tier)
    if not main:
        raise Malformed(
            None,
            f"no tier {opts.tier!r} (tiers: {', '.join(t['name'] for t in tiers) or 'none'})",
        )
    hyp = speaker_tiers(tiers, opts.hypothesis_tier) if opts.hypothesis_tier else {}
    hyp_units = [u for entries in hyp.values() for u, _ in entries]
    rows = []
    for spk, entries in main.items():
        check_order(entries)
        rows += segment_rows(
            rec,
            [u for u, _ in entries],
            inp,
            hyp_units=hyp_units if opts.hypothesis_tier else None,
            speaker=spk,
            # several speakers: their ids name them (two at the same times keep two ids); a file of
            # one tier keeps the ids it always had
            **{SPEAKER_IN_ID: len(main) > 1 and spk is not None},
        )
    return rows


def parts(path: str) -> list[list[File]]:
    """The TextGrids, grouped into partitions (listed, not opened)."""
    return groups(list_files(path, EXTENSIONS))


def read_part(files: list[File], inp: InputConfig, first_of: str | None = None) -> list[dict]:
    """The rows of one partition's files, in file order. ``first_of``: the first partition names the
    alignment path; if none of its files has the tier and no later file has it either, the config
    names a tier that does not exist (a later partition that lacks it says nothing)."""
    rows: list[dict] = []
    no_tier = []
    for f in files:
        rec = f.name.rsplit(".", 1)[0]
        try:
            rows += _rows_of_file(read_textgrid(f.url), rec, inp)
        except Malformed as e:
            if e.message.startswith("no tier "):
                no_tier.append((f.name, e.message))
            rows.append(error_row(f.name, e, recording=rec))
    if (
        first_of is not None
        and files
        and len(no_tier) == len(files)
        and not _tier_after(first_of, files[-1], inp)
    ):
        raise UserError(f"input.textgrid.tier: {no_tier[0][0]}: {no_tier[0][1]}")
    return rows


def _tier_after(path: str, last: File, inp: InputConfig) -> bool:
    """Whether some file listed after ``last`` is anything but a file without the tier."""
    for f in list_files(path, EXTENSIONS):
        if f.name <= last.name:
            continue
        try:
            _rows_of_file(read_textgrid(f.url), f.name.rsplit(".", 1)[0], inp)
            return True
        except Malformed as e:
            if not e.message.startswith("no tier "):
                return True
    return False


def read(path: str, inp: InputConfig) -> list[dict]:
    """All rows of ``path`` in one process (what the partitions give, concatenated)."""
    return [
        r
        for k, files in enumerate(parts(path))
        for r in read_part(files, inp, path if k == 0 else None)
    ]
