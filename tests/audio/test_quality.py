"""Quality measures taken while cutting, their filters, suspect recordings and a review sample that is
always full: one build of a corpus with planted faults (real WAV files, real Dask workers)."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from etl.audio.measures import MEASURE_COLUMNS, judge, measure
from etl.cli import main
from etl.commands.plan import plan
from etl.config import FiltersConfig, load_config
from etl.schema import QUALITY_COLUMNS
from etl.testing.synth import dominant_frequency

from ..conftest import read_splits, write_config

pytestmark = pytest.mark.cluster

SR = 16000
SEG, PERIOD, N_SEG = (
    2.0,
    8.0,
    4,
)  # segments of 2 s every 8 s: a table shifted by 5 s lands in the gaps
CLEAN = [f"clean{k:02d}" for k in range(10)]
TEXT = "rečenica broj {k}"  # ~7 chars/s over 2 s


def _recording(rng, freqs, level=0.5, silent_seg=None, clip=False):
    x = rng.normal(0, 0.002, int(32 * SR))  # quiet noise between segments (-54 dBFS)
    for k, f in enumerate(freqs):
        a, b = int((0.5 + k * PERIOD) * SR), int((0.5 + k * PERIOD + SEG) * SR)
        t = np.arange(b - a) / SR
        x[a:b] = 0 if k == silent_seg else level * np.sin(2 * np.pi * f * t)
    return (
        (np.clip(x, -1, 1) * 32767).round().astype(np.int16)
        if not clip
        else np.clip(x * 32768, -32768, 32767).astype(np.int16)
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """12 recordings, 4 tone segments each; faults planted in some (id -> expected reason)."""
    return _plant(tmp_path_factory.mktemp("quality"))


def _plant(root, shifted="shifted", clean=tuple(CLEAN)) -> dict:
    """The planted corpus in ``root``; ``shifted`` and ``clean`` name the recordings."""
    (root / "audio").mkdir()
    rng = np.random.default_rng(7)
    rows, freqs, faults = [], {}, {}
    f0 = 300.0
    for rec in [*clean, "loud", shifted]:
        fs = [f0 + 40 * k for k in range(N_SEG)]
        f0 += 40 * N_SEG
        silent = 3 if rec == clean[0] else None  # one segment of digital silence
        pcm = _recording(
            rng, fs, level=1.6 if rec == "loud" else 0.5, silent_seg=silent, clip=rec == "loud"
        )
        sf.write(str(root / "audio" / f"{rec}.wav"), pcm, SR, subtype="PCM_16")
        for k in range(N_SEG):
            start = 0.5 + k * PERIOD + (5.0 if rec == shifted else 0.0)
            end = (
                start + SEG + (4.5 if (rec == clean[1] and k == 2) else 0.0)
            )  # 2 s of tone, 4.5 s of gap
            rid = f"{rec}-{k}"
            rows.append(
                {"id": rid, "recording": rec, "start": start, "end": end, "text": TEXT.format(k=k)}
            )
            freqs[rid] = fs[k]
    faults.update({f"{clean[0]}-3": "silent", f"{clean[1]}-2": "mostly_silence"})
    faults.update({f"loud-{k}": "clipped" for k in range(N_SEG)})
    faults.update({f"{shifted}-{k}": "silent" for k in range(N_SEG)})
    rows.append(
        {
            "id": "chatty",
            "recording": clean[2],
            "start": 0.5,
            "end": 2.5,
            "text": "dugačka rečenica " * 12,
        }
    )
    faults["chatty"] = "bad_char_rate"
    (root / "alignment.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    out = root / "out"
    cfg = write_config(
        {"root": root},
        out,
        input={"columns": {"hypothesis": None}},
        output={"shard_hours": 0.02},
        filters={
            "min_duration": 0.5,
            "max_duration": 15.0,
            "min_rms_db": -45,
            "max_clipped_fraction": 0.01,
            "max_silence_fraction": 0.6,
            "chars_per_second": [2, 30],
        },
        splits={"dev_size": 8},
    )
    return {"root": root, "rows": rows, "freqs": freqs, "faults": faults, "config": cfg, "out": out}


@pytest.fixture(scope="module")
def built(planted):
    assert main(["build", planted["config"]]) == 0
    out = planted["out"]
    kept = read_splits(out)
    return {
        "kept": kept,
        "rejects": pq.read_table(out / "rejects.parquet").to_pandas(),
        "report": json.loads((out / "report.json").read_text()),
    }


def test_measures_of_real_samples():
    sr, t = SR, np.arange(SR) / SR
    tone = (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    m = measure(tone, sr)
    assert (
        abs(m["rms_db"] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.1
        and abs(m["peak_db"] - 20 * np.log10(0.5)) < 0.1
    )
    assert m["clipped_fraction"] == 0 and m["silence_fraction"] == 0
    assert measure(np.zeros(sr, np.int16), sr) == {
        "rms_db": -120.0,
        "peak_db": -120.0,
        "clipped_fraction": 0.0,
        "silence_fraction": 1.0,
    }
    clipped = np.clip(tone.astype(np.int32) * 4, -32768, 32767).astype(np.int16)
    assert measure(clipped, sr)["clipped_fraction"] > 0.5
    half = tone.copy()
    half[: sr // 2] = 0
    assert abs(measure(half, sr)["silence_fraction"] - 0.5) < 0.02
    # decoder-independent: float samples and stereo int16 give the same measures
    f = measure(tone.astype(np.float32) / 32768, sr)
    assert all(abs(f[k] - m[k]) < 1e-3 for k in MEASURE_COLUMNS)
    s = measure(np.repeat(tone[:, None], 2, axis=1), sr)
    assert all(abs(s[k] - m[k]) < 1e-3 for k in MEASURE_COLUMNS)
    assert (
        judge(m, FiltersConfig(min_rms_db=-70.0)) is None
        and judge(measure(np.zeros(10, np.int16), sr), FiltersConfig(min_rms_db=-70))[0] == "silent"
    )
    assert list(MEASURE_COLUMNS) == list(QUALITY_COLUMNS[1:])


def test_plan_knows_the_char_rate_rejects_before_decoding(planted):
    p = plan(load_config(planted["config"]))
    assert p["rejects"]["bad_char_rate"] == 1
    assert {"silent", "clipped", "mostly_silence"} <= set(p["not_knowable_before_decoding"])


def test_planted_faults_get_their_reason_and_clean_rows_are_untouched(planted, built):
    rejects, kept = built["rejects"], built["kept"]
    assert dict(zip(rejects["id"], rejects["reason"])) == planted["faults"]
    clean = [r["id"] for r in planted["rows"] if r["id"] not in planted["faults"]]
    assert sorted(kept["id"]) == sorted(clean)
    for _, r in kept.iterrows():  # the right audio, and its measures in the row
        x, sr = sf.read(io.BytesIO(r["audio"]["bytes"]), dtype="int16")
        assert abs(dominant_frequency(x, sr) - planted["freqs"][r["id"]]) < 3.0
        assert (
            -10 < r["rms_db"] < -8 and r["clipped_fraction"] == 0 and r["silence_fraction"] < 0.05
        )
        assert 5 < r["chars_per_second"] < 10
    rej = rejects.set_index("id")
    assert rej.loc["clean00-3", "rms_db"] == -120.0 and rej.loc["loud-0", "clipped_fraction"] > 0.3
    assert rej.loc["chatty", "chars_per_second"] > 30 and np.isnan(rej.loc["chatty", "rms_db"])
    assert built["report"]["rejects"]["silent"] == 5 and built["report"]["rows_in"] == len(
        planted["rows"]
    )


def test_dev_keeps_its_size_when_rows_are_rejected_after_decoding(built):
    assert (built["kept"]["split"] == "dev").sum() == 8


def test_shifted_and_clipped_recordings_are_suspect_and_clean_ones_are_not(planted, built):
    report, out = built["report"], planted["out"]
    assert set(report["suspects"]) == {"loud", "shifted"}
    assert (
        "median rms" in report["suspects"]["shifted"]
        and "reject share" in report["suspects"]["loud"]
    )
    recs = report["recordings"]
    assert list(recs)[:2] != [] and set(list(recs)[:2]) == {"loud", "shifted"}  # most suspect first
    assert (
        recs["clean03"]["rows_in"] == 4
        and recs["clean03"]["rows_kept"] == 4
        and recs["clean03"]["suspect"] == ""
    )
    assert recs["loud"]["reject_share"] == {"clipped": 1.0}
    listed = [
        ln.split("#")[0].strip() for ln in (out / "suspect_recordings.txt").read_text().splitlines()
    ]
    assert sorted(x for x in listed if x) == ["loud", "shifted"]
    page = (out / "report.html").read_text()
    assert "Recordings, most suspect first" in page and page.index("shifted") < page.index(
        "clean03"
    )


def test_suspects_file_works_as_exclude_ids(planted, built):
    from etl.testing.reference import plan_rows, read_checked_table

    cfg = load_config(
        planted["config"], [f"splits.exclude_ids=[{planted['out'] / 'suspect_recordings.txt'}]"]
    )
    df, _ = read_checked_table(cfg)
    df = plan_rows(cfg, df).frame
    assert set(df.loc[df["reason"] == "excluded", "recording"]) == {"loud", "shifted"}


def test_a_suspect_recording_id_holding_a_hash_is_excluded_exactly(tmp_path):
    """A downloader's name "Episode #12" round-trips through suspect_recordings.txt: used as
    exclude_ids it rejects the suspects' rows (it and "loud") as excluded, and not those of "Episode"."""
    planted = _plant(tmp_path, shifted="Episode #12", clean=("Episode", *CLEAN[1:]))
    assert main(["build", planted["config"]]) == 0
    suspects = planted["out"] / "suspect_recordings.txt"
    assert '"Episode #12"  # ' in suspects.read_text()
    out = tmp_path / "again"
    cfg = write_config(
        {"root": tmp_path},
        out,
        input={"columns": {"hypothesis": None}},
        output={"shard_hours": 0.02},
        splits={"dev_size": 8, "exclude_ids": [str(suspects)]},
    )
    assert main(["build", cfg]) == 0
    rejects = pq.read_table(out / "rejects.parquet").to_pandas()
    excluded = rejects.loc[rejects["reason"] == "excluded", "id"]
    suspect_rows = {r["id"] for r in planted["rows"] if r["recording"] in ("Episode #12", "loud")}
    assert set(excluded) == suspect_rows and len(excluded) == 2 * N_SEG
    kept = read_splits(out)
    assert (
        kept["recording"] == "Episode"
    ).sum() == N_SEG - 1  # its silent row is rejected as silent


