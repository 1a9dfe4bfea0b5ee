"""Audio fingerprints and the matching of recordings that share audio, on a generated test set of
formant-synthesized speech: re-uploads in other codecs, rates, layouts and gains (one after an
intro), an excerpt from the middle, the same sentences said by other voices (not copies), and two
recordings that share only a 5-s jingle (not copies). Decoded by etl's PyAV decoder, matched on a
real Dask cluster."""

from __future__ import annotations

import json

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.audio import decoders
from etl.audio import fingerprint as fp
from etl.commands.build import build
from etl.config import load_config
from etl.output import fingerprints
from etl.planning.audio_matches import (
    MATCH_COLUMNS,
    MatchRules,
    match_recordings,
    parquet_pieces,
)
from etl.testing import speech

from ..conftest import config_file


def _parts(hashes: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    """``hashes`` in ``n`` pieces of consecutive rows, as a table's partitions are."""
    edges = np.linspace(0, len(hashes), n + 1).astype(int)
    return [hashes.iloc[a:b] for a, b in zip(edges[:-1], edges[1:])]


def _fingerprint_file(path: str) -> np.ndarray:
    f = fp.Fingerprinter()
    for block in decoders.get_decoder("av").stream(path, 16000, 1):
        f.feed(block)
    return f.finish()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("dupes")
    names, planted = speech.duplicate_corpus(str(d))
    frames = [
        pd.DataFrame({"recording": n, "hash": h["hash"], "t": h["t"]})
        for n in names
        for h in [_fingerprint_file(str(d / n))]
    ]
    return pd.concat(frames, ignore_index=True), planted


def test_blocks_of_any_size_give_the_same_hashes():
    x = (speech.speak(speech.sentence(40, 5), speech.Voice()) * 32767).astype(np.int16)
    whole = fp.fingerprint_samples(x, block=len(x))
    assert len(whole) > 100
    for block in (777, 4096, 32000):
        got = fp.fingerprint_samples(x[:, None], block=block)
        assert np.array_equal(got, whole), block


def test_silence_and_skipped_audio_have_no_hashes():
    assert len(fp.fingerprint_samples(np.zeros(16000 * 30, dtype=np.int16))) == 0
    hiss = np.random.default_rng(0).normal(0, 3, 16000 * 30).astype(np.int16)  # about -80 dBFS
    assert len(fp.fingerprint_samples(hiss)) == 0


def test_another_rate_is_not_fingerprinted():
    f = fp.Fingerprinter(22050)
    f.feed(np.ones((22050, 1), dtype=np.int16))
    assert not f.usable and len(f.finish()) == 0


def test_every_planted_copy_is_found_with_its_offset_and_nothing_else(corpus, dask_client):
    hashes, planted = corpus
    found = match_recordings(dask_client, _parts(hashes, 4))
    assert list(found.columns) == MATCH_COLUMNS
    got = {(r.recording_a, r.recording_b): r for r in found.itertuples()}
    want = {tuple(sorted((p.original, p.copy))): p for p in planted}
    assert set(got) == set(want), found.to_string()
    for key, p in want.items():
        r = got[key]
        offset = r.offset if key == (p.original, p.copy) else -r.offset  # a -> b, either way
        assert abs(offset - p.offset) <= 0.05, (key, r.offset)
        assert r.shared_seconds >= 25 and r.hits >= 100, r


def test_a_shared_jingle_alone_is_no_match_but_a_longer_shared_part_is(corpus, dask_client):
    """The 5-s jingle of jingle3/jingle4 is below the 10-s rule; a 10-s rule of 4 s finds it."""
    hashes, _ = corpus
    two = _parts(hashes[hashes["recording"].str.startswith("jingle")], 2)
    assert match_recordings(dask_client, two).empty
    short = match_recordings(dask_client, two, MatchRules(min_seconds=4.0, min_hits=5))
    assert list(zip(short["recording_a"], short["recording_b"])) == [("jingle3.mp3", "jingle4.mp3")]
    assert abs(short["offset"].iloc[0]) <= 0.05 and short["start_a"].iloc[0] == 0.0


def test_hashes_in_too_many_recordings_are_dropped(corpus, dask_client):
    """The document-frequency cut: with every hash allowed in one recording only, nothing matches."""
    hashes, _ = corpus
    assert match_recordings(dask_client, _parts(hashes, 2), MatchRules(max_recordings=1)).empty


def test_a_corpus_matched_in_many_buckets_gives_what_one_task_gives(corpus, dask_client):
    """A large corpus is split by hash and by pair over many tasks: the same pairs, offsets and
    scores as the whole match in one task."""
    hashes, _ = corpus
    one = match_recordings(dask_client, _parts(hashes, 3))
    many = match_recordings(dask_client, _parts(hashes, 3), rows_per_bucket=len(hashes) // 7)
    assert len(one) >= 3
    pd.testing.assert_frame_equal(many, one)


def _alignment(folder, names: list[str], step: float = 5.0) -> list[dict]:
    """Rows of ``step`` seconds over the whole of every recording."""
    rows = []
    for name in names:
        with av.open(str(folder / name)) as c:
            seconds = c.duration / 1e6
        rec = name.rsplit(".", 1)[0]
        rows += [
            {"id": f"{rec}-{k}", "recording": rec, "start": t, "end": t + step, "text": "a b"}
            for k, t in enumerate(np.arange(0.0, seconds - step, step).round(3).tolist())
        ]
    return rows


def test_a_build_keeps_the_fingerprints_of_what_it_decoded(tmp_path, dask_client):
    """The shard tasks fingerprint the audio they decode (no second decode); finalize keeps
    OUT/fingerprints.parquet, which finds the planted copies; a later build keeps it whole."""
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    names, planted = speech.duplicate_corpus(str(audio_dir))
    (tmp_path / "rows.json").write_text(json.dumps(_alignment(audio_dir, names)))
    out = tmp_path / "out"
    doc = {
        "input": {"alignment": str(tmp_path / "rows.json"), "audio": str(audio_dir)},
        "output": {"path": str(out), "shard_hours": 0.05},  # 3 min: several shards
        "splits": {"dev_size": 2},
    }
    cfg = load_config(str(config_file(tmp_path, doc)))
    build(cfg, client=dask_client)
    assert not (out / ".parts").exists()
    kept = pq.read_table(out / "fingerprints.parquet").to_pandas()
    assert sorted(kept["recording"].unique()) == sorted(n.rsplit(".", 1)[0] for n in names)
    found = match_recordings(dask_client, parquet_pieces(fingerprints.url(str(out))))
    want = {tuple(sorted(p.rsplit(".", 1)[0] for p in (x.original, x.copy))) for x in planted}
    assert set(zip(found["recording_a"], found["recording_b"])) == want
    # the next build applies the policy: the copies' rows are rejected, so less of them is decoded;
    # the recordings decoded whole give the same hashes, the copies keep their earlier ones
    build(cfg, client=dask_client, force=True)
    again = pq.read_table(out / "fingerprints.parquet").to_pandas()
    copies = {x.copy.rsplit(".", 1)[0] for x in planted}
    key = ["recording", "t", "hash"]

    def whole(t):
        return t[~t["recording"].isin(copies)].sort_values(key).reset_index(drop=True)

    pd.testing.assert_frame_equal(whole(again), whole(kept))
    assert len(again) == len(kept)  # a few hashes where a copy's decoding stopped differ
    found_again = match_recordings(dask_client, parquet_pieces(fingerprints.url(str(out))))
    assert set(zip(found_again["recording_a"], found_again["recording_b"])) == want
    assert np.allclose(found_again["offset"], found["offset"], atol=0.05)
