"""Speech-like test audio: formant-synthesized syllables with random pitch contours, and files of it
written with PyAV in any codec, rate, layout and gain (the duplicate-audio tests and benchmark).

A "sentence" is a seeded sequence of syllables (a vowel's formant targets, a length, a pause, a
noise-excited consonant or none); a voice is a pitch, a pitch contour seed and a formant scale. The
same sentence in two voices has the same words and timing but other harmonics and formants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
import numpy as np

RATE = 16000
# (F1, F2, F3) Hz of a few vowels (Peterson & Barney, adult male)
VOWELS = [
    (730, 1090, 2440),
    (270, 2290, 3010),
    (300, 870, 2240),
    (530, 1840, 2480),
    (570, 840, 2410),
]


@dataclass(frozen=True)
class Voice:
    pitch: float = 120.0  # Hz, mean fundamental
    formant_scale: float = 1.0  # vocal tract: 1.0 a man's, ~1.2 a woman's
    seed: int = 0  # the pitch contour's


@dataclass(frozen=True)
class Syllable:
    vowel: int
    seconds: float
    pause: float
    consonant: bool


def sentence(n: int, seed: int) -> list[Syllable]:
    """``n`` syllables of 0.12-0.35 s with 0.02-0.25 s pauses (and a longer one every ~8)."""
    rng = np.random.default_rng(seed)
    return [
        Syllable(
            int(rng.integers(len(VOWELS))),
            float(rng.uniform(0.12, 0.35)),
            float(rng.uniform(0.02, 0.25) + (0.5 if rng.random() < 0.12 else 0.0)),
            bool(rng.random() < 0.6),
        )
        for _ in range(n)
    ]


def speak(syllables: list[Syllable], voice: Voice) -> np.ndarray:
    """The float32 16 kHz samples of ``syllables`` said by ``voice`` (peak about 0.5)."""
    rng = np.random.default_rng(voice.seed)
    out = []
    for s in syllables:
        if s.consonant:
            out.append(_fricative(0.06, voice, rng))
        out.append(_vowel(s, voice, rng))
        out.append(rng.normal(0, 1e-4, int(s.pause * RATE)).astype(np.float32))
    x = np.concatenate(out)
    return (0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def _vowel(s: Syllable, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    n = int(s.seconds * RATE)
    t = np.arange(n) / RATE
    # a pitch contour: a random rise or fall plus a slow wobble
    f0 = voice.pitch * (1 + rng.uniform(-0.15, 0.15) * t / s.seconds)
    f0 = f0 * (1 + 0.03 * np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6.3)))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    formants = np.array(VOWELS[s.vowel]) * voice.formant_scale
    x = np.zeros(n)
    for k in range(1, int(4000 / voice.pitch) + 1):
        fk = k * f0
        gain = sum(1.0 / (1 + ((fk - fm) / (60 + 0.06 * fm)) ** 2) for fm in formants)
        x += gain * np.sin(k * phase) / np.sqrt(k)
    env = np.minimum(1, np.minimum(t, t[::-1]) / 0.02)  # 20-ms attack and release
    return (x * env).astype(np.float32)


def _fricative(seconds: float, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """Noise shaped by a band around 2.5-3.5 kHz (scaled with the voice's formants)."""
    n = int(seconds * RATE)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    centre = rng.uniform(2500, 3500) * voice.formant_scale
    spec *= np.exp(-(((f - centre) / 600) ** 2))
    return (0.3 * np.fft.irfft(spec, n) / 50).astype(np.float32)


def write(
    path: str,
    samples: np.ndarray,
    codec: str = "libmp3lame",
    rate: int = 44100,
    channels: int = 2,
    bitrate: int = 64000,
    gain_db: float = 0.0,
) -> None:
    """Encode 16 kHz float ``samples`` into ``path`` with PyAV at ``rate`` Hz, ``channels`` (the second
    channel 0.8 of the first, so a downmix is real), ``bitrate`` and ``gain_db``."""
    x = np.clip(samples * 10 ** (gain_db / 20), -1, 1).astype(np.float32)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(path, "w") as out:
        stream: Any = out.add_stream(codec, rate=rate, layout=layout)  # an audio stream
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        planes = np.stack([x, 0.8 * x]) if channels == 2 else x[None, :]
        for i in range(0, len(x), RATE):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(planes[:, i : i + RATE]), format="fltp", layout=layout
            )
            frame.sample_rate, frame.pts = RATE, i
            for f in resampler.resample(frame):
                out.mux(stream.encode(f))
        for f in resampler.resample(None):
            out.mux(stream.encode(f))
        out.mux(stream.encode(None))


