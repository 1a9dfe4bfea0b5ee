"""Alignment-table readers: csv, tsv, json (records or dict keyed by id), jsonl, parquet, Kaldi dir.

Each reader returns a dask dataframe of the user's columns as read; ``canonical`` maps them to the
canonical columns of ``schema.TABLE_COLUMNS`` (minus ``row``, which is assigned once the partitions
are concatenated in order). Values are read as strings where the format allows, so an id like
"007" or a transcript "NA" survives untouched.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import fsspec
import pandas as pd

from ..audio.media import with_channel
from ..config import INPUT_FORMATS, ColumnsConfig, InputConfig, is_url
from ..errors import UserError
from ..schema import (
    BAD_LINE,
    BAD_LINE_ID,
    EXTRA_TABLE_COLUMNS,
    JSON_KEY,
    KALDI_COLUMNS,
    SPEAKER_IN_ID,
)
from . import formats
from .text import without_surrogates
from .wav_scp import UnreadPipe, parse_entry

# File extension -> format, for the formats an extension decides (``config.INPUT_FORMATS``).
_EXT = {ext: f.name for f in INPUT_FORMATS.values() for ext in f.extensions}
_JSON_EXT = (
    ".json",
    ".jsonl",
    ".ndjson",
)  # a NeMo manifest or lhotse supervisions, by the first line


def detect_format(path: str, forced: str | None = None) -> str:
    if forced:
        return forced
    fs, p = fsspec.core.url_to_fs(path)
    if fs.isdir(p):
        return _folder_format(fs, p, path)
    base = p[:-3] if p.endswith(".gz") else p
    ext = os.path.splitext(base)[1].lower()
    if ext in _JSON_EXT:
        return formats.sniff_json_lines(path) or _EXT[ext]
    if ext not in _EXT:
        raise UserError(
            f"input.alignment: cannot tell the format of {path} from its extension; "
            f"set input.format to one of {', '.join(INPUT_FORMATS)}"
        )
    return _EXT[ext]


def _folder_format(fs, p: str, path: str) -> str:
    """A Kaldi data dir, or a folder of TextGrids, CTMs or subtitles (one kind only)."""
    if fs.exists(p.rstrip("/") + "/segments"):
        return "kaldi"
    found = formats.folder_formats(fs, p)
    if len(found) > 1:
        raise UserError(
            f"input.alignment: {path} holds files of several formats ({', '.join(found)}); "
            f"set input.format to the one to read"
        )
    return found[0] if found else "kaldi"


def reader_columns(fmt: str, columns: ColumnsConfig) -> ColumnsConfig:
    """The column mapping for ``canonical``: the user's, or fixed for formats whose readers name them."""
    kind = INPUT_FORMATS[fmt].kind
    if kind == "kaldi":  # speaker: from utt2spk (None without one)
        return ColumnsConfig(hypothesis=None, speaker="speaker")
    if kind == "aligner":  # speaker: as the reader gives it (``canonical``'s reader_extras)
        return ColumnsConfig(hypothesis="hypothesis", speaker=None)
    return columns


def has_speaker(inp: InputConfig, fmt: str) -> bool:
    """Whether the table maps a speaker column, or its format names speakers (lhotse, TextGrid, a
    Kaldi dir with ``utt2spk`` or ``spk2utt``): then the dataset and the rejects carry ``speaker``."""
    speakers = INPUT_FORMATS[fmt].speakers
    if speakers == "files":
        fs, folder = fsspec.core.url_to_fs(inp.alignment)
        return any(fs.exists(folder.rstrip("/") + "/" + name) for name in KALDI_SPEAKER_FILES)
    return speakers == "always" or (speakers == "column" and bool(inp.columns.speaker))


def has_own_ids(fmt: str, present: list[str], columns: ColumnsConfig) -> bool:
    """Whether the table holds its own segment ids (kept as ``source_id``); TextGrids, CTMs,
    subtitles and NeMo manifests have none: their ids follow ``input.id_template``."""
    if not INPUT_FORMATS[fmt].own_ids:
        return False
    return bool(columns.id) and (columns.id in present or JSON_KEY in present)


