"""Storage through fsspec: the one place that knows the output layout and how files appear atomically."""

from __future__ import annotations

import contextlib
import os
import re
import uuid

import fsspec

DATA_DIR = "data"
PARTS_DIR = ".parts"  # per-task shard files before their final {split}-i-of-n names
ARROW_DIR = "arrow"  # output.arrow: the splits in the datasets.save_to_disk layout (etl/output/arrow_export.py)
OUR_FILES = ("README.md", "report.json", "report.html", "rejects.parquet", "vocab.json")


def fs_and_path(url: str):
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path.rstrip("/")


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts if p)


def _protocol(fs) -> str:
    return fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]


def is_local(fs) -> bool:
    return _protocol(fs) in ("file", "local")


def part_name(split: str, shard: int) -> str:
    return f"{split}-shard{shard:05d}.parquet"


def final_name(split: str, i: int, n: int) -> str:
    return f"{split}-{i:05d}-of-{n:05d}.parquet"


_FINAL = re.compile(r"^(?P<split>.+)-\d{5}-of-\d{5}\.parquet$")


def split_of(name: str) -> str | None:
    """The split of a ``final_name`` file (a path works too); None for any other file."""
    m = _FINAL.match(name.rsplit("/", 1)[-1])
    return m["split"] if m else None


@contextlib.contextmanager
def atomic_open(fs, path: str):
    """Write to a temporary name beside ``path``, then rename: the file appears whole or not at all.
    On failure the temporary file is removed. On S3 the write itself is atomic: an upload (multipart,
    ``autocommit=False``) becomes visible only when ``commit()`` completes it, and ``discard()`` aborts
    it; a killed process leaves only an incomplete upload, never an object (a bucket lifecycle rule
    for incomplete multipart uploads reclaims the space). A rename there would copy the whole file."""
    if _protocol(fs) in ("s3", "s3a"):
        f = fs.open(path, "wb", autocommit=False)
        try:
            yield f
            f.close()
            f.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                f.close()
                f.discard()
            raise
        return
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open(tmp, "wb") as f:
            yield f
        if is_local(fs):
            os.replace(tmp, path)
        else:
            fs.mv(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.rm(tmp)
        raise


def write_bytes(fs, path: str, data: bytes) -> None:
    with atomic_open(fs, path) as f:
        f.write(data)


def clear_previous_output(fs, root: str, keep_parts: bool = False) -> None:
    """Remove what an earlier build left (only our own files), so shards never mix across runs.
    ``keep_parts``: keep this build's finished parts (used when the new dataset replaces the old)."""
    for sub in (DATA_DIR, ARROW_DIR) if keep_parts else (DATA_DIR, ARROW_DIR, PARTS_DIR):
        p = join(root, sub)
        if fs.exists(p):
            fs.rm(p, recursive=True)
    for name in OUR_FILES:
        p = join(root, name)
        if fs.exists(p):
            fs.rm(p)


def clear_parts(fs, root: str) -> None:
    """Remove parts a failed earlier build left; the previous dataset itself stays until replaced."""
    p = join(root, PARTS_DIR)
    if fs.exists(p):
        fs.rm(p, recursive=True)
