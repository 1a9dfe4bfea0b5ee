"""Every name of a file or folder etl writes is declared in ``etl/output/storage.py``: a path is
built from those names (``storage.join``), never from a literal elsewhere in etl/."""

from __future__ import annotations

import ast
import pathlib

from etl.output import storage

ETL = pathlib.Path(__file__).resolve().parents[2] / "etl"


def _literal_joins() -> list[str]:
    wrong = []
    for path in sorted(ETL.rglob("*.py")):
        if path.name == "storage.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            f = node.func if isinstance(node, ast.Call) else None
            if not (isinstance(f, ast.Attribute) and f.attr == "join"):
                continue
            if not (isinstance(f.value, ast.Name) and f.value.id == "storage"):
                continue
            if any(
                isinstance(a, ast.JoinedStr)
                or (isinstance(a, ast.Constant) and isinstance(a.value, str))
                for a in node.args
            ):
                wrong.append(f"etl/{path.relative_to(ETL)}:{node.lineno}: {ast.unparse(node)}")
    return wrong


def test_no_path_is_joined_from_a_literal_name_outside_storage():
    assert _literal_joins() == []


def test_the_names_are_the_ones_the_outputs_have_always_had():
    assert storage.OUR_FILES == (
        "README.md",
        "report.json",
        "report.html",
        "rejects.parquet",
        "vocab.json",
        "recordings.parquet",  # each recording's file identity, for the next build's reuse
    )
    assert (storage.DATA_DIR, storage.PARTS_DIR, storage.ARROW_DIR) == ("data", ".parts", "arrow")
    assert (storage.SUSPECTS_FILE, storage.LEASE_FILE) == ("suspect_recordings.txt", ".lease.json")
    assert (storage.MANIFEST_FILE, storage.JOURNAL_FILE) == ("manifest.json", "finalize.json")
    assert storage.record_name(3) == "shard-00003.done.json"
    assert storage.part_name("dev", 3) == "dev-shard00003.parquet"
    assert storage.final_name("dev", 1, 2) == "dev-00001-of-00002.parquet"
    assert storage.arrow_name(1, 2) == "data-00001-of-00002.arrow"
    assert (storage.ARROW_DICT_FILE, storage.ARROW_INFO_FILE, storage.ARROW_STATE_FILE) == (
        "dataset_dict.json",
        "dataset_info.json",
        "state.json",
    )
    assert (storage.PLAN_DIR, storage.PLAN_REJECTS_DIR, storage.LATE_DIR) == (
        "plan",
        "rejects",
        "late",
    )
    assert storage.plan_shard_name(3) == "shard-00003"
    assert storage.late_name(3) == "shard-00003.parquet"
    assert storage.plan_part_name(3) == "part-00003.parquet"
    assert (storage.FINGERPRINTS_FILE, storage.FINGERPRINT_PARTS_DIR) == (
        "fingerprints.parquet",
        "fingerprints",
    )
    assert storage.fingerprint_part_name(3) == "shard-00003.parquet"
    assert storage.bucket_name(3) == "bucket-00003"
    assert (storage.CLIPS_DIR, storage.IDS_FILE, storage.REVIEW_FILE, storage.BAD_IDS_FILE) == (
        "clips",
        "sampled_ids.txt",
        "review.xlsx",
        "bad_ids.txt",
    )
