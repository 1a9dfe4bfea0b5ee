"""A rebuild takes the clips the dataset already holds and decodes only what is new; its dataset is a
clean build's (rows, splits, rejects and reasons, report counts, vocab.json, content hash)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl.audio.media import CHUNK_SECONDS
from etl.commands.build import build
from etl.commands.plan import plan
from etl.config import load_config
from etl.testing.synth import tone_segments, write_tone_recording

from ..conftest import _corpus, read_splits, write_config
from .test_build_options import _check_tones

pytestmark = pytest.mark.cluster

# report.json keys that may differ between a rebuild and a clean build of the same config
_TIMING_KEYS = {"timings", "hours_decoded", "hours_reused", "config"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """This module's own tone corpus (its files are replaced and added to)."""
    return _corpus(tmp_path_factory.mktemp("reuse") / "corpus")


def _build(corpus, out, client, **sections) -> dict:
    cfg = load_config(write_config(corpus, out, **sections))
    report = build(cfg, client=client)
    assert not report.get("up_to_date")
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def first(corpus, tmp_path_factory, dask_client):
    """The first build of the corpus: every rebuild below starts from a copy of it."""
    out = tmp_path_factory.mktemp("first") / "out"
    return {"out": out, "report": _build(corpus, out, dask_client)}


_clean: dict = {}


def _clean_build(corpus, tmp_path_factory, client, **sections) -> dict:
    """A clean build of the config (built once per config in this module)."""
    key = json.dumps(sections, sort_keys=True)
    if key not in _clean:
        out = tmp_path_factory.mktemp("clean") / "out"
        _clean[key] = {"out": out, "report": _build(corpus, out, client, **sections)}
    return _clean[key]


def _copy_of(first, tmp_path) -> object:
    out = tmp_path / "out"
    shutil.copytree(first["out"], out)
    return out


def _rows(out) -> list[dict]:
    df = read_splits(out)
    return df.sort_values("id").to_dict("records") if len(df) else []


def _rejects(out) -> list[dict]:
    df = pq.read_table(out / "rejects.parquet").to_pandas()
    return df.sort_values("id").astype(object).where(df.notna(), None).to_dict("records")


def assert_same_dataset(out, clean) -> None:
    """What a user compares: every row with its split and audio bytes, every reject with its reason
    and measures, the data/ files, vocab.json, and the report but for timings and what was decoded."""
    assert _rows(out) == _rows(clean)
    assert _rejects(out) == _rejects(clean)
    assert sorted(os.listdir(out / "data")) == sorted(os.listdir(clean / "data"))
    vocab = [p / "vocab.json" for p in (out, clean)]
    assert [v.read_bytes() if v.exists() else None for v in vocab][0] == (
        vocab[1].read_bytes() if vocab[1].exists() else None
    )
    a, b = (_comparable(json.loads((p / "report.json").read_text())) for p in (out, clean))
    assert a == b


def _comparable(report: dict) -> dict:
    """The report but for timings and what was decoded; ``selection`` without the previous dev (a
    rebuild has one, kept in dev as ``splits.keep_previous_dev`` says: its rows are the same)."""
    out = {k: v for k, v in report.items() if k not in _TIMING_KEYS}
    out["selection"] = {k: v for k, v in out["selection"].items() if k != "previous_dev"}
    # the same files, but dev's may come in another order: a rebuild places the previous dev rows
    # at once, a clean build through the reserve
    out["splits"] = {s: {**v, "digests": sorted(v["digests"])} for s, v in out["splits"].items()}
    # whether fingerprints were there to match: an 8-kHz build makes none, a rebuild at 8 kHz finds
    # the 16-kHz build's (the pairs, the same here, are compared)
    out["duplicate_audio"] = out["duplicate_audio"]["pairs"]
    return out


def _decoded_s(report: dict) -> float:
    return report["hours_decoded"] * 3600


def test_the_first_build_records_each_recordings_file(first, corpus):
    rec = pq.read_table(first["out"] / "recordings.parquet").to_pandas().set_index("recording")
    assert set(rec.index) == {
        "mp3_48k_stereo",
        "m4a_44k_stereo",
        "wav_16k_mono",
        "opus_48k",
        "broken",
    }
    assert rec["identity"].notna().all() and rec["files"].map(len).min() >= 1
    assert (
        rec.loc["wav_16k_mono", "length"] == 20 * 16000
    )  # its "late" row ran the decode to the end
    assert first["report"]["hours_reused"] == 0 and first["report"]["hours_decoded"] > 0


def test_a_text_normalization_change_decodes_nothing(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, text={"lowercase": False})
    assert report["hours_decoded"] == 0
    assert report["hours_reused"] == pytest.approx(first["report"]["hours_out"], abs=1e-9)
    clean = _clean_build(corpus, tmp_path_factory, dask_client, text={"lowercase": False})
    assert_same_dataset(out, clean["out"])
    assert report["content_hash"] != first["report"]["content_hash"]  # the text did change
    _check_tones(pd.DataFrame(_rows(out)), corpus)


