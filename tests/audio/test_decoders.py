"""The decoders: PyAV in-process against the ffmpeg command, hostile files under every decoder, and
one decoder identity per build (report, card, fingerprint, the same on every worker)."""

from __future__ import annotations

import glob
import io
import json
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from etl.audio import decoders
from etl.audio import media as audio
from etl.commands.build import build
from etl.config import load_config
from etl.errors import UserError
from etl.testing.synth import Segment, dominant_frequency, write_tone_recording

from ..conftest import ffmpeg_reference, read_splits, write_config

pytestmark = pytest.mark.cluster

SEGS = [Segment(0.31, 1.77, 440.0), Segment(2.03, 3.5, 660.0), Segment(4.11, 5.9, 880.0)]


@pytest.fixture(scope="module")
def formats(tmp_path_factory):
    """The containers the issue names, each from a stereo source unless mono by nature."""
    d = tmp_path_factory.mktemp("formats")
    paths = {}
    for name, rate, ch in [
        ("mp3_44k.mp3", 44100, 2),
        ("aac_44k.m4a", 44100, 2),
        ("opus.opus", 48000, 2),
        ("flac_44k.flac", 44100, 2),
        ("wav_48k.wav", 48000, 1),
    ]:
        write_tone_recording(str(d / name), 6.5, SEGS, rate, ch)
        paths[name] = str(d / name)
    webm = d / "opus.webm"  # the same Opus stream in Matroska/WebM (millisecond timestamps)
    subprocess.run(
        [
            audio.ffmpeg_binary(),
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            paths["opus.opus"],
            "-c",
            "copy",
            str(webm),
        ],
        check=True,
    )
    paths["opus.webm"] = str(webm)
    return paths


@pytest.mark.parametrize(
    "name", ["mp3_44k.mp3", "aac_44k.m4a", "opus.opus", "opus.webm", "flac_44k.flac", "wav_48k.wav"]
)
def test_av_clips_match_the_ffmpeg_command_cut_at_the_same_indices(formats, name):
    """Priming, edit lists and timestamps: every clip from PyAV is the clip of
    `ffmpeg -i REC -ac 1 -ar 16000` cut at the same sample indices (±1 sample, r >= 0.99)."""
    ref = ffmpeg_reference(formats[name])
    spans = [(audio.sample_index(s.start, 16000), audio.sample_index(s.end, 16000)) for s in SEGS]
    got = {
        i: x[:, 0] for i, x, _ in audio.cut(decoders.get_decoder("av").stream(formats[name]), spans)
    }
    for i, (a, b) in enumerate(spans):
        want = ref[a:b]
        assert abs(len(got[i]) - len(want)) <= 1
        n = min(len(got[i]), len(want))
        lag = max(
            range(-1, 2),
            key=lambda k: np.corrcoef(
                got[i][max(k, 0) : n + min(k, 0)], want[max(-k, 0) : n - max(k, 0)]
            )[0, 1],
        )
        assert lag == 0, (name, i, lag)
        assert np.corrcoef(got[i][:n], want[:n])[0, 1] >= 0.99
        assert abs(dominant_frequency(got[i], 16000) - SEGS[i].freq) < 3


def test_a_remote_recording_is_read_through_an_fsspec_file_object(formats):
    import fsspec

    with open(formats["aac_44k.m4a"], "rb") as f:
        fsspec.filesystem("memory").pipe("/dec/rec.m4a", f.read())
    x = np.concatenate(list(decoders.get_decoder("av").stream("memory://dec/rec.m4a")))[:, 0]
    np.testing.assert_array_equal(
        x, np.concatenate(list(decoders.get_decoder("av").stream(formats["aac_44k.m4a"])))[:, 0]
    )


@pytest.mark.parametrize("name", list(decoders.DECODERS))
def test_every_decoder_names_its_libraries(name):
    ident = decoders.decoder_identity(name)
    assert (
        ("PyAV" in ident and "FFmpeg" in ident)
        if name == "av"
        else ident.startswith(("ffmpeg version", "pydub"))
    )


