"""The frames that cross a module hold exactly the column sets ``etl/schema.py`` declares, and no
scratch column (``schema.SCRATCH``) ever reaches a file: checked on real small builds."""

from __future__ import annotations

import ast
import glob
import json
import pathlib

import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl import schema
from etl.config import load_config

from .conftest import write_config

ETL = pathlib.Path(__file__).resolve().parent.parent / "etl"


def _config(corpus, tmp_path, alignment: pathlib.Path, **sections):
    return load_config(
        write_config(corpus, tmp_path / "out", **sections), [f"input.alignment={alignment}"]
    )


def _keyed_json(corpus, tmp_path) -> pathlib.Path:
    """The corpus as a JSON object keyed by id (read through ``schema.JSON_KEY``), minus the
    duplicate the list form holds (a key appears once)."""
    path = tmp_path / "keyed.json"
    doc = {r["id"]: {k: v for k, v in r.items() if k != "id"} for r in corpus["rows"]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def _jsonl_with_a_bad_line(corpus, tmp_path) -> pathlib.Path:
    """The corpus as JSON lines with one line that is not JSON (``schema.BAD_LINE``)."""
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in corpus["rows"]]
    path.write_text("\n".join(lines[:3] + ["{not json"] + lines[3:]) + "\n", encoding="utf-8")
    return path


def _columns(df: pd.DataFrame) -> set:
    return set(df.columns) - set(schema.OPTIONAL_COLUMNS)


@pytest.mark.parametrize("form", ["list", "keyed", "jsonl"])
def test_reference_frames_hold_the_declared_columns(corpus, tmp_path, form):
    from etl.testing.reference import plan_rows, read_checked_table

    path = {
        "list": lambda: corpus["root"] / "alignment.json",
        "keyed": lambda: _keyed_json(corpus, tmp_path),
        "jsonl": lambda: _jsonl_with_a_bad_line(corpus, tmp_path),
    }[form]()
    cfg = _config(corpus, tmp_path, path)
    checked = read_checked_table(cfg)
    assert _columns(checked.frame) == {"row", *schema.CHECKED_COLUMNS}
    planned = plan_rows(cfg, checked.frame)
    assert _columns(planned.frame) == set(schema.PLACED_COLUMNS)
    assert set(planned.frame.columns) == set(schema.PLACED_COLUMNS)  # no word-level reader here
    if form == "jsonl":
        assert planned.frame["reason"].eq("unreadable_alignment").sum() == 1
    assert set(planned.selection) >= {"exclude_ids"} and "unmatched_recordings" in planned.listing


def test_the_cluster_planner_and_the_plan_store_hold_the_declared_columns(corpus, tmp_path):
    from distributed import Client, LocalCluster

    from etl.planning import store
    from etl.planning.client import plan_table

    cfg = _config(corpus, tmp_path, _keyed_json(corpus, tmp_path))
    out = str(tmp_path / "out")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        planned = plan_table(client, cfg)
        parts = client.gather(planned.parts)
    assert all(_columns(p) == set(schema.PLACED_COLUMNS) for p in parts)
    assert list(planned.counts.recordings.columns) == schema.RECORDING_COLUMNS
    shard_of = {r: 0 for p in parts for r in p["recording"]}
    for p, pdf in enumerate(parts):
        store.write_partition(pdf, out, p, shard_of, shape=planned.shape, buckets=2)
    plan = store.plan_dir(out)
    shard = store.read_shard(out, 0)
    assert list(shard.columns) == [c for c in schema.PLANNED_COLUMNS if c in parts[0]]
    assert set(shard.columns) == set(schema.PLANNED_COLUMNS) - {"words"}
    rejects = pd.concat(pd.read_parquet(f) for f in glob.glob(f"{plan}/rejects/*.parquet"))
    assert list(rejects.columns) == schema.REJECT_COLUMNS + ["row"]
    rows = pd.concat(pd.read_parquet(f) for f in glob.glob(f"{plan}/recordings/*/*.parquet"))
    assert list(rows.columns) == schema.RECORDING_ROW_COLUMNS


def test_a_build_writes_declared_columns_only(built):
    out = built["out"]
    files = sorted(glob.glob(str(out / "data" / "*.parquet")))
    assert files
    declared = {*schema.PLACED_COLUMNS, *schema.QUALITY_COLUMNS, "audio", *schema.OPTIONAL_COLUMNS}
    for f in files:
        s = pq.read_schema(f)
        features = json.loads(s.metadata[b"huggingface"])["info"]["features"]
        assert s.names == list(features) and set(s.names) <= declared, f
    assert pq.read_schema(out / "rejects.parquet").names == schema.REJECT_COLUMNS
    assert all(not n.startswith(schema.SCRATCH) for n in schema.REJECT_COLUMNS)


def test_scratch_columns_are_declared_once_under_one_prefix():
    scratch = [schema.JSON_KEY, schema.BAD_LINE, schema.BAD_LINE_ID, *schema.PLANNING_SCRATCH]
    assert all(n.startswith(schema.SCRATCH) for n in scratch) and len(set(scratch)) == len(scratch)
    declared = (
        schema.TABLE_COLUMNS
        + schema.EXTRA_TABLE_COLUMNS
        + schema.PLACED_COLUMNS
        + schema.PLANNED_COLUMNS
        + schema.RECORDING_ROW_COLUMNS
        + schema.RECORDING_COLUMNS
        + schema.UNIT_COLUMNS
        + schema.REJECT_COLUMNS
    )
    assert not [c for c in declared if c.startswith("_")]
    # no module spells a scratch name or an old magic one: they use schema's names
    old = {"_hash", "_eligible", "_test", "_pool", "__key__", "__alignment_error__"}
    found = []
    for path in sorted(ETL.rglob("*.py")):
        if path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.startswith(schema.SCRATCH) or node.value in old:
                    found.append(f"{path.relative_to(ETL)}:{node.lineno} {node.value!r}")
    assert not found, found


def test_the_query_example_row_has_every_query_column():
    from etl.review.sample import EXAMPLE_ROW

    assert list(EXAMPLE_ROW) == [*schema.QUERY_COLUMNS, "url"]
    assert set(schema.QUERY_COLUMNS) <= set(schema.PLACED_COLUMNS)