def read_raw(path: str, fmt: str, inp: InputConfig | None = None):
    """The table as a dask dataframe of the user's own columns (for the aligner formats of
    ``etl.ingest.formats``, of canonical ones; ``inp`` is the ``input`` config they read their
    options from). ``READERS`` holds the reader of each format.

    Lazy, with ``meta`` given: its partitions are read where they are computed, in input order. A
    build makes it on a worker (``planning.worker.table_layout``), which lists the files, samples a
    CSV's first block, and reads a JSON document's columns (the user's: they decide the checks made
    on the client).
    """
    if fmt not in READERS:
        raise UserError(f"input.format: unknown format {fmt!r}")
    return READERS[fmt](path, inp if inp is not None else InputConfig())


def _aligner(path: str, inp: InputConfig, fmt: str):
    import dask.dataframe as dd

    return dd.from_delayed(formats.partitions(path, fmt, inp), meta=formats.META, verify_meta=False)


def _csv(path: str, inp: InputConfig, sep: str = ","):
    import dask.dataframe as dd

    kw = dict(
        dtype=str, keep_default_na=False, na_filter=False, blocksize=2**23
    )  # 8 MiB: several per worker
    if sep == "\t":
        kw.update(sep="\t", quoting=csv.QUOTE_NONE)
    return dd.read_csv(path, **kw)


def _parquet(path: str, inp: InputConfig):
    import dask.dataframe as dd

    return dd.read_parquet(path)


def _json_document(path: str):
    """One partition, read on a worker; its columns (the user's) come from one task that reads the
    document there too, so the client never holds it."""
    import dask
    import dask.dataframe as dd
    from dask import delayed

    (columns,) = dask.compute(delayed(_json_columns)(path))
    return dd.from_delayed(
        [delayed(_read_json_document)(path)], meta=_meta(columns), verify_meta=False
    )


JSONL_BLOCK = 2**23  # 8 MiB: several per worker
JSONL_SAMPLE = 2**20  # what is read of the first file, for the column names (as dd.read_json did)
# A malformed JSON line's row in a jsonl block: its ``unreadable_alignment`` detail and its id (file
# and line, as the manifest readers give them): ``schema.BAD_LINE``, ``schema.BAD_LINE_ID``;
# ``canonical`` takes them. Only a block holding one has them.


def _json_lines(path: str):
    """Blocks of lines (``formats.common.byte_ranges``, as the manifests are split), each read on a
    worker. A block keeps the types pandas gives it (``canonical`` takes any; the meta says object),
    so a value whose type changes past the sample does not fail the table. A block pandas cannot read
    is read line by line by ``json``: an integer beyond 64 bits is then read (that row checked like any
    other: a start of -1e20 is ``bad_timestamps``), and a line that is not a JSON object (or not UTF-8)
    is one row naming the file and line (``BAD_LINE``). A block's first line counts the lines of the
    blocks before it, which each block's own task counts as it reads them. A glob names several files."""
    import operator

    import dask.dataframe as dd
    from dask import delayed

    from .formats.common import byte_ranges

    files = [(f.full_name, f.fs.size(f.path), f.path) for f in fsspec.open_files(path)]
    root = os.path.commonpath([os.path.dirname(p) for _, _, p in files]) if files else ""
    names = [
        p[len(root) :].lstrip("/") for _, _, p in files
    ]  # as the manifests name them: from the listed folder
    columns = (
        _json_lines_columns(path, files[0][0]) if files else []
    )  # the client: column names only
    parts = []
    for (url, size, _), name in zip(files, names):
        first = 1
        for lo, hi in byte_ranges(url, size, JSONL_BLOCK):
            block, lines = delayed(_json_lines_part, nout=2)(url, lo, hi, columns)
            parts.append(delayed(_number_bad_lines)(block, name, first))
            first = delayed(operator.add)(first, lines)
    parts = parts or [delayed(_read_json_lines)(b"", columns)]  # no file: no rows
    return dd.from_delayed(parts, meta=_meta(columns), verify_meta=False)


def _json_lines_columns(path: str, url: str) -> list:
    """The column names of the file's first ``JSONL_SAMPLE`` bytes; when none of its lines is a
    JSON object (not JSON lines at all, or not UTF-8), a UserError naming the first bad line."""
    sample = _read_json_lines(_json_lines_block(url, 0, JSONL_SAMPLE))
    columns = [str(c) for c in sample.columns if c not in (BAD_LINE, BAD_LINE_ID)]
    if not columns and BAD_LINE in sample.columns:
        bad = sample[BAD_LINE].dropna().iloc[0]
        raise UserError(
            f"input.alignment {path}: cannot read it as jsonl: line {bad.line}: {bad.message}"
        )
    return columns