# --------------------------------------------------------------------------------------------------
# Hostile files: playlists named .mp3


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """audio/ holds a real recording, an ffconcat playlist named .mp3 that lists it by relative path,
    and an HLS playlist named .mp3 that names a recording outside audio/ by absolute path."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "audio").mkdir()
    write_tone_recording(
        str(root / "audio" / "sibling.wav"), 4.0, [Segment(0.5, 3.5, 700.0)], 16000, 1
    )
    write_tone_recording(str(root / "secret.mp3"), 4.0, [Segment(0.5, 3.5, 999.0)], 44100, 2)
    (root / "audio" / "concat.mp3").write_text("ffconcat version 1.0\nfile 'sibling.wav'\n")
    (root / "audio" / "hls.mp3").write_text(
        f"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\n{root / 'secret.mp3'}\n#EXT-X-ENDLIST\n"
    )
    rows = [
        {
            "id": f"{rec}-{k}",
            "recording": rec,
            "start": 0.5 + k,
            "end": 1.5 + k,
            "text": "a",
            "asr": "a",
        }
        for rec in ("sibling", "concat", "hls")
        for k in range(2)
    ]
    (root / "alignment.json").write_text(json.dumps(rows))
    return {"root": root, "rows": rows, "freqs": {}}


@pytest.fixture
def client(dask_client):
    return dask_client


@pytest.mark.parametrize("decoder", list(decoders.DECODERS))
def test_playlists_named_mp3_never_bring_audio_into_the_dataset(hostile, client, tmp_path, decoder):
    out = tmp_path / "out"
    cfg = load_config(
        write_config(hostile, out, audio={"decoder": decoder}, splits={"dev_size": 0})
    )
    report = build(cfg, client=client)
    rows = read_splits(out)
    assert sorted(rows["id"]) == ["sibling-0", "sibling-1"]  # only the real recording's own rows
    for a in rows["audio"]:
        x, sr = sf.read(io.BytesIO(a["bytes"]), dtype="int16")
        assert abs(dominant_frequency(x, sr) - 700) < 3
    rejects = pq.read_table(out / "rejects.parquet").to_pandas().set_index("id")
    for rid in ("concat-0", "concat-1", "hls-0", "hls-1"):
        assert rejects.loc[rid, "reason"] == "unreadable_audio"
        detail = rejects.loc[rid, "detail"]
        assert detail.startswith("refused: ") and (
            "ffconcat playlist" in detail or "HLS playlist" in detail
        ), detail
    assert report["rows_in"] == 6 and report["rows_out"] == 2


# --------------------------------------------------------------------------------------------------
# One decoder identity per build


def test_the_decoder_identity_is_in_the_report_the_card_and_the_fingerprint(
    built, corpus, tmp_path
):
    ident = decoders.decoder_identity("av")
    assert built["report"]["audio"]["decoder"] == "av"
    assert built["report"]["audio"]["decoder_identity"] == ident
    assert ident in (built["out"] / "README.md").read_text()
    from etl.output import resume

    cfg = load_config(built["config"])
    fp = resume.fingerprint(cfg)
    decoders.decoder_identity.cache_clear()
    real = decoders._av_identity
    try:
        decoders._av_identity = lambda: "PyAV 0.0 (FFmpeg 0.0)"
        assert (
            resume.fingerprint(cfg) != fp
        )  # another PyAV/FFmpeg: not "already built", not resumed
    finally:
        decoders._av_identity = real
        decoders.decoder_identity.cache_clear()


def _pretend_another_pyav():
    from etl.audio import decoders as d

    d.decoder_identity.cache_clear()
    d._real_av_identity = getattr(d, "_real_av_identity", d._av_identity)
    d._av_identity = lambda: "PyAV 0.0 (FFmpeg 0.0)"


def _back_to_the_real_pyav():
    from etl.audio import decoders as d

    d._av_identity = d._real_av_identity
    d.decoder_identity.cache_clear()


def test_a_worker_with_another_decoder_stops_the_build_before_anything_is_written(
    hostile, client, tmp_path
):
    out = tmp_path / "out"
    cfg = load_config(write_config(hostile, out, splits={"dev_size": 0}))
    client.run(_pretend_another_pyav)
    try:
        with pytest.raises(UserError) as e:
            build(cfg, client=client)
    finally:
        client.run(_back_to_the_real_pyav)
    msg = str(e.value)
    assert (
        "\n" not in msg
        and "PyAV 0.0 (FFmpeg 0.0)" in msg
        and decoders.decoder_identity("av") in msg
    )
    assert list(client.scheduler_info()["workers"])[0] in msg
    assert not out.exists()


def test_flac_bytes_are_stored_without_zstd_and_the_other_columns_with_it(built):
    """zstd buys nothing on FLAC: the audio bytes are written uncompressed, text and ids stay zstd."""
    meta = pq.ParquetFile(
        sorted(glob.glob(str(built["out"] / "data" / "train-*.parquet")))[0]
    ).metadata
    codecs = {
        meta.row_group(0).column(j).path_in_schema: meta.row_group(0).column(j).compression
        for j in range(meta.num_columns)
    }
    assert codecs["audio.bytes"] == "UNCOMPRESSED"
    assert codecs["text"] == codecs["id"] == "ZSTD"


# ---------------------------------------------------------------- decoding only what the rows need

SPARSE = [
    Segment(1.1, 2.4, 330.0),
    Segment(9.3, 11.0, 550.0),
    Segment(11.2, 12.1, 770.0),
    Segment(24.05, 26.5, 990.0),
    Segment(38.0, 39.99, 1210.0),
]


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """40 s recordings whose segments leave long stretches nobody needs (MP3 and Vorbis skip them;
    AAC and Opus decode whole), the last segment up to the recording's end."""
    d = tmp_path_factory.mktemp("sparse")
    paths = {}
    for name, rate in [
        ("sparse.mp3", 44100),
        ("sparse48.mp3", 48000),
        ("sparse.ogg", 44100),
        ("sparse.m4a", 44100),
        ("sparse.opus", 48000),
    ]:
        src = d / (name + ".wav")
        write_tone_recording(str(src), 40.0, SPARSE, rate, 2)
        codec = ["-c:a", "libvorbis"] if name.endswith(".ogg") else []
        subprocess.run(
            [
                audio.ffmpeg_binary(),
                "-nostdin",
                "-loglevel",
                "error",
                "-i",
                str(src),
                *codec,
                str(d / name),
            ],
            check=True,
        )
        paths[name] = str(d / name)
    return paths


