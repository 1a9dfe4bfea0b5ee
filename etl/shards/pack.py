"""Packing recordings into shards: about ``output.shard_hours`` each, longest first, deterministic,
and a file the table spells two ways in one shard, so it is decoded once.
"""

from __future__ import annotations

import pandas as pd


def pack(recordings: pd.DataFrame, shard_seconds: float) -> list[list[str]]:
    """Recordings (columns ``recording``, ``seconds``) -> shards of about ``shard_seconds``, longest
    first. Deterministic: ties broken by recording id; a recording longer than a shard is a shard."""
    order = recordings.sort_values(["seconds", "recording"], ascending=[False, True])
    shards: list[list[str]] = []
    current: list[str] = []
    total = 0.0
    for rec, sec in zip(order["recording"], order["seconds"]):
        if current and total + sec > shard_seconds:
            shards.append(current)
            current, total = [], 0.0
        current.append(rec)
        total += sec
    if current:
        shards.append(current)
    return shards


def files_of(recordings: list) -> dict:
    """``ShardTask.recordings`` ([(recording, url)]) as {url: [recordings naming it]}, in order."""
    out: dict = {}
    for rec, url in recordings:
        out.setdefault(url, []).append(rec)
    return out


def pack_files(recordings: pd.DataFrame, shard_seconds: float) -> list[list[str]]:
    """``pack`` of the files (column ``url``): the recordings that name one file in different spellings
    (``2023/abc`` and ``abc``) go in one shard, next to each other, so the file is decoded once. A file is
    packed under its first spelling, with its longest need; a file named once packs as ``pack`` does."""
    by_file = recordings.groupby("url", sort=False, dropna=False).agg(
        recording=("recording", "min"), seconds=("seconds", "max")
    )
    spellings = (
        recordings.sort_values("recording")
        .groupby("url", sort=False, dropna=False)["recording"]
        .agg(list)
    )
    file_of = dict(zip(by_file["recording"], by_file.index))
    return [
        [r for first in shard for r in spellings[file_of[first]]]
        for shard in pack(by_file, shard_seconds)
    ]
