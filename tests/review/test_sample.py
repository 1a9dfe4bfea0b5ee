"""`etl sample` and `etl review import`: seeded review samples cut into playable clips, a spreadsheet
for verdicts, and the bad verdicts back into a build as exclusions."""

from __future__ import annotations

import pandas as pd
import pytest
import soundfile as sf
from openpyxl import load_workbook

from etl.cli import main
from etl.config import DEFAULTS, load_config
from etl.review.sample import clip_name, select
from etl.testing.reference import plan_rows, read_checked_table
from etl.testing.synth import dominant_frequency

from ..conftest import EXPECTED_REJECTS, read_splits, write_config

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cfg_path(corpus, tmp_path_factory):
    return write_config(corpus, tmp_path_factory.mktemp("sample") / "out")


@pytest.fixture(scope="module")
def planned(cfg_path):
    cfg = load_config(cfg_path)
    df, _ = read_checked_table(cfg)
    return plan_rows(cfg, df).frame


@pytest.fixture(scope="module")
def sampled(cfg_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("review") / "review"
    assert main(["sample", cfg_path, "--n", "8", "--seed", "3", "--out", str(out)]) == 0
    return out


def _sheet(path):
    wb = load_workbook(path)
    ws = wb["review"]
    rows = list(ws.iter_rows(values_only=True))
    return ws, rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def test_same_seed_same_sample_and_a_smaller_n_is_its_prefix(planned):
    a, b = select(planned, 8, seed=3), select(planned.sample(frac=1, random_state=0), 8, seed=3)
    assert list(a["id"]) == list(b["id"])  # row order of the table does not matter
    assert list(select(planned, 3, seed=3)["id"]) == list(a["id"])[:3]
    assert list(select(planned, 8, seed=4)["id"]) != list(a["id"])
    assert a["reason"].isna().all() and not set(a["id"]) & set(
        EXPECTED_REJECTS.keys() - {"broken", "late"}
    )


def test_where_picks_among_filtered_rows_and_a_bad_expression_is_one_line(
    planned, cfg_path, tmp_path, capsys
):
    assert list(select(planned, 10, 0, "similarity < 0.8")["id"]) == ["lowsim"]
    assert set(select(planned, 100, 0, "reason == 'too_short' or reason == 'too_long'")["id"]) == {
        "short",
        "long",
    }
    # rows no clip can come from are never candidates, whatever the expression
    assert (
        select(planned, 100, 0, "duration > 0")["id"].isin(["escape", "nan-ts", "missing"]).sum()
        == 0
    )
    for expr in ("similarity <", "nosuch > 1", "duration"):
        assert main(["sample", cfg_path, "--out", str(tmp_path / "r"), "--where", expr]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("etl: error: --where") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "r" / "review.xlsx").exists()


def test_clips_are_16k_mono_wav_holding_their_own_tone(sampled, corpus):
    ids = (sampled / "sampled_ids.txt").read_text().split("\n")[:-1]
    assert len(ids) == 8 and len(set(ids)) == 8
    cut = [i for i in ids if i in corpus["freqs"]]
    assert set(ids) - set(cut) <= {
        "broken",
        "late",
    }  # planned as kept: only decoding tells they cannot be cut
    assert sorted(p.name for p in (sampled / "clips").iterdir()) == sorted(f"{i}.wav" for i in cut)
    for rid in cut:
        info = sf.info(str(sampled / "clips" / f"{rid}.wav"))
        assert (info.format, info.subtype, info.samplerate, info.channels) == (
            "WAV",
            "PCM_16",
            16000,
            1,
        )
        x, sr = sf.read(str(sampled / "clips" / f"{rid}.wav"), dtype="int16")
        assert abs(dominant_frequency(x, sr) - corpus["freqs"][rid]) < 3.0, rid


def test_review_sheet_links_each_clip_relatively_with_empty_verdicts(sampled):
    ws, header, rows = _sheet(sampled / "review.xlsx")
    assert list(header) == [
        "id",
        "clip",
        "recording",
        "start",
        "end",
        "duration",
        "similarity",
        "split",
        "reason",
        "text_raw",
        "text",
        "hypothesis",
        "verdict",
        "comment",
    ]
    assert [r["id"] for r in rows] == (sampled / "sampled_ids.txt").read_text().split()
    for n, r in enumerate(rows, 2):
        assert r["verdict"] is None and r["comment"] is None and r["text_raw"] and r["duration"] > 0
        link = ws.cell(row=n, column=2).hyperlink
        if (sampled / "clips" / f"{r['id']}.wav").exists():
            assert link.target == f"clips/{r['id']}.wav"
        else:
            assert link is None and r["clip"].startswith("not cut: ")
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref == f"A1:N{len(rows) + 1}"
    (dv,) = ws.data_validations.dataValidation
    assert dv.formula1 == '"ok,bad"' and str(dv.sqref) == f"M2:M{len(rows) + 1}"


def test_rows_that_cannot_be_cut_stay_in_the_sample_and_say_why(cfg_path, tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(
            ["sample", cfg_path, "--out", str(out), "--where", "id in ['broken', 'late', 'lowsim']"]
        )
        == 0
    )
    assert "not cut: late: beyond_end" in capsys.readouterr().out
    _, _, rows = _sheet(out / "review.xlsx")
    clip = {r["id"]: r["clip"] for r in rows}
    assert clip["lowsim"] == "lowsim.wav" and clip["broken"].startswith("not cut: unreadable_audio")
    assert sorted((out / "sampled_ids.txt").read_text().split()) == ["broken", "late", "lowsim"]


def test_an_existing_review_is_not_replaced_without_force(sampled, cfg_path, capsys):
    before = (sampled / "review.xlsx").read_bytes()
    assert main(["sample", cfg_path, "--n", "2", "--out", str(sampled)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (sampled / "review.xlsx").read_bytes() == before


def test_force_replaces_the_sample_and_its_stale_clips(cfg_path, tmp_path):
    out = tmp_path / "r"
    assert main(["sample", cfg_path, "--n", "5", "--seed", "1", "--out", str(out)]) == 0
    assert main(["sample", cfg_path, "--n", "2", "--seed", "2", "--out", str(out), "--force"]) == 0
    ids = (out / "sampled_ids.txt").read_text().split()
    assert {p.name for p in (out / "clips").iterdir()} <= {f"{i}.wav" for i in ids}
    assert len(_sheet(out / "review.xlsx")[2]) == 2


def test_clip_names_never_leave_the_clips_folder():
    assert clip_name("rec_1.0-2.0") == "rec_1.0-2.0.wav" and clip_name("snimka_č") == "snimka_č.wav"
    for bad in ("../x", "a/b", "..", "/abs", "c:\\x"):
        assert (
            "/" not in clip_name(bad)
            and "\\" not in clip_name(bad)
            and not clip_name(bad).startswith(".")
        )


def _fill(path, verdicts: dict, column="verdict"):
    wb = load_workbook(path)
    ws = wb["review"]
    header = [c.value for c in ws[1]]
    if column != "verdict":
        ws.cell(row=1, column=header.index("verdict") + 1).value = column
    for row in ws.iter_rows(min_row=2):
        rid = row[header.index("id")].value
        if rid in verdicts:
            row[header.index("verdict")].value = verdicts[rid]
    wb.save(path)


def test_review_import_writes_the_bad_ids_and_counts_every_verdict(sampled, tmp_path, capsys):
    xlsx = tmp_path / "review.xlsx"
    xlsx.write_bytes((sampled / "review.xlsx").read_bytes())
    ids = (sampled / "sampled_ids.txt").read_text().split()
    _fill(xlsx, {ids[0]: " BAD ", ids[1]: "ok", ids[2]: "Bad", ids[3]: "unsure"})
    assert main(["review", "import", str(xlsx)]) == 0
    assert (tmp_path / "bad_ids.txt").read_text() == f"{ids[0]}\n{ids[2]}\n"
    out = capsys.readouterr().out
    assert "ok: 1" in out and "bad: 2" in out and "(none): 4" in out and "unsure: 1" in out
    assert main(["review", "import", str(xlsx), "--out", str(tmp_path / "x.txt")]) == 0
    assert (tmp_path / "x.txt").read_text() == f"{ids[0]}\n{ids[2]}\n"


def test_review_import_without_a_verdict_column_is_one_clear_error(sampled, tmp_path, capsys):
    xlsx = tmp_path / "review.xlsx"
    xlsx.write_bytes((sampled / "review.xlsx").read_bytes())
    _fill(xlsx, {}, column="opinion")
    assert main(["review", "import", str(xlsx)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("etl: error:") and "'verdict'" in err and "\n" not in err
    assert not (tmp_path / "bad_ids.txt").exists()
    assert main(["review", "import", str(tmp_path / "nothing.xlsx")]) == 2
    assert "not found" in capsys.readouterr().err


def test_sampled_ids_as_exclude_ids_keep_the_sample_out_and_a_new_sample_picks_others(
    sampled, cfg_path
):
    cfg = load_config(cfg_path, [f"splits.exclude_ids=[{sampled / 'sampled_ids.txt'}]"])
    df, _ = read_checked_table(cfg)
    df = plan_rows(cfg, df).frame
    ids = (sampled / "sampled_ids.txt").read_text().split()
    assert set(df.loc[df["id"].isin(ids), "reason"]) == {"excluded"}
    assert df.loc[df["id"].isin(ids), "split"].isna().all()
    assert not set(select(df, 8, seed=3)["id"]) & set(ids)  # the next review round sees new rows


@pytest.mark.skipif(
    "exclude_ids" not in DEFAULTS["splits"], reason="needs splits.exclude_ids (issue 4, the lead)"
)
def test_bad_verdicts_round_trip_through_the_spreadsheet_into_a_rebuild(
    built, corpus, tmp_path, capsys
):
    review = tmp_path / "review"
    assert main(["sample", built["config"], "--n", "6", "--seed", "5", "--out", str(review)]) == 0
    ids = (review / "sampled_ids.txt").read_text().split()
    bad = [i for i in ids if i in corpus["freqs"]][:2]
    _fill(review / "review.xlsx", {**{i: "ok" for i in ids}, bad[0]: "bad", bad[1]: " Bad"})
    assert main(["review", "import", str(review / "review.xlsx")]) == 0
    assert (review / "bad_ids.txt").read_text().split() == bad

    out = tmp_path / "out"
    assert (
        main(
            [
                "build",
                write_config(corpus, out, splits={"exclude_ids": [str(review / "bad_ids.txt")]}),
            ]
        )
        == 0
    )
    capsys.readouterr()
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert sorted(rejects.loc[rejects["reason"] == "excluded", "id"]) == sorted(bad)
    kept = _ids(out)
    assert not set(kept) & set(bad) and len(kept) == len(_ids(built["out"])) - 2
    assert len(kept) + len(rejects) == len(corpus["rows"])  # no row lost


def _ids(out) -> list[str]:
    return list(read_splits(out, columns=["id"])["id"])
