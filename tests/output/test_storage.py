"""Atomic writes and the output layout."""

from __future__ import annotations

import fsspec
import pytest

from etl.output import storage


@pytest.mark.parametrize("proto", ["file", "memory"])
def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path, proto):
    fs = fsspec.filesystem(proto)
    root = str(tmp_path) if proto == "file" else "/atomic-test"
    fs.makedirs(root, exist_ok=True)
    target = storage.join(root, "shard.parquet")
    with pytest.raises(RuntimeError):
        with storage.atomic_open(fs, target) as f:
            f.write(b"half a shard")
            raise RuntimeError("worker died")
    assert fs.ls(root, detail=False) == []
    storage.write_bytes(fs, target, b"whole")
    assert fs.cat(target) == b"whole" and len(fs.ls(root, detail=False)) == 1
    if proto == "memory":
        fs.rm(root, recursive=True)


def test_clearing_a_previous_output_touches_only_our_files(tmp_path):
    fs = fsspec.filesystem("file")
    for name in (
        "data/train-00000-of-00001.parquet",
        ".parts/x.parquet",
        "report.json",
        "README.md",
        "rejects.parquet",
        "my_notes.txt",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    storage.clear_previous_output(fs, str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_notes.txt"]
