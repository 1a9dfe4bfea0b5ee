"""LDC corpora as a Kaldi recipe left them: a data dir whose wav.scp reads each side of a two-channel
SPHERE conversation through ``sph2pipe -c N``. etl never runs the pipe: it reads the file and the
channel it names, so each side's clips hold that side alone; a pipe of another form is one reject
naming it."""

from __future__ import annotations

import io
import json
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from etl.audio import decoders
from etl.audio import media as audio
from etl.cli import main
from etl.testing.synth import Segment, channel_tones, dominant_frequency, write_sphere

from ..conftest import config_file, read_splits

pytestmark = pytest.mark.cluster

DATA = pathlib.Path(__file__).parent.parent / "data"
SIDES = {"A": 1, "B": 2}


def _segments(folder) -> pd.DataFrame:
    df = pd.read_csv(folder / "segments", sep=" ", names=["id", "rec", "start", "end"])
    df["file"], df["side"] = df["rec"].str[:-2], df["rec"].str[-1]
    df["freq"] = 300.0 + 40.0 * np.arange(len(df))
    return df


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """The fixture recipe folder, with sw02001.sph written beside it: 8 kHz, two channels, each
    segment a tone of its own on its side's channel alone (A and B talk at once at 0.5-2.5 s), and
    sw03439.sph the real shorten-compressed SWB1 excerpt, sw04940.sph a real ulaw-shorten one."""
    root = tmp_path_factory.mktemp("recipe")
    shutil.copytree(DATA / "kaldi" / "data", root / "data")
    (root / "swb1").mkdir()
    seg = _segments(root / "data" / "train")
    conv = seg[seg["file"] == "sw02001"]
    sides = [
        [Segment(r.start, r.end, r.freq) for r in conv[conv["side"] == s].itertuples()]
        for s in SIDES
    ]
    write_sphere(str(root / "swb1" / "sw02001.sph"), channel_tones(11.0, sides), 8000)
    shutil.copy(DATA / "sphere" / "ex5_p_sh.sph", root / "swb1" / "sw03439.sph")
    shutil.copy(DATA / "sphere" / "ex5_sh.sph", root / "swb1" / "sw04940.sph")  # ulaw-shorten
    (root / "swb1" / "sw04000.sph").write_bytes((root / "swb1" / "sw02001.sph").read_bytes())
    return {"root": root, "segments": seg}