def _json_lines_block(url: str, lo: int, hi: int | None) -> bytes:
    from .formats.common import block_lines

    return b"".join(block_lines(url, lo, hi))


def _json_lines_part(url: str, lo: int, hi: int | None, columns: list) -> tuple[pd.DataFrame, int]:
    """One block read on a worker, and how many lines start in it."""
    data = _json_lines_block(url, lo, hi)
    lines = data.count(b"\n") + (
        1 if data and not data.endswith(b"\n") else 0
    )  # the last may lack its "\n"
    return _read_json_lines(data, columns), lines


def _read_json_lines(data: bytes, columns: list | None = None) -> pd.DataFrame:
    """One block of JSON lines (UTF-8) as pandas reads it (``dtype=False``), with ``columns``; a
    block pandas refuses line by line (``_json_lines_by_json``)."""
    try:
        text = data.decode("utf-8-sig")  # a BOM at the start of the file
        df = (
            pd.read_json(io.StringIO(text), lines=True, orient="records", dtype=False)
            if text.strip()
            else pd.DataFrame()
        )
    except (
        ValueError,
        TypeError,
    ):  # not UTF-8, a line not a JSON object, or an integer beyond 64 bits (ujson)
        df = _json_lines_by_json(data)
    if columns is not None and list(df.columns) != columns:
        df = df.reindex(columns=columns + [c for c in (BAD_LINE,) if c in df.columns])
    return df


def _json_lines_by_json(data: bytes) -> pd.DataFrame:
    """Each JSON object line a record; a line that is not one (or not UTF-8) a record holding only its
    ``Malformed`` in ``BAD_LINE``, its line counted from the block's first; blank lines are no rows."""
    from .formats.common import Malformed, decode_lines, json_record

    records = []
    for n, line in decode_lines(io.BytesIO(data)):
        rec = (
            line if isinstance(line, Malformed) else json_record(n, line) if line.strip() else None
        )
        if rec is not None:
            records.append({BAD_LINE: rec} if isinstance(rec, Malformed) else rec)
    return pd.DataFrame.from_records(records)


def _number_bad_lines(df: pd.DataFrame, name: str, first_line: int) -> pd.DataFrame:
    """A block's malformed lines as the manifest readers give them (``formats.common.error_row``):
    detail and id naming the file and the line, counted from ``first_line``, the block's first."""
    if BAD_LINE not in df.columns:
        return df
    from .formats.common import Malformed, error_row

    bad = df[BAD_LINE].notna()
    rows = [
        error_row(name, Malformed(m.line + first_line - 1, m.message))
        for m in df.loc[bad, BAD_LINE]
    ]
    df = df.copy()
    df[BAD_LINE_ID] = None
    df.loc[bad, BAD_LINE] = [r["alignment_error"] for r in rows]
    df.loc[bad, BAD_LINE_ID] = [r["id"] for r in rows]
    return df


def _json_columns(path: str) -> list:
    return list(_read_json_document(path).columns)


KALDI_SPEAKER_FILES = ("utt2spk", "spk2utt")  # utt2spk wins when both are there


def _kaldi_dir(path: str):
    """One partition, read on a worker; the client only checks that ``segments`` exists."""
    import dask.dataframe as dd
    from dask import delayed

    fs, folder = fsspec.core.url_to_fs(path)
    if not fs.exists(folder.rstrip("/") + "/segments"):
        raise UserError(f"input.alignment: Kaldi dir {path} has no 'segments' file")
    return dd.from_delayed(
        [delayed(_read_kaldi)(path)], meta=_meta(KALDI_COLUMNS), verify_meta=False
    )


def _meta(columns: list) -> pd.DataFrame:
    """The empty frame of ``columns`` (all object, as the readers give them): a lazy table's ``meta``."""
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in columns})


