"""A corpus laid out as real ones are, built once on a real Dask cluster: three levels of folders,
yt-dlp file names (Opus in WebM), a recording column mixing ids, paths with and without extension and
stems, a stem in two folders, escape attempts towards a real file outside the audio folder, and a
speaker column split by speaker. Every row is accounted for; every clip holds its own tone."""

from __future__ import annotations

import io
import json

import datasets
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from etl.testing.synth import Segment, dominant_frequency, tone_segments, write_tone_recording

from ..conftest import config_file, read_splits

pytestmark = pytest.mark.cluster

YT = r"\[(?P<id>[A-Za-z0-9_-]{11})\]"
OUTSIDE_HZ = 1999.0  # the tone of the file outside the audio folder: it must never appear
# file -> (seconds, rate, channels, [(reference in the table, speaker)] one per segment)
FILES = {
    "2022/03/s1/Sabor sjednica 1 [dQw4w9WgXcQ].webm": (
        10.0,
        48000,
        2,
        [
            ("dQw4w9WgXcQ", "ana"),
            ("  dQw4w9WgXcQ ", "boris"),
            ("2022/03/s1/Sabor sjednica 1 [dQw4w9WgXcQ].webm", "ana"),
        ],
    ),
    "2022/04/s2/Sabor sjednica 2 [aBcDeFgHiJ0].webm": (
        10.0,
        48000,
        2,
        [
            ("2022/04/s2/Sabor sjednica 2 [aBcDeFgHiJ0]", "boris"),
            ("./2022/04/s2/Sabor sjednica 2 [aBcDeFgHiJ0].webm", "cvita"),
            ("aBcDeFgHiJ0", ""),
        ],
    ),
    "2023/01/x/abc.mp3": (
        10.0,
        44100,
        2,
        [("2023/01/x/abc", "cvita"), ("2023/01/x/abc.mp3", "dario"), ("abc", "ana")],
    ),
    "2023/01/y/intro.wav": (
        7.0,
        16000,
        1,
        [("2023/01/y/intro", "dario"), ("2023/01/y/intro.wav", "eva")],
    ),
    "2023/02/y/intro.wav": (
        7.0,
        16000,
        1,
        [("2023/02/y/intro.wav", "eva"), ("2023/02/y/../y/intro", "")],
    ),
}
REJECTED = {  # reference -> reason; each row asks for audio at 0.5-2.0 s
    "intro": "ambiguous_recording",  # two folders hold intro.wav and the table gives no path
    "../outside": "invalid_recording_id",
    "2022/../../outside.webm": "invalid_recording_id",
    "s3://bucket/outside.webm": "invalid_recording_id",
    "zzzzzzzzzzz": "missing_audio",  # an id that matches no file
    "2023/01/x/nope.mp3": "missing_audio",
}


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    rows, freq = [], {}
    base = 300.0
    for n, (rel, (seconds, rate, ch, refs)) in enumerate(FILES.items()):
        path = root / "audio" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        segs = tone_segments(len(refs), length=1.8, gap=0.6, base_freq=base, step=60.0)
        base += 60.0 * len(refs)
        write_tone_recording(str(path), seconds, segs, rate, ch)
        for k, ((ref, spk), s) in enumerate(zip(refs, segs)):
            sid = f"f{n}-{k}"
            freq[sid] = s.freq
            rows.append(
                {
                    "seg": sid,
                    "file": ref,
                    "who": spk,
                    "from": s.start,
                    "to": s.end,
                    "words": f"recenica {k}",
                }
            )
    (root / "audio" / "2023/01/x/notes.txt").write_text("not audio", encoding="utf-8")
    write_tone_recording(str(root / "outside.webm"), 3.0, [Segment(0.5, 2.5, OUTSIDE_HZ)], 48000, 2)
    absolute = str(root / "outside.webm")
    for k, ref in enumerate([*REJECTED, absolute]):
        rows.append(
            {"seg": f"bad-{k}", "file": ref, "who": "ana", "from": 0.5, "to": 2.0, "words": "a"}
        )
    pd.DataFrame(rows).to_csv(root / "table.csv", index=False)
    (root / "test_speakers.txt").write_text("eva\n", encoding="utf-8")
    reasons = {f"bad-{k}": r for k, r in enumerate([*REJECTED.values(), "invalid_recording_id"])}
    return {"root": root, "rows": rows, "freq": freq, "reasons": reasons}