def test_sample_of_suspects_and_a_sample_that_is_always_full(planted, built, tmp_path, capsys):
    cfg = planted["config"]
    assert (
        main(
            [
                "sample",
                cfg,
                "--n",
                "3",
                "--out",
                str(tmp_path / "s"),
                "--where",
                "recording in @suspects",
            ]
        )
        == 0
    )
    ids = (tmp_path / "s" / "sampled_ids.txt").read_text().split()
    assert len(ids) == 3 and {i.split("-")[0] for i in ids} <= {"loud", "shifted"}
    capsys.readouterr()
    n = len(built["kept"])  # every row the build kept: the sample must find them all
    assert main(["sample", cfg, "--n", str(n), "--out", str(tmp_path / "all")]) == 0
    printed = capsys.readouterr().out
    ids = (tmp_path / "all" / "sampled_ids.txt").read_text().split()
    assert sorted(ids) == sorted(built["kept"]["id"]) and f"{n} clips cut" in printed
    assert "replaced 10 row(s)" in printed and "silent 5" in printed and "clipped 4" in printed
    assert len(list((tmp_path / "all" / "clips").iterdir())) == n
    # deterministic: the same command gives the same sample
    assert main(["sample", cfg, "--n", "5", "--seed", "2", "--out", str(tmp_path / "a")]) == 0
    assert main(["sample", cfg, "--n", "5", "--seed", "2", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "sampled_ids.txt").read_text() == (
        tmp_path / "b" / "sampled_ids.txt"
    ).read_text()


@pytest.mark.parametrize(
    "item",
    [
        "filters.chars_per_second=[30, 2]",
        "filters.chars_per_second=[1]",
        "filters.max_clipped_fraction=2",
        "filters.max_silence_fraction=-0.1",
    ],
)
def test_bad_quality_filters_are_one_line_errors(planted, item, capsys):
    assert main(["plan", planted["config"], "--set", item]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("etl: error: config key 'filters.") and "\n" not in err


def test_the_suspect_rule_flags_outliers_only():
    from etl.curate.suspects import find_suspects, recording_stats

    rows, measured = [], {}
    for k in range(8):  # eight alike recordings, one with a single bad row of ten: not suspect
        rec = f"r{k}"
        rows += [
            {
                "recording": rec,
                "reason": "too_short" if (k == 0 and j == 0) else None,
                "similarity": 0.95,
                "chars_per_second": 12.0 + 0.3 * k,
            }
            for j in range(10)
        ]
        measured[rec] = {
            "cut": 10,
            "median_rms_db": -20.0 - k * 0.5,
            "median_silence_fraction": 0.1,
            "median_peak_db": -3.0,
            "clipped_clips": 0,
        }
    rows += [
        {"recording": "music", "reason": None, "similarity": 0.95, "chars_per_second": 12.0}
    ] * 10
    measured["music"] = {
        "cut": 10,
        "median_rms_db": -21.0,
        "median_silence_fraction": 0.7,
        "median_peak_db": -3.0,
        "clipped_clips": 0,
    }
    rows += [
        {"recording": "tiny", "reason": "silent", "similarity": 0.2, "chars_per_second": 60.0}
    ] * 2
    stats = find_suspects(recording_stats(pd.DataFrame(rows), measured))
    assert list(stats.index[stats["suspect"] != ""]) == ["music"] and stats.index[0] == "music"
    assert "median silence fraction 0.70" in stats.loc["music", "suspect"]
    assert (
        stats.loc["tiny", "suspect"] == "" and stats.loc["r0", "fault_share"] == 0.1
    )  # too few rows to judge


def test_char_rate_filter_with_one_open_bound_rejects_only_beyond_the_other():
    from dataclasses import replace

    import pandas as pd

    from etl.config import Config
    from etl.ingest.rows import check_rows

    table = pd.DataFrame(
        {
            "id": ["fast", "slow"],
            "source_id": [None, None],
            "recording": ["r", "r"],
            "start": [0.0, 0.0],
            "end": [1.0, 1.0],
            "text_raw": ["abcdefgh", "ab"],
            "hypothesis": [None, None],
            "speaker": [None, None],
        }
    )
    for bounds, rejected in (([5, None], {"slow"}), ([None, 5], {"fast"})):
        filters = replace(Config().filters, chars_per_second=bounds)
        out = check_rows(table, Config().text, filters, "{recording}")
        assert set(out.loc[out["reason"] == "bad_char_rate", "id"]) == rejected
