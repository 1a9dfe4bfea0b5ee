"""What makes a build resumable: the fingerprint of its inputs, the manifest of an unfinished build,
one completion record per finished shard, and the journal of the final renames.

Everything lives in ``OUT/.parts/`` until the dataset is complete; ``report.json`` keeps the
fingerprint of the dataset it describes. A rerun with the same fingerprint skips what is recorded
as done; a different fingerprint never mixes with it (``--force`` discards it).
"""

from __future__ import annotations

import hashlib
import json

import fsspec

from ..audio.decoders import decoder_identity
from ..config import Config
from ..ingest.recordings import AUDIO_EXTENSIONS
from ..records import ShardResult
from . import storage

# Config sections that decide the content (cluster.* and output.path only decide where and how fast).
_CONTENT_KEYS = ("input", "output", "audio", "text", "filters", "splits", "budget")


def _file_bytes_hash(h, url: str) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    paths = (
        sorted(fs.find(path)) if fs.isdir(path) else [path]
    )  # a Kaldi data dir: every file in it
    # (subtitles kept next to the audio: the alignment folder is the audio folder; its audio is not hashed)
    paths = [p for p in paths if not p.lower().endswith(AUDIO_EXTENSIONS)]
    for p in paths:
        h.update(p.rsplit("/", 1)[-1].encode() + b"\0")
        with fs.open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)


def fingerprint(cfg: Config) -> str:
    """Hash of the content-deciding config, of the decoder's identity and of the bytes of the table and the id lists.
    (Audio files are identified by the table's recording ids, not hashed: too slow for terabytes.)"""
    h = hashlib.blake2b(digest_size=16)
    tree = cfg.to_dict()
    content = {k: tree[k] for k in _CONTENT_KEYS}
    content["output"] = {
        k: v for k, v in tree["output"].items() if k not in ("path", "check_space")
    }
    h.update(json.dumps(content, sort_keys=True, default=str).encode())
    # the decoder's library versions decide the samples too (e.g. AAC differs between FFmpeg releases)
    h.update(decoder_identity(cfg.audio.decoder, cfg.audio.ffmpeg).encode())
    for url in [
        cfg.input.alignment,
        cfg.input.ctm.hypothesis,
        cfg.splits.test_ids,
        *cfg.splits.exclude_ids,
    ]:
        if url:
            _file_bytes_hash(h, url)
    return h.hexdigest()


def _parts(root: str, name: str) -> str:
    return storage.join(root, storage.PARTS_DIR, name)


def write_record(fs, root: str, index: int, result: ShardResult) -> None:
    """Written by the task itself after its files are in place: the shard is done."""
    storage.write_bytes(
        fs,
        _parts(root, storage.record_name(index)),
        json.dumps(result.to_json(), default=str).encode(),
    )


def read_json(fs, path: str):
    try:
        with fs.open(path, "rb") as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def read_manifest(fs, root: str) -> dict | None:
    return read_json(fs, _parts(root, storage.MANIFEST_FILE))


def write_manifest(fs, root: str, manifest: dict) -> None:
    fs.makedirs(storage.join(root, storage.PARTS_DIR), exist_ok=True)
    storage.write_bytes(fs, _parts(root, storage.MANIFEST_FILE), json.dumps(manifest).encode())


def finished(fs, root: str, n_shards: int) -> dict[int, ShardResult]:
    """Results recorded by earlier runs, for shards whose files are all still there. Index
    ``n_shards`` is the reserve re-split, which consumes the shards' reserve files."""
    from ..curate.splits import RESERVE

    parts = storage.join(root, storage.PARTS_DIR)
    if not fs.exists(parts):
        return {}
    present = {p.rsplit("/", 1)[-1] for p in fs.ls(parts, detail=False)}
    reserve_done = storage.record_name(n_shards) in present
    done = {}
    for i in range(n_shards + 1):
        if storage.record_name(i) not in present:
            continue
        d = read_json(fs, _parts(root, storage.record_name(i)))
        rec = None if d is None or ShardResult.unfiled(d) else ShardResult.from_json(d)
        if rec is not None and all(
            p.file in present for s, p in rec.parts.items() if not (s == RESERVE and reserve_done)
        ):
            done[i] = rec
    return done


def remove_temporaries(fs, root: str) -> None:
    """Half-written files of a killed run (``*.tmp-*``): never part of any result."""
    parts = storage.join(root, storage.PARTS_DIR)
    if fs.exists(parts):
        for p in fs.ls(parts, detail=False):
            if storage.TMP_MARK in p.rsplit("/", 1)[-1]:
                fs.rm(p)


def read_journal(fs, root: str) -> dict | None:
    return read_json(fs, _parts(root, storage.JOURNAL_FILE))


def write_journal(fs, root: str, journal: dict) -> None:
    storage.write_bytes(
        fs, _parts(root, storage.JOURNAL_FILE), json.dumps(journal, default=str).encode()
    )


ROW_HASH_MOD = 1 << 256


def row_digest(split: str, row: dict) -> int:
    """A row's contribution to the content hash: its split, fields and audio bytes."""
    fields = {k: v for k, v in row.items() if k != "audio"}
    h = hashlib.blake2b(digest_size=32)
    h.update(
        split.encode() + b"\0" + json.dumps(fields, sort_keys=True, default=str).encode() + b"\0"
    )
    h.update(row["audio"]["bytes"])
    return int.from_bytes(h.digest(), "big")


def content_hash(digests) -> str:
    """Order-free: a sum of row digests, so shards, workers and resumes cannot change it."""
    total = sum(int(d, 16) for d in digests) % ROW_HASH_MOD
    return hashlib.blake2b(total.to_bytes(32, "big"), digest_size=16).hexdigest()
