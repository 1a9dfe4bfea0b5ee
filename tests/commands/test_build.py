"""End-to-end: the tone corpus through `etl build` on a real LocalCluster, read back by real `datasets`."""

from __future__ import annotations

import glob
import io
import json
import os

import datasets
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from etl.testing.synth import dominant_frequency

from ..conftest import EXPECTED_REJECTS, ffmpeg_reference, read_splits, write_config

pytestmark = pytest.mark.cluster


def _split_tables(out) -> dict[str, pd.DataFrame]:
    rows = read_splits(out)
    return {
        split: rows[rows["split"] == split].drop(columns="split").reset_index(drop=True)
        for split in ("train", "dev")
        if (rows["split"] == split).any()
    }


def _decode(audio_bytes: bytes):
    x, sr = sf.read(io.BytesIO(audio_bytes), dtype="int16", always_2d=True)
    return x, sr


def test_every_input_row_is_in_one_split_or_rejected_with_its_reason(built, corpus):
    report, out = built["report"], built["out"]
    tables = _split_tables(out)
    rejects = pd.read_parquet(out / "rejects.parquet")
    kept_ids = [i for t in tables.values() for i in t["id"]]
    assert len(kept_ids) == len(set(kept_ids))
    assert report["rows_in"] == len(corpus["rows"])
    assert report["rows_in"] == len(kept_ids) + len(rejects)
    assert sum(report["rejects"].values()) == len(rejects)
    assert {s: v["rows"] for s, v in report["splits"].items()} == {
        s: len(t) for s, t in tables.items()
    }
    got = dict(zip(rejects["id"], rejects["reason"]))
    for rid, reason in EXPECTED_REJECTS.items():
        assert got.get(rid) == reason, (rid, rejects[rejects["id"] == rid].to_dict("records"))
    dup = rejects[rejects["reason"] == "duplicate_id"]
    assert list(dup["id"]) == [corpus["rows"][0]["id"]] and list(dup["detail"]) == [
        "first at row 0"
    ]
    assert corpus["rows"][0]["id"] in kept_ids  # the first of the duplicates is kept
    assert set(kept_ids) == set(
        corpus["freqs"]
    )  # every good segment, including the whitespace ones
    assert all(isinstance(d, str) and d for d in rejects["detail"])


def test_each_clip_holds_its_own_tone_at_16k_mono(built, corpus):
    for _split, t in _split_tables(built["out"]).items():
        for rid, a in zip(t["id"], t["audio"]):
            x, sr = _decode(a["bytes"])
            assert sr == 16000 and x.shape[1] == 1, rid
            assert abs(dominant_frequency(x[:, 0], sr) - corpus["freqs"][rid]) < 3.0, rid


def test_clips_equal_ffmpeg_cut_at_the_same_sample_indices(built, corpus):
    refs = {}
    for _split, t in _split_tables(built["out"]).items():
        for r in t.itertuples():
            path = glob.glob(str(corpus["root"] / "audio" / f"{r.recording}.*"))[0]
            ref = refs.setdefault(path, ffmpeg_reference(path))
            want = ref[round(r.start * 16000) : round(r.end * 16000)].astype(float)
            got = _decode(r.audio["bytes"])[0][:, 0].astype(float)
            assert abs(len(got) - len(want)) <= 1, r.id
            n = min(len(got), len(want))
            assert np.corrcoef(got[:n], want[:n])[0, 1] >= 0.99, r.id
            assert r.duration == pytest.approx(r.end - r.start)


def test_datasets_loads_splits_with_the_audio_feature(built):
    out, report = built["out"], built["report"]
    dd = datasets.load_dataset(str(out))
    assert set(dd) == set(report["splits"])
    for split, v in report["splits"].items():
        assert dd[split].num_rows == v["rows"]
    ds = datasets.Dataset.from_parquet(sorted(glob.glob(str(out / "data" / "train-*.parquet"))))
    assert ds.features["audio"] == datasets.Audio(sampling_rate=16000)
    row = ds.cast_column("audio", datasets.Audio(decode=False))[0]
    assert row["audio"]["path"].endswith(".flac") and row["text"] == row["text"].lower()
    assert set(ds.column_names) >= {
        "id",
        "recording",
        "start",
        "end",
        "duration",
        "audio",
        "text",
        "text_raw",
        "hypothesis",
        "similarity",
        "source_id",
    }


