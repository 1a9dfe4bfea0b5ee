"""`make demo`: generate a small corpus with the usual flaws, build a dataset from it, print where it is.

The corpus: an MP3 at 44.1 kHz stereo, an M4A at 48 kHz stereo, a 16 kHz WAV, a corrupt file, and a
table whose rows exercise every reject reason. Each segment holds its own tone (see ``synth``).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from .testing.synth import Segment, tone_segments, write_tone_recording

SENTENCES = [
    "Dobar dan, poštovani zastupnici!",
    "Čestitam vam na izboru.",
    "Đaci su došli u Sabor.",
    "Šuma je bila puna žaba.",
    "Ćevapi su jučer bili hladni.",
    "Zašto ne glasate?",
    "Molim vas, tišina u dvorani.",
    "Sljedeća točka dnevnog reda.",
    "Riječ ima gospođa ministrica.",
    "Hvala lijepa na pitanju.",
    "Good morning, everyone.",
    "The session is now open.",
    "Please take your seats.",
    "We will vote at noon.",
    "Thank you, Madam Speaker.",
    "Žalim, vrijeme je isteklo.",
    "Idemo dalje s raspravom.",
    "Ovo je važno pitanje.",
    "Let us move to the next item.",
    "Nastavljamo sutra u devet.",
]

RECORDINGS = [  # (file name, seconds, rate, channels, segments)
    ("sabor_2019-01-15.mp3", 60.0, 44100, 2, 12),
    ("yt_Xk3-9aQ.m4a", 40.0, 48000, 2, 8),
    ("intervju.wav", 32.0, 16000, 1, 6),
]


def _rows_for(rec_id: str, segs: list[Segment], k0: int) -> list[dict]:
    rows = []
    for k, s in enumerate(segs):
        text = SENTENCES[(k0 + k) % len(SENTENCES)]
        rows.append(
            {
                "id": f"{rec_id}-{k:03d}",
                "recording": rec_id,
                "start": s.start,
                "end": s.end,
                "text": text,
                "asr": text.lower().replace(",", ""),
            }
        )
    return rows


def make_demo_corpus(folder: str) -> str:
    """Write corpus/audio/*, corpus/alignment.json and demo.yaml under ``folder``; return the config path."""
    audio_dir = os.path.join(folder, "corpus", "audio")
    os.makedirs(audio_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    rows: list[dict] = []
    base = 300.0
    for name, seconds, rate, ch, n in RECORDINGS:
        segs = tone_segments(n, length=(2.0, 4.0), gap=0.6, base_freq=base, step=45.0, rng=rng)
        base += 45.0 * n
        write_tone_recording(os.path.join(audio_dir, name), seconds, segs, rate, ch)
        rows += _rows_for(os.path.splitext(name)[0], segs, len(rows))
    with open(os.path.join(audio_dir, "broken.mp3"), "wb") as f:  # a download that went wrong
        f.write(b"<html>403 Forbidden</html>" * 40)
    with open(os.path.join(audio_dir, "notes.txt"), "w") as f:
        f.write("not audio; ignored\n")

    # The flaws of real tables, one row each (plus whitespace around every id of one recording).
    for r in rows:
        if r["recording"] == "yt_Xk3-9aQ":
            r["recording"] = f"  {r['recording']} \t"
    rows[2]["asr"] = "nešto posve drugačije od onoga što je rečeno"  # low_similarity
    rows += [
        {
            "id": "escape-1",
            "recording": "../../etc/passwd",
            "start": 1.0,
            "end": 2.0,
            "text": "x",
            "asr": "x",
        },
        {
            "id": "missing-1",
            "recording": "nema_snimke",
            "start": 1.0,
            "end": 3.0,
            "text": "Nema snimke.",
            "asr": "nema snimke",
        },
        {
            "id": "badts-1",
            "recording": "intervju",
            "start": 5.0,
            "end": 4.0,
            "text": "Obrnuto.",
            "asr": "obrnuto",
        },
        {
            "id": "late-1",
            "recording": "sabor_2019-01-15",
            "start": 70.0,
            "end": 72.5,
            "text": "Prekasno je.",
            "asr": "prekasno je",
        },
        {
            "id": "empty-1",
            "recording": "intervju",
            "start": 1.0,
            "end": 2.0,
            "text": " ... ",
            "asr": "",
        },
        {
            "id": "long-1",
            "recording": "intervju",
            "start": 2.0,
            "end": 27.0,
            "text": "Predugačko.",
            "asr": "predugačko",
        },
        {
            "id": "broken-1",
            "recording": "broken",
            "start": 1.0,
            "end": 3.0,
            "text": "Pokvareno.",
            "asr": "pokvareno",
        },
        dict(rows[0]),  # duplicate_id: the first is kept
    ]
    with open(os.path.join(folder, "corpus", "alignment.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=1)
    cfg_path = os.path.join(folder, "demo.yaml")
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(
            "# the demo's config: see conf/default.yaml for every key\n"
            "input:\n  alignment: corpus/alignment.json\n  audio: corpus/audio/\n"
            "  columns: {hypothesis: asr}\n"
            "output: {path: out/}\n"
            "splits: {dev_size: 5}\n"
        )
    return cfg_path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder = os.path.abspath(argv[0] if argv else "demo")
    print(f"generating a demo corpus in {folder}/corpus ...", file=sys.stderr)
    cfg = make_demo_corpus(folder)
    from .cli import main as cli_main

    rc = cli_main(["build", cfg, *argv[1:]])
    if rc == 0:
        out = os.path.join(folder, "out")
        print(
            f"\nload it:  python -c \"import etl; d = etl.load('{out}'); print(d, d['train'][0]['audio'])\""
        )
        print(
            f"          (numpy decoding, no torchcodec; datasets.load_dataset('{out}') works too)"
        )
        print(f"rejects:  {out}/rejects.parquet   report: {out}/report.json ({out}/report.html)")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