@pytest.mark.parametrize(
    "name", ["sparse.mp3", "sparse48.mp3", "sparse.ogg", "sparse.m4a", "sparse.opus"]
)
def test_clips_are_bit_identical_when_only_the_needed_audio_is_decoded(sparse, name):
    spans = [(audio.sample_index(s.start, 16000), audio.sample_index(s.end, 16000)) for s in SPARSE]
    full = {i: x for i, x, _ in audio.cut(decoders.get_decoder("av").stream(sparse[name]), spans)}
    stats = {}
    stream = decoders.get_decoder("av").stream(sparse[name], need=sorted(spans), stats=stats)
    some = {i: x for i, x, _ in audio.cut(stream, spans, tolerance=800)}
    for i, seg in enumerate(SPARSE):
        np.testing.assert_array_equal(some[i], full[i], err_msg=f"{name} segment {i}")
        assert abs(dominant_frequency(some[i][:, 0], 16000) - seg.freq) < 3
    skippable = name.endswith((".mp3", ".ogg"))
    # 2.4..9.3 s (minus the pre-roll and tail) and 12.1..24.05 s and 26.5..38 s are not decoded
    assert (stats["skipped_seconds"] > 25) == skippable and (stats["skipped_seconds"] == 0) == (
        not skippable
    )


def test_a_span_past_the_end_is_still_beyond_end_when_decoding_only_what_is_needed(sparse):
    spans = [
        (audio.sample_index(2.0, 16000), audio.sample_index(3.0, 16000)),
        (audio.sample_index(30.0, 16000), audio.sample_index(45.0, 16000)),
    ]
    got = list(
        audio.cut(
            decoders.get_decoder("av").stream(sparse["sparse.mp3"], need=spans, stats={}), spans
        )
    )
    assert [x is None for _, x, _ in sorted(got, key=lambda t: t[0])] == [False, True]
    assert abs(got[-1][2] / 16000 - 40.0) < 0.1  # the recording's length, for the reject's detail


def test_the_decode_regions_skip_only_long_stretches():
    need = [(16000 * 10, 16000 * 12), (16000 * 13, 16000 * 14), (16000 * 30, 16000 * 31)]
    regions = decoders.decode_regions(need, 16000)
    assert regions == [
        (10 - decoders.PREROLL_S, 14 + decoders.TAIL_S),
        (30 - decoders.PREROLL_S, 31 + decoders.TAIL_S),
    ]
    assert decoders.worth_skipping(regions)
    assert decoders.decode_regions([(16000, 32000)], 16000)[0][0] == 0.0  # near the start: from 0
    assert not decoders.worth_skipping(
        decoders.decode_regions([(0, 16000 * 30), (16000 * 31, 16000 * 40)], 16000)
    )