@dataclass(frozen=True)
class Planted:
    """A copy in a duplicate test set: audio at t in ``original`` is at t + ``offset`` in ``copy``."""

    original: str
    copy: str
    offset: float


def duplicate_corpus(
    folder: str, seconds: float = 60.0, seed: int = 0
) -> tuple[list[str], list[Planted]]:
    """A test set of speech recordings (file names under ``folder``) and the copies planted in it:
    three originals (MP3 64k, 44.1 kHz stereo); a re-upload of the first as AAC 96k at 48 kHz mono,
    -6 dB, after a 7-s intro of other speech; a re-upload of the second as Opus 32k at 48 kHz, +6 dB;
    an excerpt of the third from 20 s to 20 + seconds/2 as MP3 128k, mono; the first two sentences
    said again by other voices; and two other recordings that share only a 5-s jingle (not a copy).
    ``seed``: other sentences and voices."""
    n = int(seconds / 0.42)  # syllables: about 0.42 s each with the pauses
    s0, up = 100 * seed, 1 + 0.05 * seed
    man, woman, boy = (
        Voice(115 * up, 1.0, 1 + s0),
        Voice(210 * up, 1.17, 2 + s0),
        Voice(260, 1.25, 3),
    )
    orig = [speak(sentence(n, k + s0), man) for k in range(3)]
    intro = speak(sentence(18, 10 + s0), woman)[: 7 * RATE]
    jingle = speak(sentence(12, 11 + s0), boy)[: 5 * RATE]
    files: dict[str, tuple[np.ndarray, str, int, int, int, float]] = {
        "orig0.mp3": (orig[0], "libmp3lame", 44100, 2, 64000, 0.0),
        "orig1.mp3": (orig[1], "libmp3lame", 44100, 2, 64000, 0.0),
        "orig2.mp3": (orig[2], "libmp3lame", 44100, 2, 64000, 0.0),
        "reup0.m4a": (np.concatenate([intro, orig[0]]), "aac", 48000, 1, 96000, -6.0),
        "reup1.opus": (orig[1], "libopus", 48000, 2, 32000, 6.0),
        "excerpt2.mp3": (
            orig[2][20 * RATE : int((20 + seconds / 2) * RATE)],
            "libmp3lame",
            44100,
            1,
            128000,
            0.0,
        ),
        "voice0.mp3": (speak(sentence(n, s0), woman), "libmp3lame", 44100, 2, 64000, 0.0),
        "voice1.m4a": (speak(sentence(n, 1 + s0), boy), "aac", 44100, 2, 96000, 0.0),
        "jingle3.mp3": (
            np.concatenate([jingle, speak(sentence(n // 2, 3 + s0), man)]),
            "libmp3lame",
            44100,
            2,
            64000,
            0.0,
        ),
        "jingle4.mp3": (
            np.concatenate([jingle, speak(sentence(n // 2, 4 + s0), man)]),
            "libmp3lame",
            44100,
            2,
            64000,
            0.0,
        ),
    }
    for name, (x, codec, rate, channels, bitrate, gain) in files.items():
        write(f"{folder}/{name}", x, codec, rate, channels, bitrate, gain)
    planted = [
        Planted("orig0.mp3", "reup0.m4a", 7.0),
        Planted("orig1.mp3", "reup1.opus", 0.0),
        Planted("orig2.mp3", "excerpt2.mp3", -20.0),
    ]
    return list(files), planted
