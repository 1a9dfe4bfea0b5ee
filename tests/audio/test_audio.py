"""Decoding, cutting and encoding, without Dask."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from etl.audio import decoders
from etl.audio import media as audio
from etl.testing.synth import Segment, dominant_frequency, write_tone_recording


def _chunks(total: int, size: int):
    for i in range(0, total, size):
        n = min(size, total - i)
        yield (np.arange(i, i + n) % 30000).astype(np.int16).reshape(-1, 1)


def test_cut_returns_exact_sample_ranges_for_overlapping_and_unordered_spans():
    spans = [(500, 900), (0, 100), (50, 700), (990, 1000), (100, 100 + 1)]
    got = {i: x[:, 0] for i, x, _ in audio.cut(_chunks(1000, 64), spans)}
    assert set(got) == set(range(len(spans)))
    for i, (a, b) in enumerate(spans):
        np.testing.assert_array_equal(got[i], np.arange(a, b) % 30000)


def test_span_past_the_end_is_reported_unless_within_tolerance():
    spans = [(900, 1010), (900, 1200), (1100, 1200)]
    got = {i: x for i, x, _ in audio.cut(_chunks(1000, 64), spans, tolerance=20)}
    assert len(got[0]) == 100  # cut at the decoded end
    assert got[1] is None and got[2] is None


def test_cutting_memory_stays_flat_whatever_the_stream_length():
    """An hour at 16 kHz streamed past a few short spans: only the pending span is held."""
    sr = 16000
    spans = [(s * sr, (s + 15) * sr) for s in range(0, 3600, 600)]
    peaks = []
    for seconds in (600, 3600):
        tracemalloc.start()
        n = sum(
            1
            for _, x, _ in audio.cut(
                _chunks(seconds * sr, 2 * sr), [sp for sp in spans if sp[1] <= seconds * sr]
            )
        )
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert n >= 1
    assert peaks[1] < peaks[0] * 1.5 + (1 << 20)  # 6x the audio, no more memory
    assert peaks[1] < 8 << 20


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    d = tmp_path_factory.mktemp("tones")
    segs = [Segment(0.5, 2.0, 440.0), Segment(2.5, 4.5, 880.0), Segment(5.0, 6.0, 1320.0)]
    paths = {}
    for name, rate, ch in [
        ("a.mp3", 48000, 2),
        ("b.m4a", 44100, 2),
        ("c.wav", 22050, 1),
        ("d.opus", 48000, 2),
        ("e.flac", 44100, 2),
    ]:
        write_tone_recording(str(d / name), 7.0, segs, rate, ch)
        paths[name] = str(d / name)
    return segs, paths


@pytest.mark.parametrize("decoder", ["av", "ffmpeg", "pydub"])
@pytest.mark.parametrize("name", ["a.mp3", "b.m4a", "c.wav", "d.opus", "e.flac"])
def test_every_container_decodes_to_16k_mono_with_the_right_tones(tones, decoder, name):
    segs, paths = tones
    spans = [(audio.sample_index(s.start, 16000), audio.sample_index(s.end, 16000)) for s in segs]
    chunks = decoders.get_decoder(decoder).stream(paths[name], 16000, 1)
    got = {i: x for i, x, total in audio.cut(chunks, spans)}
    for i, s in enumerate(segs):
        assert got[i].shape == (spans[i][1] - spans[i][0], 1)
        assert abs(dominant_frequency(got[i][:, 0], 16000) - s.freq) < 3


@pytest.mark.parametrize("decoder", ["av", "ffmpeg"])
def test_unreadable_file_raises_decode_error_with_the_decoders_reason(tmp_path, decoder):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(audio.DecodeError, match="Invalid data|could not|Error"):
        list(decoders.get_decoder(decoder).stream(str(bad)))


@pytest.mark.parametrize("decoder", ["av", "ffmpeg"])
def test_file_names_are_never_taken_for_options_or_protocols(tmp_path, decoder):
    weird = tmp_path / "-i concat:x|y;rm -rf ~.wav"
    write_tone_recording(str(weird), 2.0, [Segment(0.2, 1.8, 500.0)], 16000, 1)
    x = np.concatenate(list(decoders.get_decoder(decoder).stream(str(weird))))
    assert abs(dominant_frequency(x[:, 0], 16000) - 500) < 3


@pytest.mark.parametrize("fmt,subtype", [("flac", "PCM_16"), ("wav", "PCM_16")])
def test_encode_is_lossless_pcm16(fmt, subtype):
    x = (np.sin(np.arange(16000) / 7) * 20000).astype(np.int16).reshape(-1, 1)
    data = audio.encode(x, 16000, fmt)
    info = sf.info(io.BytesIO(data))
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        fmt.upper(),
        subtype,
        16000,
        1,
    )
    y, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    np.testing.assert_array_equal(x, y)


def test_ffmpeg_binary_is_the_configured_one_else_the_bundled_one_never_path(monkeypatch, tmp_path):
    assert audio.ffmpeg_binary("/opt/my/ffmpeg") == "/opt/my/ffmpeg"
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))  # a system ffmpeg on PATH is not picked up silently
    assert "imageio_ffmpeg" in audio.ffmpeg_binary(None)
