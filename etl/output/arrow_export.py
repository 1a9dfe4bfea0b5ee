"""``output.arrow``: the splits again as Arrow IPC stream files in the ``save_to_disk`` layout, so
``datasets.load_from_disk(OUT/arrow)`` memory-maps them instead of copying Parquet into the HF cache.

    arrow/dataset_dict.json                  {"splits": [...]}
    arrow/{split}/data-{i:05d}-of-{n:05d}.arrow   one per data/{split}-{i:05d}-of-{n:05d}.parquet
    arrow/{split}/dataset_info.json, state.json

Each file is converted row group by row group (bounded memory) where it is called: on the cluster
workers in a build, so no audio passes through the client. The json files come last: a reader
never sees a split whose files are still being written.
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from . import storage


def convert_file(out: str, split: str, i: int, n: int) -> dict:
    """data/{split}-i-of-n.parquet -> arrow/{split}/data-i-of-n.arrow (atomic). Returns its stats."""
    fs, root = storage.fs_and_path(out)
    src = storage.join(root, storage.DATA_DIR, storage.final_name(split, i, n))
    dst = storage.join(root, storage.ARROW_DIR, split, storage.arrow_name(i, n))
    fs.makedirs(storage.join(root, storage.ARROW_DIR, split), exist_ok=True)
    with fs.open(src, "rb") as f:
        pf = pq.ParquetFile(f)
        with storage.atomic_open(fs, dst) as g, pa.ipc.new_stream(g, pf.schema_arrow) as w:
            for k in range(pf.num_row_groups):  # one row group (~8 MB of clips) in memory at a time
                w.write_table(pf.read_row_group(k))
        meta = pf.schema_arrow.metadata or {}
        return {
            "split": split,
            "i": i,
            "rows": pf.metadata.num_rows,
            "bytes": fs.size(dst),
            "features": json.loads(meta[b"huggingface"])["info"]["features"]
            if b"huggingface" in meta
            else None,
        }


def write_metadata(out: str, stats: list[dict]) -> None:
    """dataset_info.json + state.json per split, then dataset_dict.json (what load_from_disk reads)."""
    fs, root = storage.fs_and_path(out)
    base = storage.join(root, storage.ARROW_DIR)
    splits: dict[str, list[dict]] = {}
    for s in stats:
        splits.setdefault(s["split"], []).append(s)
    for split, files in splits.items():
        files.sort(key=lambda s: s["i"])
        n = len(files)
        info = {
            "citation": "",
            "description": "",
            "features": files[0]["features"],
            "homepage": "",
            "license": "",
            "splits": {
                split: {
                    "name": split,
                    "num_bytes": sum(s["bytes"] for s in files),
                    "num_examples": sum(s["rows"] for s in files),
                }
            },
        }
        # Deterministic per content: datasets keys its map() caches on the fingerprint.
        fingerprint = hashlib.blake2b(
            json.dumps([split, [(s["rows"], s["bytes"]) for s in files]]).encode(), digest_size=8
        ).hexdigest()
        state: dict[str, object] = {
            "_data_files": [{"filename": storage.arrow_name(s["i"], n)} for s in files],
            "_fingerprint": fingerprint,
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": split,
        }
        for name, obj in ((storage.ARROW_INFO_FILE, info), (storage.ARROW_STATE_FILE, state)):
            storage.write_bytes(
                fs, storage.join(base, split, name), json.dumps(obj, indent=2).encode()
            )
    storage.write_bytes(
        fs,
        storage.join(base, storage.ARROW_DICT_FILE),
        json.dumps({"splits": list(splits)}).encode(),
    )


def export(client, out: str, files: dict[str, int]) -> list[dict]:
    """Convert every split's Parquet files ({split: number of files}), on ``client``'s workers when
    given (else here), then write the metadata. Returns the per-file stats."""
    jobs = [(out, split, i, n) for split, n in files.items() for i in range(n)]
    if client is None:
        stats = [convert_file(*job) for job in jobs]
    else:
        stats = client.gather([client.submit(convert_file, *job, pure=False) for job in jobs])
    if stats:
        write_metadata(out, stats)
    return stats
