"""Seeded, order-free split assignment (pure).

Every row's place depends only on its id and the seed: a stable 64-bit hash of ``"{seed}:{id}"``.
``dev`` takes the ``dev_size`` kept rows with the smallest hash, so the result is the same whatever
the partitioning, the worker count or the table's row order.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd


def seeded_hash(keys: pd.Series, seed: int) -> np.ndarray:
    """A stable uint64 per key (blake2b, independent of Python's hash randomisation and of pandas)."""
    prefix = f"{seed}:".encode()
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(prefix + str(k).encode("utf-8"), digest_size=8).digest(), "big")
         for k in keys),
        dtype=np.uint64, count=len(keys))


def assign_splits(ids: pd.Series, seed: int, dev_size: int) -> pd.Series:
    """'dev' for the ``dev_size`` ids with the smallest seeded hash, 'train' for the rest."""
    h = pd.Series(seeded_hash(ids, seed), index=ids.index)
    split = pd.Series("train", index=ids.index, dtype=object)
    if dev_size > 0 and len(ids):
        # ties on a 64-bit hash are practically impossible; break them by id for full determinism
        order = pd.DataFrame({"h": h, "id": ids.astype(str)}).sort_values(["h", "id"], kind="stable")
        split.loc[order.index[:dev_size]] = "dev"
    return split
