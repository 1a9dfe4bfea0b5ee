"""OUT/fingerprints.parquet: the shards' parts merged, the earlier build's hashes of the recordings
this build did not decode kept, a file made with other settings ignored."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from etl.audio import fingerprint
from etl.output import fingerprints, storage


def _hashes(seed: int, n: int = 50) -> np.ndarray:
    h = np.zeros(n, dtype=fingerprint.HASH_DTYPE)
    h["hash"] = np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint32)
    h["t"] = np.arange(n)
    return h


def _by_recording(out) -> dict:
    t = pq.read_table(out / storage.FINGERPRINTS_FILE).to_pandas()
    return {r: sorted(g["hash"].tolist()) for r, g in t.groupby("recording")}


def _next_build(out) -> None:
    storage.clear_parts(*storage.fs_and_path(str(out)))


def test_a_later_build_keeps_the_hashes_of_recordings_it_did_not_decode(tmp_path):
    out = tmp_path / "out"
    fingerprints.write_part(str(out), 0, {"a": _hashes(1), "b": _hashes(2)})
    fingerprints.write_part(str(out), 1, {"c": _hashes(3), "silent": _hashes(0, 0)})
    assert fingerprints.merge_parts(str(out)) == 3
    first = _by_recording(out)
    assert first["a"] == sorted(_hashes(1)["hash"].tolist()) and set(first) == {"a", "b", "c"}
    _next_build(out)
    fingerprints.write_part(str(out), 0, {"b": _hashes(4)})  # b decoded again; a and c were not
    assert fingerprints.merge_parts(str(out)) == 3
    second = _by_recording(out)
    assert second["a"] == first["a"] and second["c"] == first["c"]
    assert second["b"] == sorted(_hashes(4)["hash"].tolist())
    assert pq.read_table(fingerprints.url(str(out))).shape == (150, 3)


def test_a_build_without_fingerprints_leaves_the_file_and_other_settings_are_ignored(tmp_path):
    out = tmp_path / "out"
    assert fingerprints.merge_parts(str(out)) == 0 and fingerprints.url(str(out)) is None
    fingerprints.write_part(str(out), 0, {"a": _hashes(1)})
    fingerprints.merge_parts(str(out))
    _next_build(out)
    assert fingerprints.merge_parts(str(out)) == 0  # e.g. a 22.05 kHz build: the file stays
    assert set(_by_recording(out)) == {"a"}
    table = pq.read_table(out / storage.FINGERPRINTS_FILE)
    pq.write_table(
        table.replace_schema_metadata({b"etl_fingerprint": b"other"}), out / "fingerprints.parquet"
    )
    assert fingerprints.url(str(out)) is None
    _next_build(out)
    fingerprints.write_part(str(out), 0, {"b": _hashes(2)})
    assert fingerprints.merge_parts(str(out)) == 1  # the other settings' hashes are dropped
    assert set(_by_recording(out)) == {"b"}


def test_a_recording_decoded_less_keeps_its_earlier_hashes_where_this_build_has_none(tmp_path):
    """A later build that decodes only the start of a recording (its other rows now rejected as a
    copy's) keeps the earlier hashes of the rest, so the copy is still found next time."""
    out = tmp_path / "out"
    whole = _hashes(1, 256)  # t 0..255: four 2-s bins (64 frames each)
    fingerprints.write_part(str(out), 0, {"a": whole})
    fingerprints.merge_parts(str(out))
    _next_build(out)
    start = _hashes(2, 40)  # t 0..39, in bin 0: other hashes there (this build's win up to t 39)
    fingerprints.write_part(str(out), 0, {"a": start})
    assert fingerprints.merge_parts(str(out)) == 1
    t = pq.read_table(out / storage.FINGERPRINTS_FILE).to_pandas()
    want = sorted(start["hash"].tolist() + whole["hash"][40:].tolist())  # the earlier after t 39
    assert sorted(t["hash"].tolist()) == want
