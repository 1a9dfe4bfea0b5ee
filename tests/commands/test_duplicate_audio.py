"""The first build finds a re-upload while decoding and places its rows again (their clips copied,
not decoded); a build of a folder whose fingerprints an earlier build left applies the policy in
planning, with the same dataset: a re-upload (AAC, 48 kHz mono, -6 dB, after a 7-s intro) of an MP3 recording is found
before decoding, its rows on the original's audio are ``duplicate_audio`` rejects naming the
original's row and the offset, its intro row is kept, both copies land in one split, every input
row is accounted for; `etl plan` shows the pair, report.json and report.html too. Generated
speech-like audio (``etl.testing.speech``), real PyAV, a real Dask cluster."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from etl.commands.build import build
from etl.commands.plan import format_plan, plan
from etl.config import load_config
from etl.planning.client import known_pairs
from etl.testing import speech

from ..conftest import config_file, read_splits

pytestmark = pytest.mark.cluster

INTRO = 7.0  # seconds of other speech before the re-upload's copy


def _corpus(folder) -> list[dict]:
    """orig (36 s, MP3), other (20 s, MP3, unrelated), reup (a 7-s intro, then orig: AAC 48 kHz
    mono -6 dB); 5-s rows, the re-upload's after its intro."""
    man = speech.Voice(115, 1.0, 1)
    orig = speech.speak(speech.sentence(86, 0), man)[: 36 * speech.RATE]
    other = speech.speak(speech.sentence(48, 5), man)[: 20 * speech.RATE]
    intro = speech.speak(speech.sentence(18, 10), speech.Voice(210, 1.17, 2))
    speech.write(f"{folder}/orig.mp3", orig)
    speech.write(f"{folder}/other.mp3", other)
    reup = np.concatenate([intro[: int(INTRO * speech.RATE)], orig])
    speech.write(f"{folder}/reup.m4a", reup, "aac", 48000, 1, 96000, -6.0)

    def rows(rec: str, starts) -> list[dict]:
        return [
            {"id": f"{rec}-{k}", "recording": rec, "start": t, "end": t + 5.0, "text": "a b"}
            for k, t in enumerate(starts)
        ]

    copy = [INTRO + t for t in range(0, 30, 5)]
    return (
        rows("orig", range(0, 35, 5)) + rows("other", range(0, 15, 5)) + rows("reup", [0.0, *copy])
    )


def _accounted(out, ids: list[str]) -> tuple:
    kept = read_splits(out, columns=["id"])
    rejects = pq.read_table(out / "rejects.parquet").to_pandas()
    assert sorted([*kept["id"], *rejects["id"]]) == sorted(ids)  # each row once
    return kept, rejects.set_index("id")


def test_a_second_build_rejects_the_copys_rows_and_keeps_both_copies_in_one_split(
    tmp_path, dask_client
):
    audio = tmp_path / "audio"
    audio.mkdir()
    table = _corpus(audio)
    (tmp_path / "rows.json").write_text(json.dumps(table))
    out = tmp_path / "out"
    doc = {
        "input": {"alignment": str(tmp_path / "rows.json"), "audio": str(audio)},
        "output": {"path": str(out)},
        "splits": {"by": "recording", "dev_size": 2},
        "cluster": {"n_workers": 2, "dashboard_address": None},
    }
    cfg = load_config(str(config_file(tmp_path, doc)))
    ids = [r["id"] for r in table]
    first = build(cfg, client=dask_client)
    assert first["duplicate_audio"]["fingerprints"] and len(first["duplicate_audio"]["pairs"]) == 1
    assert first["rejects"]["duplicate_audio"] == 6 and (out / "fingerprints.parquet").exists()
    assert first["hours_reused"] == 0 and first["hours_decoded"] * 3600 > 80  # decoded once
    rows_first = read_splits(out, columns=["id", "audio"])

    planned = plan(cfg, client=dask_client)
    (pair,) = planned["duplicate_audio"]["pairs"]
    assert (pair["recording_a"], pair["recording_b"]) == ("orig", "reup")
    assert abs(pair["offset"] - INTRO) < 0.05 and pair["shared_hours"] * 3600 >= 20
    assert "orig ~ reup: offset +7.0" in format_plan(planned)
    assert planned["rejects"]["duplicate_audio"] == 6

    second = build(cfg, client=dask_client, force=True)  # decodes everything, pairs known
    kept, rejects = _accounted(out, ids)
    dup = rejects[rejects["reason"] == "duplicate_audio"]
    assert sorted(dup.index) == [f"reup-{k}" for k in range(1, 7)]  # the intro's row is kept
    assert dup.loc["reup-1", "detail"].startswith(
        "the audio of orig row 0 (orig-0), at offset +7.0"
    )
    assert {"orig-0", "other-0", "reup-0"} <= set(kept["id"])
    by_rec = kept.assign(rec=kept["id"].str.split("-").str[0]).groupby("rec")["split"].unique()
    assert list(by_rec["orig"]) == list(by_rec["reup"])  # no clip's audio in two splits
    assert second["rejects"] == first["rejects"] and second["splits"] == first["splits"]
    assert second["content_hash"] == first["content_hash"]  # the first build's two passes: the same
    again = read_splits(out, columns=["id", "audio"])
    assert (
        again.sort_values("id")["audio"].tolist() == rows_first.sort_values("id")["audio"].tolist()
    )
    html = (out / "report.html").read_text()
    assert "Recordings sharing audio" in html and "reup" in html
    assert "| duplicate_audio | 6 |" in (out / "README.md").read_text()
    # the second build decoded the re-upload's intro only: its earlier hashes are kept
    assert len(known_pairs(dask_client, cfg)) == 1
