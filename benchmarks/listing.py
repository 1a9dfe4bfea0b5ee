"""Listing benchmark: one recursive listing of a nested audio tree and the join of a table against it.

A generated tree of empty files (the listing never opens them), three levels deep as archives are
(year/month/session), with yt-dlp names and a few stems repeated in other folders. The table names every
file once: a third by yt-dlp id (``input.recording_pattern``), a third by relative path, a third by stem.

    python -m benchmarks.listing [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import pandas as pd

from etl.ingest.recordings import list_audio, listing_summary, resolve

YT_PATTERN = r"\[(?P<id>[A-Za-z0-9_-]{11})\]"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _video_id(i: int) -> str:
    out = []
    for _ in range(11):
        i, r = divmod(i, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(out)


def make_tree(root: str, n_files: int) -> list[str]:
    """``n_files`` empty files under ``root``; returns their relative paths. Every 50th file repeats
    the name of the one before in another folder (an ambiguous stem and id)."""
    rels = []
    for i in range(n_files):
        year, month, session = 2000 + i % 25, 1 + (i // 25) % 12, (i // 300) % 40
        k = i - 1 if i % 50 == 1 else i
        title = f"Sjednica {k} [{_video_id(k)}]"
        rels.append(f"{year}/{month:02d}/s{session:02d}/{title}.webm")
    for d in sorted({r.rsplit("/", 1)[0] for r in rels}):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for r in rels:
        open(os.path.join(root, r), "wb").close()
    return rels


def measure_listing(n_files: int = 100_000) -> dict:
    """Build the tree in a temporary folder; time ``list_audio`` and ``resolve`` (+ summary)."""
    with tempfile.TemporaryDirectory(prefix="etl-listing-") as tmp:
        t0 = time.perf_counter()
        rels = make_tree(tmp, n_files)
        t_make = time.perf_counter() - t0
        refs = []
        for i, rel in enumerate(rels):
            stem = rel.rsplit("/", 1)[-1][: -len(".webm")]
            refs.append(_video_id(i) if i % 3 == 0 else rel if i % 3 == 1 else stem)
        refs = pd.Series(refs, dtype=object)
        t0 = time.perf_counter()
        listing = list_audio(tmp, YT_PATTERN)
        t_list = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = resolve(refs, listing)
        t_resolve = time.perf_counter() - t0
        t0 = time.perf_counter()
        summary = listing_summary(listing, refs, found)
        t_summary = time.perf_counter() - t0
    return {
        "files": n_files,
        "rows": len(refs),
        "make_tree_s": round(t_make, 3),
        "list_s": round(t_list, 3),
        "resolve_s": round(t_resolve, 3),
        "summary_s": round(t_summary, 3),
        "list_and_resolve_s": round(t_list + t_resolve + t_summary, 3),
        "resolved": int(found["url"].notna().sum()),
        "ambiguous": summary["ambiguous_recordings"]["count"],
        "unmatched": summary["unmatched_recordings"]["count"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.listing", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--files", type=int, default=100_000)
    print(json.dumps(measure_listing(ap.parse_args(argv).files), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
