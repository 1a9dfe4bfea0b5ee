"""Load a built dataset for training: ``etl.load(OUT, split=None, decode="numpy", streaming=False)``.

- With ``arrow/`` in OUT (``output.arrow: true``): ``datasets.load_from_disk`` memory-maps the Arrow
  files where they are: instant whatever the size, nothing copied (remote URLs are downloaded first).
- Otherwise the Parquet files go through ``datasets``' parquet builder: converted once into the HF
  cache, memory-mapped from there.
- ``streaming=True``: an ``IterableDataset`` reading the Parquet files row group by row group from
  any fsspec URL, for datasets larger than the local disk.

``decode="numpy"``: each row's ``audio`` is ``{"array": float32, "sampling_rate": int}``, decoded with
soundfile when the row is read (1-D for mono, (channels, samples) otherwise) -- no torch, no
torchcodec. ``decode="datasets"``: the ``Audio`` feature as ``datasets`` decodes it (torchcodec).
"""
from __future__ import annotations

import io
import re

from . import storage

DECODERS = ("numpy", "datasets")
_PARQUET = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.parquet$")


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
    names = sorted(n.rsplit("/", 1)[-1] for n in (fs.ls(data, detail=False) if fs.isdir(data) else []))
    out: dict[str, list[str]] = {}
    for name in names:
        m = _PARQUET.match(name)
        if m:
            out.setdefault(m["split"], []).append(_url(fs, storage.join(data, name)))
    if not out:
        raise FileNotFoundError(f"no etl dataset at {path}: no {storage.DATA_DIR}/{{split}}-*-of-*.parquet files")
    first = [s for s in ("train", "dev", "test") if s in out]
    return {s: out[s] for s in first + sorted(set(out) - set(first))}


def _fs(path: str, storage_options: dict | None):
    import fsspec

    fs, p = fsspec.core.url_to_fs(path, **(storage_options or {}))
    return fs, p.rstrip("/")


def _url(fs, path: str) -> str:
    return path if storage.is_local(fs) else fs.unstrip_protocol(path)


def _features(url: str, storage_options: dict | None):
    """The ``datasets.Features`` stored in a shard's ``huggingface`` schema metadata."""
    import json

    import datasets
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb", **(storage_options or {})) as f:
        meta = pq.read_schema(f).metadata or {}
    return datasets.Features.from_dict(json.loads(meta[b"huggingface"])["info"]["features"])


def load(path: str, split: str | None = None, decode: str = "numpy", streaming: bool = False,
         storage_options: dict | None = None):
    """The dataset in ``path`` (a folder or fsspec URL) as a ``DatasetDict``, or one split's
    ``Dataset`` (``IterableDataset``/``IterableDatasetDict`` with ``streaming=True``)."""
    if decode not in DECODERS:
        raise ValueError(f"decode must be one of {', '.join(DECODERS)}, got {decode!r}")
    import datasets

    path = str(path)
    fs, root = _fs(path, storage_options)
    arrow = storage.join(root, storage.ARROW_DIR)
    if not streaming and fs.exists(storage.join(arrow, "dataset_dict.json")):
        ds = datasets.load_from_disk(_url(fs, arrow), storage_options=storage_options)
        _check_split(split, ds, path)
        ds = ds if split is None else ds[split]
    else:
        files = data_files(path, storage_options)
        _check_split(split, files, path)
        ds = datasets.load_dataset("parquet", data_files=files if split is None else {split: files[split]},
                                   features=_features(next(iter(files.values()))[0], storage_options),
                                   split=split, streaming=streaming, storage_options=storage_options)
    if decode == "numpy":
        feats = ds.features if hasattr(ds, "features") else next(iter(ds.values())).features
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=feats["audio"].sampling_rate, decode=False))
        ds = ds.map(decode_batch, batched=True) if streaming else ds.with_transform(decode_batch)
    return ds


def _check_split(split: str | None, available, path: str) -> None:
    if split is not None and split not in available:
        raise ValueError(f"no split {split!r} in {path} (splits: {', '.join(available)})")