def _read_json_document(path: str) -> pd.DataFrame:
    with fsspec.open(
        path, "rt", encoding="utf-8-sig", compression="infer"
    ) as f:  # -sig: a leading BOM
        try:
            doc = json.load(f)
        except json.JSONDecodeError as e:
            raise UserError(f"input.alignment {path} is not valid JSON: {e}") from None
    if isinstance(doc, dict):
        # {id: {recording, start, end, text, ...}} -> records carrying their key as JSON_KEY
        bad = [k for k, v in doc.items() if not isinstance(v, dict)]
        if bad:
            raise UserError(
                f"input.alignment {path}: a JSON object must map ids to records; "
                f"key {bad[0]!r} does not"
            )
        records = [{JSON_KEY: k, **v} for k, v in doc.items()]
    elif isinstance(doc, list):
        records = doc
    else:
        raise UserError(
            f"input.alignment {path}: expected a JSON list of records or an object keyed by id"
        )
    df = pd.DataFrame.from_records(records)
    return df.astype(object)


def _kaldi_file(fs, folder: str, name: str) -> list[str] | None:
    p = folder.rstrip("/") + "/" + name
    if not fs.exists(p):
        return None
    with fs.open(
        p, "rb"
    ) as f:  # lines end at "\n" only (not at U+2028, \x1c... as splitlines has it)
        return (
            io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
            .read()
            .replace("\r\n", "\n")
            .split("\n")
        )


