"""Synthetic corpora for the demo, the tests and the benchmark: long recordings in which every segment
carries its own pure tone, so anyone can prove a clip holds the right audio (its dominant frequency).

Audio is generated block by block and piped into the bundled ffmpeg, so a 3-hour recording costs no
more memory than a 10-second one.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import numpy as np

from ..audio.media import ffmpeg_binary

_CODECS = {
    ".mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    ".m4a": ["-c:a", "aac", "-b:a", "96k"],
    ".wav": ["-c:a", "pcm_s16le"],
    ".flac": ["-c:a", "flac"],
    ".opus": ["-c:a", "libopus", "-b:a", "48k"],
    ".webm": ["-c:a", "libopus", "-b:a", "48k"],
    ".ogg": ["-c:a", "libvorbis"],
}


@dataclass
class Segment:
    start: float
    end: float
    freq: float


def write_tone_recording(
    path: str,
    duration: float,
    segments: list[Segment],
    sampling_rate: int = 44100,
    channels: int = 2,
    ffmpeg: str | None = None,
    block_seconds: float = 30.0,
) -> None:
    """A recording of ``duration`` s: each segment a sine at its own frequency, quiet noise between."""
    ext = os.path.splitext(path)[1].lower()
    cmd = [
        ffmpeg or ffmpeg_binary(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "s16le",
        "-ar",
        str(sampling_rate),
        "-ac",
        str(channels),
        "-i",
        "pipe:0",
        *_CODECS[ext],
        "file:" + os.path.abspath(path),
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    stdin, stderr = proc.stdin, proc.stderr
    assert stdin is not None and stderr is not None  # both PIPE
    rng = np.random.default_rng(len(segments) + int(duration))
    total = int(round(duration * sampling_rate))
    block = int(block_seconds * sampling_rate)
    segs = sorted(segments, key=lambda s: s.start)
    try:
        for b0 in range(0, total, block):
            n = min(block, total - b0)
            t = (b0 + np.arange(n)) / sampling_rate
            x = rng.normal(0, 0.002, n)
            for s in segs:
                if s.end * sampling_rate <= b0 or s.start * sampling_rate >= b0 + n:
                    continue
                on = (t >= s.start) & (t < s.end)
                x[on] = 0.5 * np.sin(2 * np.pi * s.freq * t[on])
            pcm = (np.clip(x, -1, 1) * 32767).astype("<i2")
            frames = np.repeat(pcm[:, None], channels, axis=1)
            if channels == 2:
                frames[:, 1] = (frames[:, 1] * 0.8).astype(
                    "<i2"
                )  # channels differ: downmixing is real
            stdin.write(frames.tobytes())
        stdin.close()
    except BrokenPipeError:
        pass
    err = stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg could not write {path}: {err.strip()}")


def tone_segments(
    n: int,
    first_start: float = 0.5,
    length=(2.0, 4.0),
    gap: float = 0.5,
    base_freq: float = 300.0,
    step: float = 40.0,
    rng: np.random.Generator | None = None,
) -> list[Segment]:
    """``n`` back-to-back segments with distinct frequencies base_freq + k*step."""
    rng = rng or np.random.default_rng(0)
    out, t = [], first_start
    for k in range(n):
        d = float(rng.uniform(*length)) if isinstance(length, tuple) else float(length)
        out.append(Segment(round(t, 3), round(t + d, 3), base_freq + k * step))
        t += d + gap
    return out


def write_sphere(path: str, pcm: np.ndarray, sampling_rate: int = 8000) -> None:
    """A NIST SPHERE file (LDC's ``.sph``) of int16 ``pcm`` (frames, channels): the 1024-byte
    ``NIST_1A`` header, then the samples interleaved, little-endian, as LDC's telephone speech is."""
    pcm = np.asarray(pcm, dtype="<i2").reshape(len(pcm), -1)
    fields = [
        "database_id -s7 etltest",
        f"sample_count -i {len(pcm)}",
        f"sample_rate -i {sampling_rate}",
        f"channel_count -i {pcm.shape[1]}",
        "sample_byte_format -s2 01",
        "sample_n_bytes -i 2",
        "sample_coding -s3 pcm",
        "end_head",
    ]
    header = ("NIST_1A\n   1024\n" + "\n".join(fields) + "\n").encode("ascii")
    with open(path, "wb") as f:
        f.write(header.ljust(1024, b" ") + pcm.tobytes())


def channel_tones(
    duration: float, channels: list[list[Segment]], sampling_rate: int = 8000
) -> np.ndarray:
    """int16 (frames, len(channels)): channel k a sine at each of ``channels[k]``'s segments, quiet
    noise elsewhere, so each channel's clips prove they came from that channel alone."""
    t = np.arange(int(round(duration * sampling_rate))) / sampling_rate
    rng = np.random.default_rng(len(channels))
    out = np.empty((len(t), len(channels)), dtype="<i2")
    for k, segs in enumerate(channels):
        x = rng.normal(0, 0.002, len(t))
        for s in segs:
            on = (t >= s.start) & (t < s.end)
            x[on] = 0.5 * np.sin(2 * np.pi * s.freq * t[on])
        out[:, k] = (np.clip(x, -1, 1) * 32767).astype("<i2")
    return out


def dominant_frequency(samples: np.ndarray, sampling_rate: int) -> float:
    """Frequency (Hz) of the strongest FFT bin of a mono signal (Hann window)."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    x = x - x.mean()
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sampling_rate)[int(np.argmax(spec))])
