"""NIST SPHERE (LDC's .sph): real files decode with every streaming decoder, shorten-compressed PCM
as the plain PCM does, a coding FFmpeg lacks is one clear refusal, and one channel of a two-channel
file is that channel alone (no downmix), picked before resampling."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from etl.audio import decoders
from etl.audio import media as audio
from etl.ingest.recordings import list_audio
from etl.testing.synth import Segment, channel_tones, dominant_frequency, write_sphere

DATA = pathlib.Path(__file__).parent.parent / "data" / "sphere"
STREAMING = ["av", "ffmpeg"]


def _decode(name: str, url: str, rate: int = 16000) -> np.ndarray:
    return np.concatenate(list(decoders.get_decoder(name).stream(url, rate)))


@pytest.mark.parametrize("name", STREAMING)
def test_shorten_compressed_sphere_decodes_as_its_plain_pcm_does(name):
    """LDC's usual coding (pcm,embedded-shorten-v2.00, Switchboard, 8 kHz stereo) gives the samples
    of the same audio stored as PCM, bit for bit, for the downmix and for each channel."""
    for channel in (None, 1, 2):
        shn = _decode(name, audio.with_channel(str(DATA / "ex5_p_sh.sph"), channel))
        pcm = _decode(name, audio.with_channel(str(DATA / "ex5_p.sph"), channel))
        assert len(shn) == 2 * 16000  # 2 s at 16 kHz
        assert np.array_equal(shn, pcm) and np.abs(shn).max() > 1000


def test_the_two_sides_of_a_conversation_are_different_audio():
    one, two = (_decode("av", audio.with_channel(str(DATA / "ex5_p_sh.sph"), c)) for c in (1, 2))
    assert not np.array_equal(one, two)


@pytest.mark.parametrize("name", STREAMING)
def test_a_sphere_coding_ffmpeg_cannot_decode_is_one_clear_refusal(name):
    with pytest.raises(audio.DecodeError, match="ulaw,embedded-shorten-v2.00.*sph2pipe"):
        _decode(name, str(DATA / "ex5_sh.sph"))


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory):
    """8 kHz two-channel SPHERE (the NIST header over PCM) and WAV: 440 Hz on channel 1 and 1000 Hz
    on channel 2 at the same time."""
    d = tmp_path_factory.mktemp("sph")
    pcm = channel_tones(4.0, [[Segment(1.0, 3.0, 440.0)], [Segment(1.0, 3.0, 1000.0)]])
    write_sphere(str(d / "call.sph"), pcm, 8000)
    import soundfile as sf

    sf.write(str(d / "call.wav"), pcm, 8000, subtype="PCM_16")
    return d


@pytest.mark.parametrize("name", ["av", "ffmpeg", "pydub"])
@pytest.mark.parametrize("ext", [".sph", ".wav"])
def test_each_channel_is_its_own_tone_with_every_decoder(two_tones, name, ext):
    if name == "pydub" and ext == ".sph":
        pytest.skip("pydub probes a non-WAV file with ffprobe, which the ffmpeg wheel lacks")
    path = str(two_tones / f"call{ext}")
    for channel, freq, other in ((1, 440.0, 1000.0), (2, 1000.0, 440.0)):
        x = _decode(name, audio.with_channel(path, channel))[16000:48000, 0]
        assert abs(dominant_frequency(x, 16000) - freq) < 5
        assert _level(x, other) < 0.01 * _level(x, freq)  # nothing of the other channel
    both = _decode(name, path)[16000:48000, 0]
    assert _level(both, 1000.0) > 0.5 * _level(both, 440.0) > 0  # the downmix holds both


def _level(x: np.ndarray, freq: float, rate: int = 16000) -> float:
    """The spectrum's magnitude at ``freq`` (Hann window)."""
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x))))
    return float(spec[int(round(freq * len(x) / rate))])


@pytest.mark.parametrize("name", ["av", "ffmpeg", "pydub"])
def test_a_channel_the_file_lacks_is_a_decode_error_naming_it(two_tones, name):
    with pytest.raises(audio.DecodeError, match="channel 3|#2 not available"):
        _decode(name, audio.with_channel(str(two_tones / "call.wav"), 3))


def test_sphere_files_are_listed_as_audio(two_tones):
    listing = list_audio(str(two_tones))
    assert set(listing.files) == {"call.sph", "call.wav"}
    assert audio.AUDIO_FORMATS[".sph"] == "nistsphere" and "nistsphere" in audio.AUDIO_DEMUXERS


def test_a_channel_url_names_its_file_and_channel():
    assert audio.split_channel(audio.with_channel("/c/sw02001.sph", 2)) == ("/c/sw02001.sph", 2)
    assert audio.split_channel("/c/sw02001.sph") == ("/c/sw02001.sph", None)
    assert audio.with_channel("/c/a.wav", None) == "/c/a.wav"