def test_dataset_card_and_shard_names_follow_hub_conventions(built):
    out = built["out"]
    names = sorted(os.listdir(out / "data"))
    n_train = len([n for n in names if n.startswith("train-")])
    assert f"train-00000-of-{n_train:05d}.parquet" in names
    assert not (out / ".parts").exists()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "sampling_rate: 16000" in card
    for f in glob.glob(str(out / "data" / "*.parquet")):
        meta = pq.ParquetFile(f).metadata
        assert meta.num_rows > 0  # never an empty file
        assert all(meta.row_group(i).total_byte_size < 100e6 for i in range(meta.num_row_groups))


def test_text_is_normalized_and_raw_text_kept(built):
    t = _split_tables(built["out"])["train"].iloc[0]
    assert t["text_raw"].startswith("Rečenica broj") and "," in t["text_raw"]
    assert t["text"].startswith("rečenica broj") and "," not in t["text"] and "!" not in t["text"]
    assert t["similarity"] == pytest.approx(1.0)


def test_same_rows_splits_and_audio_with_one_worker(built, corpus, tmp_path):
    from etl.cli import main

    out1 = tmp_path / "out1"
    assert main(["build", write_config(corpus, out1, cluster={"n_workers": 1})]) == 0
    a, b = _split_tables(built["out"]), _split_tables(out1)
    assert a.keys() == b.keys()
    for split in a:
        pd.testing.assert_frame_equal(a[split], b[split])
    assert sorted(os.listdir(out1 / "data")) == sorted(os.listdir(built["out"] / "data"))
    one = json.loads((out1 / "report.json").read_text())
    assert one["content_hash"] == built["report"]["content_hash"] and len(one["content_hash"]) == 32


def test_dev_holds_dev_size_rows_chosen_by_seed(built, corpus, tmp_path):
    from etl.cli import main

    dev = set(_split_tables(built["out"])["dev"]["id"])
    assert len(dev) == 4
    out = tmp_path / "seed"
    assert main(["build", write_config(corpus, out, splits={"seed": 123, "dev_size": 4})]) == 0
    assert set(_split_tables(out)["dev"]["id"]) != dev


def test_rebuild_replaces_the_previous_output(built, corpus, tmp_path):
    from etl.cli import main

    out = tmp_path / "again"
    cfg = write_config(corpus, out)
    assert main(["build", cfg]) == 0
    assert main(["build", cfg, "--set", "splits.dev_size=0"]) == 0
    assert not glob.glob(str(out / "data" / "dev-*"))
    assert json.loads((out / "report.json").read_text())["splits"]["train"]["rows"] == len(
        corpus["freqs"]
    )


def test_vocab_loads_in_the_real_ctc_tokenizer_and_round_trips_diacritics(built):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers import Wav2Vec2CTCTokenizer

    out, report = built["out"], built["report"]
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    train_chars = set("".join(_split_tables(out)["train"]["text"])) - {" "}
    assert set(vocab) == train_chars | {"|", "[UNK]", "[PAD]"}
    assert sorted(vocab.values()) == list(range(len(vocab)))
    tok = Wav2Vec2CTCTokenizer(
        str(out / "vocab.json"), unk_token="[UNK]", pad_token="[PAD]", word_delimiter_token="|"
    )
    sentence = "rečenica broj snimka"  # č from the Croatian transcripts; no doubled letters (CTC merges them)
    assert tok.decode(tok(sentence).input_ids) == sentence
    assert report["vocab"]["size"] == len(vocab)
    assert set(report["vocab"]["missing_characters"]) == {"dev"}
