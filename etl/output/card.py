"""The dataset card (README.md with HF YAML front matter) and report.json."""

from __future__ import annotations

import json

import yaml

from ..records import Report
from ..schema import REJECT_REASONS, DatasetShape


def dataset_card(
    report: Report,
    sampling_rate: int,
    shape: DatasetShape,
) -> str:
    splits = report["splits"]
    front = {
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits],
            }
        ],
        "dataset_info": {
            "features": shape.card_features(sampling_rate),
            "splits": [
                {"name": s, "num_bytes": v["bytes"], "num_examples": v["rows"]}
                for s, v in splits.items()
            ],
            "download_size": sum(v["bytes"] for v in splits.values()),
            "dataset_size": sum(v["bytes"] for v in splits.values()),
        },
        "task_categories": ["automatic-speech-recognition"],
    }
    lines = ["---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    lines += [
        "# ASR dataset",
        "",
        f"{sampling_rate} Hz clips cut from long recordings by `etl build`. "
        'Load it with `datasets.load_dataset("<this folder>")` or '
        '`datasets.Dataset.from_parquet("<this folder>/data/train-*.parquet")`.',
        "",
        "| split | rows | hours |",
        "|---|---:|---:|",
    ]
    lines += [f"| {s} | {v['rows']} | {v['hours']:.3f} |" for s, v in splits.items()]
    if report.get("audio", {}).get("decoder_identity"):
        a = report["audio"]
        lines += ["", f"Decoded with `audio.decoder: {a['decoder']}`: {a['decoder_identity']}."]
    lines += [
        "",
        f"Input rows: {report['rows_in']}. Rejected rows are in `rejects.parquet`:",
        "",
        "| reason | rows | meaning |",
        "|---|---:|---|",
    ]
    lines += [f"| {r} | {report['rejects'][r]} | {REJECT_REASONS[r]} |" for r in REJECT_REASONS]
    lines += [
        "",
        "Quality measures of every clip (columns, also in `rejects.parquet`): `chars_per_second` (normalized "
        "text without spaces / duration), `rms_db` and `peak_db` (dBFS; digital silence is -120), "
        "`clipped_fraction` (share of samples at full scale), `silence_fraction` (share of 10 ms frames more "
        "than 40 dB below the clip's loudest 10 ms frame).",
    ]
    if report.get("suspects") is not None:
        lines += [
            "",
            f"Suspect recordings (outliers against the corpus, see `report.json` and "
            f"`suspect_recordings.txt`): {len(report['suspects'])}.",
        ]
    if "vocab" in report:
        lines += [
            "",
            f"`vocab.json` holds the {report['vocab']['size']} tokens of the train text for "
            "`transformers.Wav2Vec2CTCTokenizer` (`|` is the word delimiter).",
        ]
    return "\n".join(lines) + "\n"


def report_json(report: Report) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"