@pytest.fixture(scope="module")
def real_build(real_corpus):
    from etl.cli import main

    root = real_corpus["root"]
    cfg = {
        "input": {
            "alignment": str(root / "table.csv"),
            "audio": str(root / "audio"),
            "recording_pattern": YT,
            "columns": {
                "id": "seg",
                "recording": "file",
                "speaker": "who",
                "start": "from",
                "end": "to",
                "text": "words",
            },
        },
        "output": {"path": str(root / "out")},
        "splits": {"by": "speaker", "dev_size": 3, "test_ids": str(root / "test_speakers.txt")},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    config_file(root, cfg, "cfg.yaml")
    assert main(["build", str(root / "cfg.yaml")]) == 0
    out = root / "out"
    return {
        "out": out,
        "report": json.loads((out / "report.json").read_text()),
        "config": str(root / "cfg.yaml"),
    }


def _split_rows(out) -> pd.DataFrame:
    return read_splits(out)


def test_every_row_of_a_nested_yt_dlp_corpus_resolves_or_is_rejected_with_its_reason(
    real_corpus, real_build
):
    out, report = real_build["out"], real_build["report"]
    kept = _split_rows(out)
    rejects = pq.read_table(out / "rejects.parquet").to_pandas()
    assert sorted(kept["id"]) == sorted(
        real_corpus["freq"]
    )  # every resolvable row, whatever its spelling
    assert dict(zip(rejects["id"], rejects["reason"])) == real_corpus["reasons"]
    assert report["rows_in"] == len(real_corpus["rows"]) == len(kept) + len(rejects)
    amb = rejects.loc[rejects["reason"] == "ambiguous_recording", "detail"].iloc[0]
    assert "2023/01/y/intro.wav" in amb and "2023/02/y/intro.wav" in amb
    for _, row in kept.iterrows():  # the right audio in every row, never the file outside
        x, sr = sf.read(io.BytesIO(row["audio"]["bytes"]))
        f = dominant_frequency(x, sr)
        assert abs(f - real_corpus["freq"][row["id"]]) < 5, row["id"]
        assert abs(f - OUTSIDE_HZ) > 100


def test_by_speaker_keeps_every_speaker_in_one_split(real_build):
    out, report = real_build["out"], real_build["report"]
    kept = _split_rows(out)
    speakers = kept.dropna(subset=["speaker"]).groupby("speaker")["split"].nunique()
    assert (speakers == 1).all(), speakers
    assert set(kept.loc[kept["split"] == "test", "speaker"].dropna()) == {
        "eva"
    }  # test_ids lists a speaker
    assert set(report["splits"]) >= {"train", "dev", "test"}
    for s, v in report["splits"].items():
        assert v["speakers"] == kept.loc[kept["split"] == s, "speaker"].nunique()
    assert (
        report["selection"]["by_speaker"]["rows_without_speaker"]
        == int(kept["speaker"].isna().sum())
        == 2
    )
    assert "speaker" in pq.read_schema(out / "rejects.parquet").names


def test_listing_summary_and_speaker_feature_are_in_report_and_card(real_build):
    out, report = real_build["out"], real_build["report"]
    listing = report["listing"]
    assert listing["audio_files"] == 5 and listing["unused_audio_files"]["count"] == 0
    assert listing["unmatched_recordings"] == {
        "count": 2,
        "examples": ["2023/01/x/nope.mp3", "zzzzzzzzzzz"],
    }
    assert listing["ambiguous_recordings"]["examples"] == {
        "intro": ["2023/01/y/intro.wav", "2023/02/y/intro.wav"]
    }
    assert (
        listing["unmatched_by_recording_pattern"]["count"] == 3
    )  # abc.mp3 and both intro.wav: no yt-dlp id
    dd = datasets.load_dataset(str(out))
    assert dd["train"].features["speaker"] == datasets.Value("string")
    assert sum(dd[s].num_rows for s in dd) == report["rows_out"]


def test_plan_prints_the_listing_summary_and_speakers(real_build, capsys):
    from etl.cli import main

    assert main(["plan", real_build["config"]]) == 0
    text = capsys.readouterr().out
    assert (
        "ambiguous recordings (give their path): 1 (e.g. intro -> 2023/01/y/intro.wav | 2023/02/y/intro.wav)"
        in text
    )
    assert "recordings matching no file: 2" in text and "speakers: " in text
