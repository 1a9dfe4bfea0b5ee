"""The dev ids of the dataset already in output.path (``splits.keep_previous_dev``): read from its dev
files when it was split with the same seed and ``by``, or from an unfinished build's manifest.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from ..config import Config
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