def test_split_changes_decode_nothing(first, corpus, tmp_path, tmp_path_factory, dask_client):
    splits = {"seed": 3, "dev_size": 6}
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, splits=splits)
    assert report["hours_decoded"] == 0
    assert_same_dataset(
        out, _clean_build(corpus, tmp_path_factory, dask_client, splits=splits)["out"]
    )


def test_exclusions_test_ids_and_budgets_decode_nothing(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    """Rows excluded by id, a recording moved to test, and train capped below its hours: the clips
    are all in the dataset already, so nothing is decoded, and the dataset is the clean build's."""
    rows = _rows(first["out"])
    train = [r["id"] for r in rows if r["split"] == "train"]
    (tmp_path / "exclude.txt").write_text(f"{train[0]}\n{train[-1]}\n")
    (tmp_path / "test.txt").write_text("m4a_44k_stereo\n")
    hours = first["report"]["splits"]["train"]["hours"]
    sections = {
        "splits": {
            "exclude_ids": [str(tmp_path / "exclude.txt")],
            "test_ids": str(tmp_path / "test.txt"),
        },
        "budget": {"train_hours": round(hours * 0.8, 4)},
    }
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, **sections)
    assert report["hours_decoded"] == 0
    assert report["splits"]["test"]["rows"] > 0
    assert report["splits"]["train"]["hours"] <= hours * 0.8
    assert_same_dataset(out, _clean_build(corpus, tmp_path_factory, dask_client, **sections)["out"])


def test_threshold_changes_decode_only_the_rows_they_let_in(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    """max_duration up to 19.95 lets the 19.9-s row "long" in: only its span of the WAV is decoded;
    a tighter similarity threshold and quality filter judge the clips the dataset holds by their
    stored measures."""
    filters = {"max_duration": 19.95, "min_similarity": 0.9, "max_silence_fraction": 0.2}
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, filters=filters)
    assert 19.9 <= _decoded_s(report) <= 19.9 + CHUNK_SECONDS  # the WAV to 19.9 s, nothing else
    clean = _clean_build(corpus, tmp_path_factory, dask_client, filters=filters)
    assert_same_dataset(out, clean["out"])
    assert report["rows_out"] == clean["report"]["rows_out"]


def test_clips_the_quality_filters_rejected_are_decoded_when_let_in(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    """min_rms_db 0 rejects every clip as silent (judged on the stored measures: nothing decoded);
    back at the default, those clips have no bytes in the dataset and are decoded again."""
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, filters={"min_rms_db": 0.0})
    assert report["hours_decoded"] == 0 and report["rows_out"] == 0
    assert report["rejects"]["silent"] == first["report"]["rows_out"]
    strict = _clean_build(corpus, tmp_path_factory, dask_client, filters={"min_rms_db": 0.0})
    assert_same_dataset(out, strict["out"])
    again = _build(corpus, out, dask_client)
    # every clip decoded again; the WAV no further than its last clip: its length is known
    assert (
        again["hours_reused"] == 0
        and 0 < again["hours_decoded"] <= first["report"]["hours_decoded"]
    )
    assert_same_dataset(out, first["out"])


