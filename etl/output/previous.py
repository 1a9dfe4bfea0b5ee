"""What a build takes from the dataset already in output.path: the dev ids (``splits.keep_previous_dev``),
read from its dev files when it was split with the same seed and ``by``, or from an unfinished build's
manifest; and its clips (``previous_files`` on the client, ``previous_clips`` on a worker), taken
instead of decoded when the file, the span and the audio settings are the same.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from ..audio.decoders import decoder_identity
from ..audio.measures import MEASURE_COLUMNS
from ..audio.measures import REASONS as QUALITY_REASONS
from ..config import Config
from ..ingest.recordings import identities_digest, identities_of, list_audio
from ..records import PreviousFile
from . import resume, storage


def previous_dev_ids(cfg: Config) -> set:
    """Ids in dev of the dataset now in output.path, if it was split the same way (else empty).
    While a build there is unfinished, the ones it started from (what its resume will use)."""
    if not cfg.splits.keep_previous_dev:
        return set()
    fs, root = storage.fs_and_path(cfg.output.path)
    unfinished = resume.read_manifest(fs, root)
    if unfinished is not None:
        return set(unfinished.get("previous_dev", []))
    try:
        with fs.open(storage.join(root, storage.REPORT_JSON), "rb") as f:
            old = json.load(f)["config"]["splits"]
        if old.get("seed") != cfg.splits.seed or old.get("by", "segment") != cfg.splits.by:
            return set()
        files = fs.glob(storage.join(root, storage.DATA_DIR, storage.split_glob("dev")))
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    ids: set = set()
    for name in files:
        with fs.open(name, "rb") as f:
            ids.update(pq.read_table(f, columns=["id"]).column("id").to_pylist())
    return ids


def audio_settings(cfg: Config) -> dict:
    """What decides a clip's samples and bytes besides its file and span: report.json's ``audio``.
    A dataset whose settings differ in anything lends no clip to a build."""
    a = cfg.audio
    return {
        "sampling_rate": a.sampling_rate,
        "channels": a.channels,
        "format": cfg.output.audio_format,
        "decoder": a.decoder,
        "decoder_identity": decoder_identity(a.decoder, a.ffmpeg),
    }


def previous_report(cfg: Config) -> dict | None:
    """report.json of the complete dataset now in output.path (None: there is none)."""
    fs, root = storage.fs_and_path(cfg.output.path)
    return resume.read_json(fs, storage.join(root, storage.REPORT_JSON))


def previous_files(cfg: Config, report: dict | None) -> dict[str, PreviousFile]:
    """url -> what the dataset now in output.path (``report``: its report.json) holds of that audio
    file, read from its recordings.parquet; {} when there is none, or its audio settings differ."""
    if not report or report.get("audio") != audio_settings(cfg):
        return {}
    fs, root = storage.fs_and_path(cfg.output.path)
    try:
        with fs.open(storage.join(root, storage.RECORDINGS_FILE), "rb") as f:
            table = pq.read_table(f).to_pylist()
    except (OSError, ValueError):
        return {}
    by_url: dict[str, dict] = {}
    for r in table:
        if r["identity"] is None:
            continue
        d = by_url.setdefault(
            r["url"], {"identity": r["identity"], "names": [], "files": set(), "length": None}
        )
        if d["identity"] != r["identity"]:  # never expected: one file, one identity per build
            d["identity"] = ""
        d["names"].append(r["recording"])
        d["files"].update(r["files"] or ())
        d["length"] = r["length"] if r["length"] is not None else d["length"]
    return {
        u: PreviousFile(
            d["identity"], tuple(sorted(d["names"])), tuple(sorted(d["files"])), d["length"]
        )
        for u, d in by_url.items()
        if d["identity"]
    }


def previous_clips(out: str, prev: PreviousFile, sampling_rate: int) -> dict[tuple, dict]:
    """(first, stop) sample span -> a clip the dataset in ``out`` holds of ``prev``'s file: its
    measures and ``audio``, a callable that reads its bytes (None: a clip the quality filters
    rejected, its measures kept in rejects.parquet). Read on a worker; the bytes are read when taken,
    one row group in memory at a time (a shard takes them in file order)."""
    fs, root = storage.fs_and_path(out)
    names = set(prev.names)
    clips: dict[tuple, dict] = {}
    keep = ["recording", "start", "end", *MEASURE_COLUMNS]
    try:
        rejected = pq.read_table(
            storage.join(root, storage.REJECTS_FILE),
            columns=keep,
            filters=[("recording", "in", sorted(names)), ("reason", "in", list(QUALITY_REASONS))],
            filesystem=fs,
        ).to_pylist()
    except OSError:  # gone or unreadable: nothing to take from it
        rejected = []
    for r in rejected:
        clips[_span(r, sampling_rate)] = {**r, "audio": None}
    reader = _AudioReader(fs)
    for name in prev.files:
        path = storage.join(root, storage.DATA_DIR, name)
        for r, group, i in _rows_of(fs, path, keep, names):
            clips[_span(r, sampling_rate)] = {**r, "audio": reader.bytes_of(path, group, i)}
    return clips


def _span(r: dict, sampling_rate: int) -> tuple[int, int]:
    return (int(round(r["start"] * sampling_rate)), int(round(r["end"] * sampling_rate)))


def _rows_of(fs, path: str, columns: list[str], names: set):
    """(row, row group, index in it) of the rows of ``names`` in one data file (without its audio);
    row groups whose recording statistics exclude them are skipped. Nothing if the file is gone."""
    try:
        with fs.open(path, "rb") as f:
            pf = pq.ParquetFile(f)
            groups = storage.row_groups_that_may_hold(
                pf, "recording", lambda lo, hi: any(lo <= n <= hi for n in names)
            )
            for g in groups:
                for i, r in enumerate(pf.read_row_group(g, columns=columns).to_pylist()):
                    if r["recording"] in names:
                        yield r, g, i
    except OSError:
        return


class _AudioReader:
    """The audio bytes of the previous clips, read when taken: per data file, one row group in memory
    at a time. A shard takes a recording's clips in time order, and with ``splits.by: segment`` they
    alternate between the train and the dev file: each file keeps its own group, so each group is
    read once (one group for all files read each 8-MB train group again after every dev clip)."""

    def __init__(self, fs):
        self.fs = fs
        self.groups: dict[str, tuple[int, list]] = {}  # path -> (row group, its rows' audio)

    def bytes_of(self, path: str, group: int, i: int):
        def read() -> bytes:
            held = self.groups.get(path)
            if held is None or held[0] != group:
                with self.fs.open(path, "rb") as f:
                    table = pq.ParquetFile(f).read_row_group(group, columns=["audio"])
                held = self.groups[path] = (group, table.column("audio").to_pylist())
            return held[1][i]["bytes"]

        return read


def current_audio_identity(cfg: Config) -> str:
    """``identities_digest`` of the audio now, as report.json's ``audio_identity`` of a build from
    ``cfg`` would be: of every listed file (an added or removed one counts), or without a listing
    (``input.audio: null``), of the files the dataset there was cut from."""
    if cfg.input.audio is not None:
        return list_audio(cfg.input.audio, cfg.input.recording_pattern).digest()
    fs, root = storage.fs_and_path(cfg.output.path)
    try:
        with fs.open(storage.join(root, storage.RECORDINGS_FILE), "rb") as f:
            urls = pq.read_table(f, columns=["url"]).column("url").to_pylist()
    except (OSError, ValueError):
        return ""
    return identities_digest(identities_of(urls))
