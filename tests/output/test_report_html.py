"""report.html: written by every build beside report.json, self-contained, and rewritten by `etl report OUT`."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from etl.cli import main
from etl.output.report_html import render
from etl.schema import REJECT_REASONS

pytestmark = pytest.mark.cluster


def _images(page: str) -> list[ET.Element]:
    """The page's charts, each parsed as the SVG document it is (inline, so nothing to fetch)."""
    return [ET.fromstring(s) for s in re.findall(r"<svg .*?</svg>", page, re.S)]


def _drawn(svg: ET.Element, tag: str) -> list[ET.Element]:
    return svg.findall(f".//{{http://www.w3.org/2000/svg}}{tag}")


def test_build_writes_a_self_contained_report_with_the_seven_plots(built):
    page = (built["out"] / "report.html").read_text(encoding="utf-8")
    images = _images(page)
    assert (
        len(images) == 7
    )  # duration, similarity, chars/s, rms, silence, hours per split, rows per reject reason
    report = built["report"]
    histograms, (hours, reasons) = images[:5], images[5:]
    # a filled area per group of rows (the splits and the rejected), a legend entry naming each
    labels = [t.text for t in _drawn(histograms[0], "text")]
    assert len(_drawn(histograms[0], "polygon")) == len(report["splits"]) + 1
    assert all(any(t.startswith(f"{s} (") for t in labels) for s in [*report["splits"], "rejected"])
    # a bar per split and per reject reason, each with its value written beside it
    assert len(_drawn(hours, "rect")) == len(report["splits"])
    assert f"{report['splits']['train']['hours']:.3f}" in [t.text for t in _drawn(hours, "text")]
    assert len(_drawn(reasons, "rect")) == len(REJECT_REASONS)
    assert (
        not re.search(r"(src|href)=\"(?!data:)", page) and "<script" not in page
    )  # nothing to fetch
    assert "filters.min_similarity = 0.8" in page and "filters.max_duration = 15.0" in page


def test_report_tables_agree_with_report_json(built):
    page = (built["out"] / "report.html").read_text(encoding="utf-8")
    report = built["report"]
    for reason in REJECT_REASONS:
        assert f"<tr><td>{reason}</td><td>{report['rejects'][reason]}</td>" in page
    for split, v in report["splits"].items():
        assert f"<tr><td>{split}</td><td>{v['rows']}</td><td>{v['hours']:.3f}</td>" in page
    assert f"{report['rows_in']} rows in: {report['rows_out']} kept" in page


def test_etl_report_regenerates_the_same_page(built, tmp_path, capsys):
    out = tmp_path / "copy"
    shutil.copytree(built["out"], out)
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert str(out / "report.html") in capsys.readouterr().out
    assert (out / "report.html").read_bytes() == (built["out"] / "report.html").read_bytes()


def test_etl_report_on_a_folder_that_is_no_dataset_is_one_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("etl: error:") and "report.json" in err and "\n" not in err
    assert not (tmp_path / "report.html").exists()


def test_characters_outside_the_vocabulary_are_listed_per_split():
    report = {
        "rows_in": 3,
        "rows_out": 2,
        "rows_rejected": 1,
        "hours_out": 0.001,
        "splits": {
            "train": {"rows": 1, "hours": 0.0005, "files": 1},
            "dev": {"rows": 1, "hours": 0.0005, "files": 1},
        },
        "rejects": {"too_long": 1},
        "vocab": {"size": 30, "missing_characters": {"dev": {"ć": 3, "q": 1}}},
        "config": {"filters": {"min_similarity": None, "min_duration": 0.0, "max_duration": 20.0}},
    }
    rows = pd.DataFrame(
        {
            "duration": [2.0, 3.0, 25.0],
            "similarity": [None, None, None],
            "group": ["train", "dev", "rejected"],
            "reason": [None, None, "too_long"],
        }
    )
    page = render(report, rows)
    assert "<tr><td>dev</td><td>ć</td><td>U+0107</td><td>3</td></tr>" in page
    assert "<tr><td>dev</td><td>q</td><td>U+0071</td><td>1</td></tr>" in page
    assert "no hypothesis column" in page and len(_images(page)) == 3  # no similarity to plot


def test_an_empty_build_still_gets_a_page():
    report = {
        "rows_in": 0,
        "rows_out": 0,
        "rows_rejected": 0,
        "hours_out": 0.0,
        "splits": {},
        "rejects": {},
        "vocab": {"size": 0, "missing_characters": {}},
        "config": {"filters": {"min_similarity": 0.8}},
    }
    page = render(
        report, pd.DataFrame({"duration": [], "similarity": [], "group": [], "reason": []})
    )
    assert "0 rows in: 0 kept" in page and "No rows to plot." in page and not _images(page)


def test_counts_streamed_file_by_file_draw_the_page_all_rows_would(tmp_path):
    """etl report counts each file (rejects.parquet per row group, in record batches) and adds the counts
    up: the page is the one drawn from every row at once, outliers and missing measures included."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from etl.output.report_html import load_plot_counts

    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    frames = []
    for split, i, n in [("train", 0, 700), ("train", 1, 500), ("dev", 0, 90)]:
        df = pd.DataFrame(
            {
                "duration": rng.uniform(0.5, 19.0, n),
                "similarity": rng.uniform(0.5, 1.0, n),
                "chars_per_second": rng.normal(14, 8, n),
                "rms_db": rng.uniform(-120, -5, n),
                "silence_fraction": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
            }
        )
        pq.write_table(
            pa.Table.from_pandas(df), tmp_path / "data" / f"{split}-{i:05d}-of-00002.parquet"
        )
        frames.append(df.assign(group=split))
    rej = pd.DataFrame(
        {
            "duration": rng.uniform(0, 60, 3000),
            "similarity": rng.uniform(0, 1, 3000),
            "reason": "too_long",
        }
    )  # no measures: rejected before decoding
    pq.write_table(pa.Table.from_pandas(rej), tmp_path / "rejects.parquet", row_group_size=700)
    frames.append(rej.drop(columns="reason").assign(group="rejected"))
    report = {
        "rows_in": 4290,
        "rows_out": 1290,
        "rows_rejected": 3000,
        "hours_out": 1.0,
        "splits": {
            "train": {"rows": 1200, "hours": 0.9, "files": 2},
            "dev": {"rows": 90, "hours": 0.1, "files": 1},
        },
        "rejects": {"too_long": 3000},
        "vocab": {"size": 0, "missing_characters": {}},
        "config": {"filters": {"min_similarity": 0.8, "min_duration": 1.0, "max_duration": None}},
    }
    streamed = load_plot_counts(str(tmp_path), report["config"]["filters"])
    assert streamed["groups"] == {"train": 1200, "dev": 90, "rejected": 3000}
    kept = pd.concat(frames[:3])
    assert (
        sum(streamed["columns"]["silence_fraction"]["values"].values())
        == kept["silence_fraction"].notna().sum()
    )
    cps = kept["chars_per_second"]
    assert streamed["columns"]["chars_per_second"]["outside"] == ((cps < 0) | (cps > 40)).sum() > 0
    assert streamed["columns"]["rms_db"]["outside"] == (kept["rms_db"] < -100).sum() > 0
    page = render(report, streamed)
    assert len(_images(page)) == 7
    assert page == render(report, pd.concat(frames, ignore_index=True))