def test_a_new_sampling_rate_decodes_everything(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    out = _copy_of(first, tmp_path)
    report = _build(corpus, out, dask_client, audio={"sampling_rate": 8000})
    assert report["hours_reused"] == 0
    clean = _clean_build(corpus, tmp_path_factory, dask_client, audio={"sampling_rate": 8000})
    assert report["hours_decoded"] == pytest.approx(clean["report"]["hours_decoded"], abs=1e-6)
    assert_same_dataset(out, clean["out"])


def test_a_growing_corpus_and_a_replaced_file(tmp_path, dask_client):
    """New recordings cost only their own decoding; a file replaced under the same name (same config)
    is no longer "nothing to do": that recording is decoded again, the others are not."""
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    first = _build(corpus, out, dask_client)
    # 1. a recording and its rows added
    segs = tone_segments(3, length=(1.5, 2.5), gap=0.5, base_freq=2400.0, step=60.0)
    write_tone_recording(str(corpus["root"] / "audio" / "extra.mp3"), 10.0, segs, 44100, 2)
    rows = list(corpus["rows"])
    for k, s in enumerate(segs):
        corpus["freqs"][f"extra-{k}"] = s.freq
        rows.append(
            {
                "id": f"extra-{k}",
                "recording": "extra",
                "start": s.start,
                "end": s.end,
                "text": f"nova rečenica {k}",
                "asr": f"nova rečenica {k}",
            }
        )
    (corpus["root"] / "alignment2.json").write_text(json.dumps(rows, ensure_ascii=False))
    grown = {"input": {"alignment": str(corpus["root"] / "alignment2.json")}}
    told = plan(load_config(write_config(corpus, out, **grown)), client=dask_client)["reuse"]
    assert told["files_to_decode"] == 1 and told["files_unchanged"] == 5  # broken.mp3 counts
    assert told["hours_to_decode_at_most"] == pytest.approx(segs[-1].end / 3600)
    report = _build(corpus, out, dask_client, **grown)
    assert segs[-1].end <= _decoded_s(report) <= segs[-1].end + CHUNK_SECONDS  # extra.mp3 only
    assert report["hours_reused"] == pytest.approx(first["hours_out"], abs=1e-9)
    clean = tmp_path / "clean-grown"
    _build(corpus, clean, dask_client, **grown)
    assert_same_dataset(out, clean)
    # 2. the M4A file replaced by other tones, same name, same config
    m4a = corpus["root"] / "audio" / "m4a_44k_stereo.m4a"
    old = [r for r in rows if r["id"].startswith("m4a_44k_stereo-")]
    new_segs = [replace(s, freq=s.freq + 1000.0) for s in _segments_of(old, corpus)]
    write_tone_recording(str(m4a) + ".new.m4a", 24.0, new_segs, 44100, 2)
    os.replace(str(m4a) + ".new.m4a", m4a)
    for r, s in zip(old, new_segs):
        corpus["freqs"][r["id"]] = s.freq
    report = _build(corpus, out, dask_client, **grown)
    end = max(r["end"] for r in old)
    assert end <= _decoded_s(report) <= end + CHUNK_SECONDS  # the M4A only
    _check_tones(pd.DataFrame(_rows(out)), corpus)  # the m4a rows carry the new tones
    shutil.rmtree(clean)
    _build(corpus, clean, dask_client, **grown)
    assert_same_dataset(out, clean)


def _segments_of(rows: list[dict], corpus) -> list:
    from etl.testing.synth import Segment

    return [Segment(r["start"], r["end"], corpus["freqs"][r["id"]]) for r in rows]


def test_the_same_config_after_a_file_is_replaced_is_not_nothing_to_do(
    tmp_path, dask_client, capsys
):
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    cfg = write_config(corpus, out)
    first = _build(corpus, out, dask_client)
    assert build(load_config(cfg), client=dask_client).get("up_to_date")
    wav = corpus["root"] / "audio" / "opus_48k.opus"
    data = wav.read_bytes()
    wav.unlink()
    wav.write_bytes(data)  # the same bytes, another file: decoded again, never assumed
    report = _build(corpus, out, dask_client)
    assert report["content_hash"] == first["content_hash"]
    assert 0 < _decoded_s(report) < 17


def test_a_rebuild_killed_half_way_then_rerun_gives_the_clean_build(
    first, corpus, tmp_path, tmp_path_factory, dask_client, capsys
):
    from ..output.test_resume import _kill_build_midway

    sections = {"text": {"lowercase": False}, "filters": {"max_duration": 19.95}}
    for _ in range(3):
        out = _copy_of(first, tmp_path)
        cfg = write_config(corpus, out, cluster={"n_workers": 1}, **sections)
        if _kill_build_midway(cfg, out):
            break
        shutil.rmtree(out)
    else:
        pytest.skip("the rebuild always finished before it could be killed")
    assert _rows(out) == _rows(first["out"])  # the old dataset is still whole and readable
    build(load_config(cfg), client=dask_client)  # the rerun resumes it
    assert "done by an earlier run" in capsys.readouterr().err
    assert_same_dataset(out, _clean_build(corpus, tmp_path_factory, dask_client, **sections)["out"])
    assert not (out / ".parts").exists()


def test_a_shard_that_comes_out_the_same_keeps_its_file(
    first, corpus, tmp_path, tmp_path_factory, dask_client
):
    """max_duration 19.95 lets one row of the WAV in: the files of the shards it does not touch come
    out the same and are kept (renamed at most: the same inode), the others are written anew."""
    out = _copy_of(first, tmp_path)
    before = {p.stat().st_ino: p.read_bytes() for p in (out / "data").iterdir()}
    report = _build(corpus, out, dask_client, filters={"max_duration": 19.95})
    after = {p.stat().st_ino: p for p in (out / "data").iterdir()}
    kept = set(before) & set(after)
    assert kept and len(kept) < len(after)
    assert all(after[i].read_bytes() == before[i] for i in kept)
    clean = _clean_build(corpus, tmp_path_factory, dask_client, filters={"max_duration": 19.95})
    assert_same_dataset(out, clean["out"])
    assert report["content_hash"] == clean["report"]["content_hash"]
