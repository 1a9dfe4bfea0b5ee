"""Duplicate audio: what fingerprinting and matching cost, and what they find
(``python -m benchmarks.fingerprint [--minutes 10]``).

1. Cost: one speech-like recording (formant synthesis, 44.1 kHz stereo MP3 64k) decoded to 16 kHz
   mono by PyAV, once with the output discarded and once fed to the fingerprinter; CPU seconds per
   hour of audio of each, and of matching its hashes against themselves plus a copy (sync scheduler).
2. Finding: ``speech.duplicate_corpus`` (planted re-uploads, an excerpt, other voices, a shared
   jingle), every pair found with its hits, offset error and shared seconds, and the false pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
import pandas as pd

from etl.audio import decoders
from etl.audio import fingerprint as fp
from etl.planning.audio_matches import MatchRules, match_local
from etl.testing import speech


def _decode(path: str, fingerprinter: fp.Fingerprinter | None) -> tuple[float, np.ndarray | None]:
    c0 = time.process_time()
    for block in decoders.get_decoder("av").stream(path, 16000, 1):
        if fingerprinter is not None:
            fingerprinter.feed(block)
    hashes = fingerprinter.finish() if fingerprinter is not None else None
    return time.process_time() - c0, hashes


def _frame(name: str, h: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"recording": name, "hash": h["hash"], "t": h["t"]})


def cost(folder: str, minutes: float) -> dict:
    x = speech.speak(speech.sentence(int(minutes * 60 / 0.42), 99), speech.Voice(130, 1.05, 7))
    path = os.path.join(folder, "long.mp3")
    speech.write(path, x, "libmp3lame", 44100, 2, 64000)
    hours = len(x) / speech.RATE / 3600
    decode, _ = _decode(path, None)
    both, h = _decode(path, fp.Fingerprinter())
    assert h is not None
    hashes = pd.concat([_frame("a", h), _frame("b", h)], ignore_index=True)
    c0 = time.process_time()
    match_local([hashes], MatchRules())
    match = time.process_time() - c0
    return {
        "hours": round(hours, 3),
        "decode_cpu_s_per_hour": round(decode / hours, 2),
        "fingerprint_cpu_s_per_hour": round((both - decode) / hours, 2),
        "match_cpu_s_per_hour_of_pairs": round(match / (2 * hours), 2),
        "hashes_per_second": round(len(h) / (hours * 3600), 1),
    }


def finding(folder: str, seed: int = 0) -> dict:
    names, planted = speech.duplicate_corpus(folder, seed=seed)
    hashes = pd.concat(
        [
            _frame(n, h)
            for n in names
            for _, h in [_decode(os.path.join(folder, n), fp.Fingerprinter())]
        ]
    )
    found = match_local([hashes], MatchRules())
    want = {tuple(sorted((p.original, p.copy))): p for p in planted}
    pairs = []
    for r in found.itertuples():
        p = want.get((r.recording_a, r.recording_b))
        sign = 1 if p is None or p.original == r.recording_a else -1
        pairs.append(
            {
                "pair": f"{r.recording_a} ~ {r.recording_b}",
                "planted": p is not None,
                "hits": int(r.hits),
                "shared_s": round(r.shared_seconds, 1),
                "offset_error_ms": None
                if p is None
                else round(1000 * abs(sign * r.offset - p.offset), 1),
            }
        )
    return {"seed": seed, "recordings": len(names), "planted": len(planted), "pairs": pairs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, default=1, help="test sets (other sentences and voices)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = [finding(tmp, seed) for seed in range(args.seeds)]
        print(json.dumps({"cost": cost(tmp, args.minutes), "finding": found}, indent=1))


if __name__ == "__main__":
    main()
