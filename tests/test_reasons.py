"""The reject reasons are declared once (``etl.schema.REASONS``): every deny-list derives from it,
and every reason a code path gives is declared there."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

from etl.audio import measures
from etl.commands import plan
from etl.config import FiltersConfig
from etl.curate import suspects
from etl.review import sample
from etl.schema import REASON, REASONS, REJECT_REASONS, STAGES, reasons_where

ETL = pathlib.Path(__file__).resolve().parent.parent / "etl"


def test_the_derived_lists_are_what_they_were_before_the_registry():
    assert plan.DECODE_TIME_REASONS == (
        "unreadable_audio",
        "beyond_end",
        "silent",
        "clipped",
        "mostly_silence",
    )
    assert measures.REASONS == ("silent", "clipped", "mostly_silence")
    assert sample.UNCUTTABLE == (
        "invalid_recording_id",
        "bad_timestamps",
        "duplicate_id",
        "excluded",
        "missing_audio",
    )
    # suspects used it as a set (isin); the literal it held, in its own order:
    assert set(suspects.NOT_FAULTS) == {
        "excluded",
        "over_budget",
        "duplicate_id",
        "missing_audio",
        "invalid_recording_id",
        "duplicate_audio",
    }


def test_reject_reasons_is_the_names_and_descriptions_in_check_order():
    assert list(REJECT_REASONS) == [
        "unreadable_alignment",
        "invalid_recording_id",
        "bad_timestamps",
        "duplicate_id",
        "excluded",
        "missing_audio",
        "ambiguous_recording",
        "empty_text",
        "too_short",
        "too_long",
        "bad_char_rate",
        "low_similarity",
        "duplicate_audio",
        "over_budget",
        "unreadable_audio",
        "beyond_end",
        "silent",
        "clipped",
        "mostly_silence",
    ]
    assert REJECT_REASONS["low_similarity"] == (
        "similarity of text and hypothesis below filters.min_similarity"
    )
    assert all(REJECT_REASONS[r.name] == r.description for r in REASONS)


def test_decoding_reasons_come_last_and_before_decoding_follows_the_stage():
    # Priority is check order, not stage order (duplicate_id outranks empty_text), but what the
    # shard task finds comes after everything planning knows.
    assert {r.stage for r in REASONS} == set(STAGES)
    known = [r.before_decoding for r in REASONS]
    assert known == sorted(known, reverse=True)
    assert reasons_where(before_decoding=True) == tuple(
        r for r in REJECT_REASONS if r not in plan.DECODE_TIME_REASONS
    )
    with pytest.raises(TypeError, match="no property"):
        reasons_where(fault=True)


def _emitted() -> set[str]:
    """Reason names given in etl/: string arguments of ``reject``/``_reject`` calls and the names
    ``measures.judge`` returns."""
    found = set()
    for path in ETL.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("reject", "_reject"):
                    found |= {
                        a.value
                        for a in node.args
                        if isinstance(a, ast.Constant)
                        and isinstance(a.value, str)
                        and re.fullmatch(r"[a-z_]+", a.value)
                    }
            if isinstance(node, ast.FunctionDef) and node.name == "judge":
                found |= {
                    r.value.elts[0].value
                    for r in ast.walk(node)
                    if isinstance(r, ast.Return)
                    and isinstance(r.value, ast.Tuple)
                    and isinstance(r.value.elts[0], ast.Constant)
                }
    return found


def test_every_reason_given_in_the_code_is_declared_and_every_declared_one_is_given():
    emitted = _emitted()
    assert emitted - set(REASON) == set(), "declare these in etl/schema.py REASONS"
    assert set(REASON) - emitted == set(), "declared but never given by any check"


def _only(key: str, bound: float) -> FiltersConfig:
    """The filters with only ``key`` set: the other quality filters off."""
    off = {"min_rms_db": None, "max_clipped_fraction": None, "max_silence_fraction": None}
    return FiltersConfig(**{**off, key: bound})


@pytest.mark.parametrize("reason", [r for r in REASONS if r.stage == "quality"], ids=str)
def test_a_quality_reason_is_what_judge_gives_when_its_measure_fails_its_filter(reason):
    ok = {"rms_db": -20.0, "peak_db": -1.0, "clipped_fraction": 0.0, "silence_fraction": 0.0}
    bound = 0.5 if reason.filter.startswith("max_") else -60.0
    worse = bound + 0.1 if reason.filter.startswith("max_") else bound - 10.0
    verdict = measures.judge({**ok, reason.measure: worse}, _only(reason.filter, bound))
    assert verdict is not None and verdict[0] == reason.name
    assert measures.judge(ok, _only(reason.filter, bound)) is None