def test_cut_stops_the_decoder_after_the_last_span():
    pulled = []

    def chunks():
        for k in range(100):
            pulled.append(k)
            yield np.zeros((1600, 1), dtype=np.int16)

    out = list(audio.cut(chunks(), [(0, 1600), (3200, 4800)]))
    assert len(out) == 2 and len(pulled) == 3


def test_a_build_decodes_only_the_audio_its_rows_need(sparse, client, tmp_path):
    """The report's hours_decoded counts what was decoded; every clip is still its own tone, and the
    same build with the ffmpeg decoder (which decodes everything) gives the same clips."""
    import shutil

    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    shutil.copy(sparse["sparse.mp3"], audio_dir / "talk.mp3")
    rows = [
        {
            "id": f"talk-{i}",
            "recording": "talk",
            "start": s.start,
            "end": s.end,
            "text": "a b",
            "asr": "a b",
        }
        for i, s in enumerate(SPARSE)
    ]
    (tmp_path / "alignment.json").write_text(json.dumps(rows))
    corpus = {"root": tmp_path}
    clips = {}
    for decoder in ("av", "ffmpeg"):
        out = tmp_path / f"out-{decoder}"
        cfg = load_config(
            write_config(
                corpus,
                out,
                audio={"decoder": decoder},
                splits={"dev_size": 0},
                filters={"max_duration": 15.0},
            )
        )
        report = build(cfg, client=client)
        assert report["rows_out"] == len(SPARSE)
        got = read_splits(out)
        clips[decoder] = {
            r["id"]: sf.read(io.BytesIO(r["audio"]["bytes"]), dtype="int16")[0]
            for _, r in got.iterrows()
        }
        for i, seg in enumerate(SPARSE):
            assert abs(dominant_frequency(clips[decoder][f"talk-{i}"], 16000) - seg.freq) < 3
        hours = report["hours_decoded"] * 3600
        if decoder == "av":
            assert hours < 20, hours  # of 40 s: the stretches between segments were not decoded
        else:
            assert hours == pytest.approx(40.0, abs=0.1)
    for k, x in clips["av"].items():
        y = clips["ffmpeg"][k]
        assert (
            abs(len(x) - len(y)) <= 1
            and np.corrcoef(x[: min(len(x), len(y))], y[: min(len(x), len(y))])[0, 1] > 0.99
        )


def test_a_recording_whose_format_changes_mid_stream_is_refused_with_the_reason(tmp_path):
    """Two MP3s of different rates concatenated (one file): the PyAV decoder refuses it with a
    reason naming both formats (it would otherwise place the second part differently from the
    ffmpeg command); its rows become unreadable_audio with that detail."""
    ff = audio.ffmpeg_binary(None)
    parts = []
    for name, rate, hz in (("a", 44100, 440), ("b", 22050, 660)):
        p = tmp_path / f"{name}.mp3"
        subprocess.run(
            [
                ff,
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                f"sine=f={hz}:d=2:sample_rate={rate}",
                "-ac",
                "2",
                "-id3v2_version",
                "0",
                "-write_xing",
                "0",
                str(p),
            ],
            check=True,
        )
        parts.append(p.read_bytes())
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(b"".join(parts))
    with pytest.raises(
        audio.DecodeError,
        match=r"changes format mid-stream: \('fltp', 'stereo', 44100\) -> "
        r"\('fltp', 'stereo', 22050\)",
    ):
        for _ in decoders.stream_av(str(joined)):
            pass


@pytest.mark.parametrize("name", ["mp3_44k.mp3", "flac_44k.flac", "wav_48k.wav"])
def test_the_resampler_gets_blocks_small_enough_to_reuse_memory(formats, name):
    """Each block of decoded input handed to the resampler stays under glibc's mmap threshold
    (128 KiB; fixed in a Dask worker, whose nanny sets MALLOC_TRIM_THRESHOLD_): a larger block is a
    fresh mmap whose every page faults (2-s blocks of 44.1 kHz stereo: 193,000 faults per 20 min
    and ~25 % more CPU). Still a few hundred ms each, so the resampler is called a few times a second."""
    import av

    with av.open(formats[name]) as c:
        frame = next(c.decode(audio=0))
    block = decoders._Output(16000, 1, audio.CHUNK_SECONDS)._block(frame)
    assert (
        block * frame.format.bytes * len(frame.layout.channels) <= decoders.BLOCK_BYTES < 128 * 1024
    )
    assert block >= 0.3 * frame.sample_rate