@pytest.fixture(scope="module", params=["wav.scp", "audio folder"])
def ldc_build(recipe, request):
    """The recipe built with ``input.audio: null`` (wav.scp's paths) and with the audio folder
    ``swb1/`` (the files wav.scp names, found there): the same rows either way."""
    out = recipe["root"] / f"out-{request.param.replace(' ', '-')}"
    audio = None if request.param == "wav.scp" else str(recipe["root"] / "swb1")
    cfg = {
        "input": {"alignment": str(recipe["root"] / "data" / "train"), "audio": audio},
        "output": {"path": str(out)},
        "filters": {"min_duration": 0.5, "max_duration": 15.0},
        "splits": {"dev_size": 0},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    assert main(["build", str(config_file(recipe["root"], cfg, f"{out.name}.yaml"))]) == 0
    return {"rows": read_splits(out), "rejects": pd.read_parquet(out / "rejects.parquet")}


def test_each_side_of_a_conversation_is_cut_from_its_own_channel(recipe, ldc_build):
    seg = recipe["segments"].set_index("id")
    rows = ldc_build["rows"]
    tones = rows[rows["recording"].str.startswith("sw02001")]
    assert sorted(tones["id"]) == sorted(seg.index[seg["file"] == "sw02001"])
    for rid, a in zip(tones["id"], tones["audio"]):
        x, sr = sf.read(io.BytesIO(a["bytes"]), dtype="int16", always_2d=True)
        assert sr == 16000 and x.shape[1] == 1
        assert abs(dominant_frequency(x[:, 0], sr) - seg.loc[rid, "freq"]) < 3, rid
        assert np.abs(x).max() > 15000, rid  # the tone at full level: its channel, no downmix


def test_a_real_shorten_compressed_conversation_gives_each_side_its_samples(recipe, ldc_build):
    rows = ldc_build["rows"].set_index("id")
    sph = str(recipe["root"] / "swb1" / "sw03439.sph")
    for side, channel in SIDES.items():
        (rid,) = [i for i in rows.index if i.startswith(f"sw03439-{side}")]
        whole = np.concatenate(
            list(decoders.get_decoder("av").stream(audio.with_channel(sph, channel)))
        )
        x, _ = sf.read(io.BytesIO(rows.loc[rid, "audio"]["bytes"]), dtype="int16", always_2d=True)
        assert np.array_equal(
            x, whole[audio.sample_index(0.1, 16000) : audio.sample_index(1.9, 16000)]
        )
        assert rows.loc[rid, "speaker"] == f"sw03439-{side}"


def test_a_pipe_of_another_form_is_one_reject_naming_it_and_every_row_is_accounted_for(
    recipe, ldc_build
):
    rejects = ldc_build["rejects"].set_index("id")
    pipe = rejects.loc["sw04000-A_000100-000300"]
    assert pipe["reason"] == "missing_audio"
    assert "-t 0:60" in pipe["detail"] and "never runs" in pipe["detail"]
    assert len(ldc_build["rows"]) + len(rejects) == len(recipe["segments"])


def test_a_sphere_coding_ffmpeg_cannot_decode_is_unreadable_audio_saying_so(ldc_build):
    rejects = ldc_build["rejects"].set_index("id")
    (ulaw,) = [i for i in rejects.index if i.startswith("sw04940")]
    assert rejects.loc[ulaw, "reason"] == "unreadable_audio"
    assert "'ulaw,embedded-shorten-v2.00'" in rejects.loc[ulaw, "detail"]
    assert "sph2pipe" in rejects.loc[ulaw, "detail"]


CTM_SEGMENTS = {  # channel label -> [(start, end, freq)]: A and B talk at once at 0.5-2.5 s
    "A": [(0.5, 2.5, 440.0), (3.0, 4.4, 560.0)],
    "B": [(0.5, 2.5, 1000.0), (5.0, 6.6, 760.0)],
}


def _ctm_lines(rec: str) -> list[str]:
    """Each segment as three words (0.1 s gaps: one segment each), in time order across channels."""
    words = []
    for label, segs in CTM_SEGMENTS.items():
        for start, end, _ in segs:
            step = (end - start) / 3
            for k in range(3):
                a = start + k * step
                words.append((a, f"{rec} {label} {a:.2f} {step - 0.1:.2f} w{k} 0.9"))
    return [line for _, line in sorted(words)]


def test_a_two_channel_ctm_cuts_each_channel_from_its_own_audio_with_ids_of_its_own(tmp_path):
    """Words on channel A and B at the same times: two clips, not one duplicate_id, each with its own
    channel's pitch (no downmix); a one-channel CTM keeps its ids as they were."""
    (tmp_path / "audio").mkdir()
    sides = [[Segment(a, b, f) for a, b, f in CTM_SEGMENTS[s]] for s in SIDES]
    sf.write(str(tmp_path / "audio" / "call.wav"), channel_tones(7.0, sides, 16000), 16000)
    (tmp_path / "align.ctm").write_text("\n".join(_ctm_lines("call")) + "\n")
    out = tmp_path / "out"
    cfg = {
        "input": {"alignment": str(tmp_path / "align.ctm"), "audio": str(tmp_path / "audio")},
        "output": {"path": str(out)},
        "filters": {"min_duration": 0.5, "max_duration": 15.0},
        "splits": {"dev_size": 0},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    assert main(["build", str(config_file(tmp_path, cfg))]) == 0
    rows = read_splits(out).sort_values(["recording", "start"])
    assert not (out / "rejects.parquet").exists() or pd.read_parquet(out / "rejects.parquet").empty
    want = sorted(
        (f"call_ch{SIDES[s]}_{a:.1f}-{b - 0.1:.1f}", f)
        for s, segs in CTM_SEGMENTS.items()
        for a, b, f in segs
    )
    assert sorted(rows["id"]) == [i for i, _ in want]
    assert set(rows["recording"]) == {"call#channel=1", "call#channel=2"}
    for rid, a in zip(rows["id"], rows["audio"]):
        x, sr = sf.read(io.BytesIO(a["bytes"]), dtype="int16", always_2d=True)
        assert abs(dominant_frequency(x[:, 0], sr) - dict(want)[rid]) < 3, rid
        assert np.abs(x).max() > 15000, rid  # the tone at full level: its own channel
    # a rebuild after a text change takes each channel's clips from the dataset: nothing decoded
    cfg["text"] = {"lowercase": False}
    assert main(["build", str(config_file(tmp_path, cfg, "rebuild.yaml"))]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["hours_decoded"] == 0 and report["hours_reused"] > 0
    again = read_splits(out).sort_values(["recording", "start"])
    assert [a["bytes"] for a in again["audio"]] == [a["bytes"] for a in rows["audio"]]
