"""Curation keys end to end through the CLI on a real 2-worker cluster: test ids, exclusions,
low_similarity as a split, recording-level splits, budgets, and dev stability when rows are added."""

from __future__ import annotations

import glob
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from etl.cli import main
from etl.testing.synth import dominant_frequency

from ..conftest import read_splits, write_config

pytestmark = pytest.mark.cluster


def _ids(out, split: str) -> set:
    return set(read_splits(out, split, columns=["id"])["id"])


def _rejects(out) -> pd.DataFrame:
    return pq.read_table(out / "rejects.parquet").to_pandas()


def _accounted(out, report: dict) -> None:
    kept = sum(len(_ids(out, s)) for s in report["splits"])
    assert (
        report["rows_in"]
        == kept + len(_rejects(out))
        == report["rows_out"] + report["rows_rejected"]
    )


def test_test_ids_exclusions_low_similarity_split_and_budget(corpus, tmp_path):
    (tmp_path / "test_ids.txt").write_text(
        "# the test set, given later\nopus_48k\n", encoding="utf-8"
    )
    (tmp_path / "reviewed.txt").write_text("mp3_48k_stereo-0\nmp3_48k_stereo-1\n", encoding="utf-8")
    out = tmp_path / "out"
    cfg = write_config(
        corpus,
        out,
        splits={
            "dev_size": 3,
            "test_ids": str(tmp_path / "test_ids.txt"),
            "exclude_ids": [str(tmp_path / "reviewed.txt")],
            "low_similarity": "split",
        },
        budget={"train_hours": 20 / 3600},
    )
    assert main(["build", cfg]) == 0
    report = json.loads((out / "report.json").read_text())
    _accounted(out, report)
    assert _ids(out, "test") == {f"opus_48k-{k}" for k in range(3)}
    assert _ids(out, "low_similarity") == {"lowsim"}
    rej = _rejects(out).set_index("id")
    assert set(rej.index[rej["reason"] == "excluded"]) == {"mp3_48k_stereo-0", "mp3_48k_stereo-1"}
    assert "low_similarity" not in set(rej["reason"])
    assert report["rejects"]["over_budget"] > 0 and report["splits"]["train"]["hours"] <= 20 / 3600
    assert len(_ids(out, "dev")) == 3
    sel = report["selection"]
    assert sel["test_ids"] == {"listed": 1, "rows_matched": 3, "rows_in_test": 3}
    # 3 rows: the table also repeats mp3_48k_stereo-0 (rejected as duplicate_id, first reason wins)
    assert sel["exclude_ids"] == {str(tmp_path / "reviewed.txt"): {"listed": 2, "rows_matched": 3}}
    # the clips in the new splits are the right audio
    t = pq.read_table(glob.glob(str(out / "data" / "test-*.parquet"))[0]).to_pandas()
    for _, row in t.iterrows():
        x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
        assert abs(dominant_frequency(x, sr) - corpus["freqs"][row["id"]]) < 5


def test_recording_level_splits_never_share_a_recording(corpus, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "test_ids.txt").write_text(
        "wav_16k_mono-1\n", encoding="utf-8"
    )  # pulls its recording along
    cfg = write_config(
        corpus,
        out,
        splits={"by": "recording", "dev_size": 3, "test_ids": str(tmp_path / "test_ids.txt")},
    )
    assert main(["build", cfg]) == 0
    report = json.loads((out / "report.json").read_text())
    _accounted(out, report)
    recs = {s: {i.rsplit("-", 1)[0] for i in _ids(out, s)} for s in report["splits"]}
    assert recs["test"] == {"wav_16k_mono"}
    assert (
        recs["dev"]
        and not recs["dev"] & recs["train"]
        and not (recs["dev"] | recs["train"]) & recs["test"]
    )


def test_adding_rows_keeps_every_old_dev_row_in_dev(corpus, tmp_path):
    rows = [r for r in corpus["rows"] if r["id"].startswith(("mp3", "m4a", "wav_", "opus"))]
    table = tmp_path / "alignment.json"
    table.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "out"
    cfg = write_config(corpus, out, input={"alignment": str(table)}, splits={"dev_size": 5})
    assert main(["build", cfg]) == 0
    old_dev = _ids(out, "dev")
    # 10% more rows: overlapping re-cuts of existing recordings under new ids
    extra = [
        dict(r, id=f"new-{i}", start=r["start"] + 0.1)
        for i, r in enumerate(rows[: len(rows) // 10 + 1])
    ]
    table.write_text(json.dumps(rows + extra, ensure_ascii=False), encoding="utf-8")
    assert main(["build", cfg]) == 0
    assert _ids(out, "dev") == old_dev
    report = json.loads((out / "report.json").read_text())
    assert report["rows_in"] == len(rows) + len(extra)
    _accounted(out, report)


def test_curated_splits_are_the_same_with_one_and_two_workers(corpus, tmp_path):
    (tmp_path / "test_ids.txt").write_text("m4a_44k_stereo\n", encoding="utf-8")
    splits = {
        "by": "recording",
        "dev_size": 2,
        "test_ids": str(tmp_path / "test_ids.txt"),
        "seed": 7,
    }
    found = []
    for n in (1, 2):
        out = tmp_path / f"out{n}"
        assert (
            main(
                [
                    "build",
                    write_config(
                        corpus,
                        out,
                        splits=splits,
                        budget={"total_gb": 0.0006},
                        cluster={"n_workers": n},
                    ),
                ]
            )
            == 0
        )
        report = json.loads((out / "report.json").read_text())
        found.append(({s: _ids(out, s) for s in report["splits"]}, report["rejects"]))
    assert found[0] == found[1]
    assert found[0][1]["over_budget"] > 0
