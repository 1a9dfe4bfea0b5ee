"""Writers of the same segments in every alignment format, by hand, as the tools write them:
MFA TextGrids (long form, ``words``/``phones`` tiers; ``<speaker> - words`` for several speakers),
Kaldi/NFA CTM, NeMo manifests, lhotse supervisions (.jsonl.gz), SRT, and YouTube auto-caption WebVTT
(rolling cues, inline word times). A segment is (recording, start, end, text); its words share its
time with a short pause between them, so word-level formats segment back to the same spans."""

from __future__ import annotations

import gzip
import json


def word_times(
    start: float, end: float, text: str, pause: float = 0.05
) -> list[tuple[str, float, float]]:
    words = text.split()
    step = (end - start) / len(words)
    out = []
    for i, w in enumerate(words):
        s = round(start + i * step, 3)
        e = round(end if i == len(words) - 1 else start + (i + 1) * step - pause, 3)
        out.append((w, s, e))
    return out


def _by_recording(segments):
    out: dict[str, list] = {}
    for seg in segments:
        out.setdefault(seg[0], []).append(seg)
    return out


def textgrid(path, duration: float, tiers: dict[str, list[tuple[str, float, float]]]) -> None:
    """A long-form TextGrid: per tier name, its labelled intervals; gaps become empty intervals."""
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0 ",
        f"xmax = {duration} ",
        "tiers? <exists> ",
        f"size = {len(tiers)} ",
        "item []: ",
    ]
    for k, (name, items) in enumerate(tiers.items(), 1):
        filled, t = [], 0.0
        for w, s, e in items:
            if s > t:
                filled.append(("", t, s))
            filled.append((w, s, e))
            t = e
        if t < duration:
            filled.append(("", t, duration))
        lines += [
            f"    item [{k}]:",
            '        class = "IntervalTier" ',
            f'        name = "{name}" ',
            "        xmin = 0 ",
            f"        xmax = {duration} ",
            f"        intervals: size = {len(filled)} ",
        ]
        for i, (w, s, e) in enumerate(filled, 1):
            lines += [
                f"        intervals [{i}]:",
                f"            xmin = {s} ",
                f"            xmax = {e} ",
                f'            text = "{w}" ',
            ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def phones(words):
    """Two 'phones' per word, as MFA's phones tier holds them."""
    out = []
    for w, s, e in words:
        mid = round((s + e) / 2, 3)
        out += [(w[0].upper(), s, mid), (w[-1].upper(), mid, e)]
    return out


def textgrids(folder, segments, durations: dict, speakers: dict | None = None) -> None:
    """MFA output: one TextGrid per recording; with ``speakers`` ({recording: [speaker per segment]})
    the multi-speaker layout ``<speaker> - words`` / ``<speaker> - phones``."""
    folder.mkdir(parents=True, exist_ok=True)
    for rec, segs in _by_recording(segments).items():
        spk_of = (speakers or {}).get(rec)
        tiers: dict[str, list] = {}
        for i, (_, s, e, text) in enumerate(segs):
            prefix = f"{spk_of[i]} - " if spk_of else ""
            words = word_times(s, e, text)
            tiers.setdefault(prefix + "words", []).extend(words)
            tiers.setdefault(prefix + "phones", []).extend(phones(words))
        textgrid(folder / f"{rec}.TextGrid", durations[rec], tiers)


def ctm(path, segments) -> None:
    lines = [";; recording channel start duration word confidence"]
    for rec, s, e, text in segments:
        lines += [
            f"{rec} 1 {ws:.3f} {we - ws:.3f} {w} 1.00" for w, ws, we in word_times(s, e, text)
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def nemo(path, segments, audio_dir, ext_of: dict, hypotheses: dict | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for rec, s, e, text in segments:
            entry = {
                "audio_filepath": str(audio_dir / f"{rec}{ext_of[rec]}"),
                "offset": s,
                "duration": round(e - s, 3),
                "text": text,
            }
            if hypotheses is not None:
                entry["pred_text"] = hypotheses[(rec, s)]
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def lhotse(path, segments) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i, (rec, s, e, text) in enumerate(segments):
            sup = {
                "id": f"{rec}-{i}",
                "recording_id": rec,
                "start": s,
                "duration": round(e - s, 3),
                "channel": 0,
                "text": text,
                "language": "Croatian",
                "speaker": f"spk-{rec}",
                "alignment": {
                    "word": [
                        [w, ws, round(we - ws, 3), 1.0] for w, ws, we in word_times(s, e, text)
                    ]
                },
            }
            f.write(json.dumps(sup, ensure_ascii=False) + "\n")


def clock(t: float, sep: str = ".") -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def srt(path, segs) -> None:
    blocks = [
        f"{i}\n{clock(s, ',')} --> {clock(e, ',')}\n<i>{text}</i>\n"
        for i, (_, s, e, text) in enumerate(segs, 1)
    ]
    path.write_text("\n".join(blocks), encoding="utf-8")


def youtube_vtt(path, segs) -> None:
    """YouTube auto-captions: each cue repeats the previous line above the new one, whose words carry
    inline times; a 10 ms cue between holds the finished line alone."""
    out = ["WEBVTT", "Kind: captions", "Language: hr", ""]
    previous = " "
    for _, s, e, text in segs:
        words = word_times(s, e, text)
        timed = words[0][0] + "".join(f"<{clock(ws)}><c> {w}</c>" for w, ws, _ in words[1:])
        out += [f"{clock(s)} --> {clock(e)} align:start position:0%", previous, timed, ""]
        previous = text
        out += [f"{clock(e)} --> {clock(e + 0.01)} align:start position:0%", previous, " ", ""]
    path.write_text("\n".join(out), encoding="utf-8")
