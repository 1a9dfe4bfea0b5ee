"""Text normalization and transcript similarity (pure functions).

Normalization is vectorized with Arrow compute (RE2's ``\\p{P}`` is every Unicode punctuation
category), so a million transcripts take about a second; ``normalize`` is the same code on one string.
"""
from __future__ import annotations

from typing import Iterable

import Levenshtein
import pyarrow as pa
import pyarrow.compute as pc


def normalize_many(texts: Iterable, lowercase: bool = True, strip_punctuation: bool = True) -> list[str]:
    """NFC, optionally lowercased, Unicode punctuation (P*) deleted, whitespace collapsed and trimmed.

    Punctuation is deleted, not replaced ("don't" -> "dont", "e-mail" -> "email"), as HF's CTC
    fine-tuning recipes do; words separated by punctuation *and* space stay apart. Missing values -> "".
    """
    arr = pa.array([_as_text(t) for t in texts], type=pa.large_string())
    arr = pc.utf8_normalize(arr, "NFC")
    if lowercase:
        arr = pc.utf8_lower(arr)
    if strip_punctuation:
        arr = pc.replace_substring_regex(arr, r"\p{P}", "")
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(arr, r"[\s\p{Z}]+", " "))
    return pc.fill_null(arr, "").to_pylist()


def _as_text(t):
    if t is None or (isinstance(t, float) and t != t):
        return None
    return t if isinstance(t, str) else str(t)


def normalize(text, lowercase: bool = True, strip_punctuation: bool = True) -> str:
    return normalize_many([text], lowercase, strip_punctuation)[0]


def similarity(a: str, b: str) -> float:
    """1 - 2*lev(a, b)/(len a + len b), exactly as the contract states: 1.0 for equal strings; it goes
    below 0 when the strings also differ in length (``similarity("abc", "") == -1.0``)."""
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    return 1.0 - 2.0 * Levenshtein.distance(a, b) / total


def similarities(a: Iterable[str], b: Iterable) -> list[float]:
    """``similarity`` per pair; NaN where ``b`` is None (no second transcript)."""
    return [similarity(x, y) if y is not None else float("nan") for x, y in zip(a, b)]