def _read_kaldi(path: str) -> pd.DataFrame:
    fs, folder = fsspec.core.url_to_fs(path)
    segments = _kaldi_file(fs, folder, "segments")
    if segments is None:
        raise UserError(f"input.alignment: Kaldi dir {path} has no 'segments' file")
    rows = []
    for line in segments:
        if line.strip():
            parts = line.split()
            parts += [""] * (4 - len(parts))
            rows.append({"id": parts[0], "recording": parts[1], "start": parts[2], "end": parts[3]})
    df = pd.DataFrame(rows, columns=KALDI_COLUMNS[:4], dtype=object)
    text = {}
    for line in _kaldi_file(fs, folder, "text") or []:
        if line.strip():
            parts = line.strip().split(maxsplit=1)  # Kaldi: key, then a space or a tab
            text[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    df["text"] = df["id"].map(lambda i: text.get(i, "")).astype(object)
    speakers = _kaldi_speakers(fs, folder)
    df["speaker"] = df["id"].map(lambda i: speakers.get(i)).astype(object)  # not listed: no speaker
    return df


def _kaldi_speakers(fs, folder: str) -> dict:
    """utterance -> speaker, from ``utt2spk`` (``utt spk`` lines) or else ``spk2utt`` (``spk utt...``)."""
    lines = _kaldi_file(fs, folder, "utt2spk")
    if lines is not None:
        return {p[0]: p[1] for p in (line.split() for line in lines) if len(p) > 1}
    out: dict[str, str] = {}
    for line in _kaldi_file(fs, folder, "spk2utt") or []:
        spk, *utts = line.split() or [""]
        out.update((u, spk) for u in utts)
    return out


def read_wav_scp(path: str) -> dict[str, str | UnreadPipe] | None:
    """Kaldi wav.scp: recording id -> the file it names, or the ``UnreadPipe`` of a command pipe of no
    known form (``ingest.wav_scp``; no command is ever run). A pipe of a known form (``sph2pipe -c 2
    X.sph |``) names its file, and its channel as a ``media.with_channel`` URL. Relative paths resolve
    against the recipe folder Kaldi runs from: the parent of ``data/`` when the data dir is
    ``.../data/<name>``, else the data dir's parent."""
    fs, folder = fsspec.core.url_to_fs(path)
    lines = _kaldi_file(fs, folder, "wav.scp")
    if lines is None:
        return None
    parent = os.path.dirname(folder.rstrip("/"))
    base = os.path.dirname(parent) if os.path.basename(parent) == "data" else parent
    remote = is_url(path)
    proto = path.split("://", 1)[0] + "://" if remote else ""
    out: dict[str, str | UnreadPipe] = {}
    for line in lines:
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        entry = parse_entry(parts[1] if len(parts) > 1 else "")
        if isinstance(entry, UnreadPipe):
            out[parts[0]] = entry
            continue
        target = entry.path
        if is_url(target) or target.startswith("/"):
            found = (proto + target.lstrip("/")) if remote and not is_url(target) else target
        else:
            joined = os.path.normpath(os.path.join(base, target))
            found = proto + joined if remote else joined
        out[parts[0]] = with_channel(found, entry.channel)
    return out


def canonical(
    df: pd.DataFrame, columns: ColumnsConfig, id_template: str, reader_extras: bool = False
) -> pd.DataFrame:
    """User columns -> canonical ones (``schema.TABLE_COLUMNS`` minus ``row``). Pure.

    ``reader_extras``: ``df`` comes from an alignment reader (``etl/formats``), whose ``speaker``,
    ``schema.EXTRA_TABLE_COLUMNS`` and ``schema.SPEAKER_IN_ID`` are kept; a user's table column that happens to be called ``words``
    or ``speaker`` is never taken for them.

    ``id`` is the table's id if it has one (kept as ``source_id`` too), else ``id_template``;
    template ids are filled in later by ``rows.check_rows`` once start/end are parsed.
    """
    if JSON_KEY in df.columns:  # JSON dict keyed by id: the key is the id
        df = df.rename(columns={JSON_KEY: columns.id or "id"})
    out = pd.DataFrame(index=df.index)
    id_col = columns.id
    if id_col and id_col in df.columns:
        out["source_id"] = df[id_col].map(_as_str)
    else:
        out["source_id"] = None
    out["id"] = out["source_id"]
    out["recording"] = df[columns.recording].map(_as_str)
    out["start"] = df[columns.start]
    out["end"] = df[columns.end]
    out["text_raw"] = df[columns.text].map(_as_str)
    hyp = columns.hypothesis
    out["hypothesis"] = df[hyp].map(_as_str) if hyp else None
    spk = columns.speaker
    if spk:
        out["speaker"] = df[spk].map(_as_str)
    elif (
        reader_extras and "speaker" in df.columns
    ):  # lhotse, MFA per-speaker tiers: as the alignment readers gave them
        out["speaker"] = df["speaker"]
    else:
        out["speaker"] = None
    if (
        BAD_LINE in df.columns
    ):  # a jsonl line that is not a JSON object: its reject, as a manifest's
        out["id"] = out["id"].where(df[BAD_LINE].isna(), df[BAD_LINE_ID])
        out["alignment_error"] = df[BAD_LINE]
    for extra in (*EXTRA_TABLE_COLUMNS, SPEAKER_IN_ID):  # as the alignment readers gave them
        if reader_extras and extra in df.columns:
            out[extra] = df[extra]
    return out.astype({"source_id": object, "id": object, "hypothesis": object, "speaker": object})


def check_columns(present: list[str], columns: ColumnsConfig, fmt: str) -> None:
    if INPUT_FORMATS[fmt].kind != "table":  # the reader names the columns
        return
    present_set = set(present) | ({JSON_KEY} if JSON_KEY in present else set())
    for key in ("recording", "start", "end", "text", "hypothesis", "speaker"):
        name = getattr(columns, key)
        if name and name not in present_set:
            raise UserError(
                f"input.columns.{key}: column {name!r} is not in the table "
                f"(columns: {', '.join(c for c in present if c != JSON_KEY)})"
            )
    id_col = columns.id
    if id_col and id_col != "id" and id_col not in present_set and JSON_KEY not in present_set:
        raise UserError(
            f"input.columns.id: column {id_col!r} is not in the table "
            f"(columns: {', '.join(present)}); set it to null to generate ids"
        )


def _as_str(v):
    """A cell as text: None for every kind of missing value (None, NaN, pd.NA, NaT); a float that is
    an integer without ".0"; lone surrogates (JSON "\\ud800", not UTF-8) as U+FFFD."""
    if v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return without_surrogates(v if isinstance(v, str) else str(v))


def _path_only(read) -> Callable[[str, InputConfig], Any]:
    return lambda path, inp: read(path)


# The reader of each format of ``config.INPUT_FORMATS``: (path, input config) -> a lazy dask frame.
READERS: dict[str, Callable[[str, InputConfig], Any]] = {
    "csv": _csv,
    "tsv": partial(_csv, sep="\t"),
    "json": _path_only(_json_document),
    "jsonl": _path_only(_json_lines),
    "parquet": _parquet,
    "kaldi": _path_only(_kaldi_dir),
    **{fmt: partial(_aligner, fmt=fmt) for fmt in formats.PARTITIONS},
}
if READERS.keys() != INPUT_FORMATS.keys():  # a format declared without its reader, or the reverse
    raise ImportError(
        f"etl.ingest.table.READERS {sorted(READERS)} != config.INPUT_FORMATS {sorted(INPUT_FORMATS)}"
    )
