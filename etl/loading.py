"""Load a built dataset for training: ``etl.load(OUT, split=None, decode="numpy", streaming=False)``.

- With ``arrow/`` in OUT (``output.arrow: true``): the Arrow files are memory-mapped where they are,
  nothing copied. ``decode="numpy"`` builds the splits the way ``datasets.load_from_disk`` does, minus
  its per-file deep copies and the cast (~0.3 s for 400 files / 5.5 GB instead of ~1.7 s);
  ``decode="datasets"`` is ``load_from_disk`` itself. Remote URLs are downloaded first (``datasets``).
- Otherwise the Parquet files go through ``datasets``' parquet builder: converted once into the HF
  cache, memory-mapped from there.
- ``streaming=True``: an ``IterableDataset`` reading the Parquet files row group by row group from
  any fsspec URL, for datasets larger than the local disk.

``decode="numpy"``: each row's ``audio`` is ``{"array": float32, "sampling_rate": int}``, decoded with
soundfile when the row is read (1-D for mono, (channels, samples) otherwise) -- no torch, no
torchcodec. ``decode="datasets"``: the ``Audio`` feature as ``datasets`` decodes it (torchcodec).
"""

from __future__ import annotations

import hashlib
import io
import json
import os

from .output import storage

DECODERS = ("numpy", "datasets")


def decode_audio(value: dict | None) -> dict | None:
    """``{"bytes": FLAC/WAV, "path": ...}`` -> ``{"array": float32, "sampling_rate": int}`` (soundfile)."""
    if value is None:
        return None
    import soundfile as sf

    x, sr = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=False)
    return {"array": x if x.ndim == 1 else x.T.copy(), "sampling_rate": int(sr)}


def decode_batch(batch: dict) -> dict:
    """A ``with_transform``/``map(batched=True)`` function: decodes ``audio`` when the batch has it
    (column reads such as ``ds["duration"]`` pass through untouched)."""
    if "audio" in batch:
        batch["audio"] = [decode_audio(a) for a in batch["audio"]]
    return batch


def data_files(path: str, storage_options: dict | None = None) -> dict[str, list[str]]:
    """{split: [Parquet URLs in order]} from ``OUT/data/`` (train first, then dev, test, the rest)."""
    fs, root = _fs(path, storage_options)
    data = storage.join(root, storage.DATA_DIR)
    names = sorted(
        n.rsplit("/", 1)[-1] for n in (fs.ls(data, detail=False) if fs.isdir(data) else [])
    )
    out: dict[str, list[str]] = {}
    for name in names:
        split = storage.split_of(name)
        if split:
            out.setdefault(split, []).append(_url(fs, storage.join(data, name)))
    if not out:
        raise FileNotFoundError(
            f"no etl dataset at {path}: no {storage.DATA_DIR}/{{split}}-*-of-*.parquet files"
        )
    first = [s for s in ("train", "dev", "test") if s in out]
    return {s: out[s] for s in first + sorted(set(out) - set(first))}


def _fs(path: str, storage_options: dict | None):
    import fsspec

    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    return fs, p.rstrip("/")


def _url(fs, path: str) -> str:
    return path if storage.is_local(fs) else fs.unstrip_protocol(path)


def _undecoded(features):
    """The features with ``audio`` left as bytes (decoded by ``decode_batch`` instead)."""
    import datasets

    features["audio"] = datasets.Audio(sampling_rate=features["audio"].sampling_rate, decode=False)
    return features


def _features(url: str, storage_options: dict | None):
    """The ``datasets.Features`` stored in a shard's ``huggingface`` schema metadata."""
    import datasets
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb", **(storage_options or {})) as f:
        meta = pq.read_schema(f).metadata or {}
    return datasets.Features.from_dict(json.loads(meta[b"huggingface"])["info"]["features"])


def load(
    path: str,
    split: str | None = None,
    decode: str = "numpy",
    streaming: bool = False,
    storage_options: dict | None = None,
):
    """The dataset in ``path`` (a folder or fsspec URL) as a ``DatasetDict``, or one split's
    ``Dataset`` (``IterableDataset``/``IterableDatasetDict`` with ``streaming=True``)."""
    if decode not in DECODERS:
        raise ValueError(f"decode must be one of {', '.join(DECODERS)}, got {decode!r}")
    import datasets

    path = str(path)
    fs, root = _fs(path, storage_options)
    arrow = storage.join(root, storage.ARROW_DIR)
    numpy = decode == "numpy"
    if not streaming and fs.exists(storage.join(arrow, storage.ARROW_DICT_FILE)):
        if numpy and storage.is_local(fs):
            return _memory_mapped(arrow, split, path)
        ds = datasets.load_from_disk(_url(fs, arrow), storage_options=storage_options)
        _check_split(split, ds, path)
        ds = ds if split is None else ds[split]
        if numpy:  # remote: a downloaded copy anyway
            feats = ds.features if split else next(iter(ds.values())).features
            ds = ds.cast_column("audio", _undecoded(feats.copy())["audio"])
    else:
        files = data_files(path, storage_options)
        _check_split(split, files, path)
        features = _features(next(iter(files.values()))[0], storage_options)
        ds = datasets.load_dataset(
            "parquet",
            data_files=files if split is None else {split: files[split]},
            features=_undecoded(features) if numpy else features,
            split=split,
            streaming=streaming,
            storage_options=storage_options,
        )
    if numpy:
        if streaming:
            return ds.map(decode_batch, batched=True)
        ds.set_transform(decode_batch)  # in place: with_transform would deep-copy the table
    return ds


def _memory_mapped(arrow: str, split: str | None, path: str):
    """What ``datasets.load_from_disk`` does for a local folder -- each split's files memory-mapped in
    place -- with the audio feature declared undecoded up front and no deep copies."""
    import datasets
    from datasets.table import MemoryMappedTable, concat_tables

    def read(*parts):
        with open(os.path.join(arrow, *parts), encoding="utf-8") as f:
            return json.load(f)

    splits = read(storage.ARROW_DICT_FILE)["splits"]
    _check_split(split, splits, path)
    out = {}
    for s in [split] if split else splits:
        state, info = read(s, storage.ARROW_STATE_FILE), read(s, storage.ARROW_INFO_FILE)
        table = concat_tables(
            [
                MemoryMappedTable.from_file(os.path.join(arrow, s, f["filename"]))
                for f in state["_data_files"]
            ]
        )
        features = _undecoded(datasets.Features.from_dict(info["features"]))
        fingerprint = hashlib.blake2b(
            f"{state['_fingerprint']}-numpy".encode(), digest_size=8
        ).hexdigest()
        out[s] = datasets.Dataset(
            table, info=datasets.DatasetInfo(features=features), split=s, fingerprint=fingerprint
        )
        out[s].set_transform(decode_batch)
    return out[split] if split else datasets.DatasetDict(out)


def _check_split(split: str | None, available, path: str) -> None:
    if split is not None and split not in available:
        raise ValueError(f"no split {split!r} in {path} (splits: {', '.join(available)})")
