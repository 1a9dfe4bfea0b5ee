"""What the per-clip quality measures cost against the rest of a worker's CPU (``python -m benchmarks.measures``).

One synthetic recording (44.1 kHz stereo MP3, one tone per segment, 2-15 s segments as in ``make bench``)
is decoded to 16 kHz mono by the build's own decoder and cut by ``audio.cut``; the clips are then
FLAC-encoded as a shard does, and measured by ``measures.measure``. CPU time (this process plus ffmpeg)
of each phase is compared: the measures' share of decode + cut + encode + measures. A real shard also
writes Parquet, so the true share is a little lower than printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

import numpy as np

from etl.audio import measures
from etl.audio import media as audio
from etl.testing.synth import Segment, write_tone_recording


def _cpu() -> float:
    """CPU seconds of this process and its finished children (ffmpeg)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _segments(seconds: float, rng: np.random.Generator) -> list[Segment]:
    out, t, k = [], 0.5, 0
    while True:
        d = float(rng.uniform(2.0, 15.0))
        if t + d > seconds - 0.5:
            return out
        out.append(Segment(round(t, 3), round(t + d, 3), 200.0 + 7 * (k % 200)))
        t += d + float(rng.uniform(0.1, 0.6))
        k += 1


def run(minutes: float = 20.0, repeats: int = 3, sampling_rate: int = 16000) -> dict:
    rng = np.random.default_rng(0)
    seconds = minutes * 60
    segs = _segments(seconds, rng)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rec.mp3")
        write_tone_recording(path, seconds, segs, 44100, 2)
        spans = [
            (audio.sample_index(s.start, sampling_rate), audio.sample_index(s.end, sampling_rate))
            for s in segs
        ]
        c0 = _cpu()
        clips = [x for _, x, _ in audio.cut(audio.stream_ffmpeg(path, sampling_rate, 1), spans)]
        decode = _cpu() - c0
    c0 = _cpu()
    for x in clips:
        audio.encode(x, sampling_rate, "flac")
    encode = _cpu() - c0
    measure = []
    for _ in range(repeats):  # the best of a few runs: the machine is shared
        c0 = time.process_time()
        for x in clips:
            measures.measure(x, sampling_rate)
        measure.append(time.process_time() - c0)
    m = min(measure)
    audio_s = sum(len(x) for x in clips) / sampling_rate
    return {
        "audio_hours": audio_s / 3600,
        "clips": len(clips),
        "decode_cut_cpu_s": round(decode, 3),
        "encode_flac_cpu_s": round(encode, 3),
        "measures_cpu_s": round(m, 4),
        "measures_share_of_worker_cpu": round(m / (decode + encode + m), 4),
        "measures_cpu_s_per_4h_of_clips": round(m * 4 * 3600 / audio_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes", type=float, default=20.0, help="length of the synthetic recording (default 20)"
    )
    args = p.parse_args(argv)
    print(json.dumps(run(args.minutes), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
