"""Text normalization and transcript similarity (pure functions).

Normalization is vectorized with Arrow compute (RE2's ``\\p{P}`` is every Unicode punctuation
category), so a million transcripts take about a second; ``normalize`` is the same code on one string.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from collections.abc import Iterable

import Levenshtein
import pyarrow as pa
import pyarrow.compute as pc

UNICODE_FORMS = ("NFC", "NFKC")
# Kept on purpose: ZWNJ (U+200C) and ZWJ (U+200D) change how Persian, Urdu and Indic words are
# written (Persian "می‌خواهم" joins its prefix with ZWNJ; Devanagari half-forms need ZWJ), so a model
# reading them as text must see them. Every other format character (Cf) carries no letter.
KEPT_FORMAT_CHARACTERS = frozenset("\u200c\u200d")
# Control characters that are whitespace (tab, newlines, file/group/record/unit separators, NEL):
# they separate words, so they become a space; every other control character (Cc) is deleted.
_SPACE_CONTROLS = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _re2_class(chars: Iterable[str]) -> str:
    """An RE2 character class of code points, as ranges (``\\x{..}`` escapes)."""
    cps = sorted(ord(c) for c in chars)
    ranges, start = [], None
    for i, cp in enumerate(cps):
        if start is None:
            start = cp
        if i + 1 == len(cps) or cps[i + 1] != cp + 1:
            ranges.append(f"\\x{{{start:X}}}" if start == cp else f"\\x{{{start:X}}}-\\x{{{cp:X}}}")
            start = None
    return "[" + "".join(ranges) + "]"


@functools.lru_cache(maxsize=1)
def _invisible_pattern() -> str:
    """Cc (minus the whitespace ones) and Cf (minus ZWJ/ZWNJ), from Python's own Unicode tables so
    the check in ``invisible_characters`` and the deletion here can never disagree. Cf covers the
    BOM/ZWNBSP U+FEFF, ZWSP U+200B, soft hyphen U+00AD, word joiner U+2060, bidi marks (LRM, RLM,
    ALM), embeddings/overrides U+202A-202E and isolates U+2066-2069, interlinear annotation, tags."""
    chars = [
        chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) in ("Cc", "Cf")
    ]
    return _re2_class(
        c for c in chars if c not in KEPT_FORMAT_CHARACTERS and c not in _SPACE_CONTROLS
    )


def _as_arrow(texts: list) -> pa.Array:
    try:
        return pa.array(texts, type=pa.large_string())
    except (UnicodeEncodeError, pa.ArrowException):  # lone surrogates (JSON "\ud800"): not UTF-8
        return pa.array([without_surrogates(t) for t in texts], type=pa.large_string())


def normalize_many(
    texts: Iterable,
    lowercase: bool = True,
    strip_punctuation: bool = True,
    unicode_form: str = "NFC",
) -> list[str]:
    """NFC (or NFKC), invisible characters deleted, optionally lowercased, Unicode punctuation (P*)
    deleted, whitespace collapsed and trimmed. Idempotent: normalizing twice changes nothing.

    Punctuation is deleted, not replaced ("don't" -> "dont", "e-mail" -> "email"), as HF's CTC
    fine-tuning recipes do; words separated by punctuation *and* space stay apart. Control characters
    and format characters other than ZWJ/ZWNJ are deleted (whitespace controls become a space).
    NFKC also folds compatibility forms: fullwidth "１２３" -> "123", the ligature "ﬁ" -> "fi".
    Missing values -> "".
    """
    arr = _as_arrow([_as_text(t) for t in texts])
    arr = pc.replace_substring_regex(arr, _invisible_pattern(), "")
    arr = pc.utf8_normalize(arr, unicode_form)
    if lowercase:
        arr = pc.utf8_lower(arr)
    if strip_punctuation:
        arr = pc.replace_substring_regex(arr, r"\p{P}", "")
    arr = pc.replace_substring_regex(
        arr, r"[\s\p{Z}" + _re2_class(_SPACE_CONTROLS)[1:-1] + "]+", " "
    )
    # again at the end: a deletion can bring a letter and a combining mark together ("e!\u0301")
    arr = pc.utf8_normalize(pc.utf8_trim_whitespace(arr), unicode_form)
    return pc.fill_null(arr, "").to_pylist()


def without_surrogates(s):
    """``s`` with lone surrogates (which UTF-8, Arrow and Parquet cannot hold) as U+FFFD."""
    if not isinstance(s, str):
        return s
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", s)


def is_invisible(c: str) -> bool:
    """What ``invisible_characters`` counts: Unicode category C or Z, other than the plain space."""
    return c != " " and unicodedata.category(c)[0] in "CZ"


def invisible_characters(texts: Iterable[str]) -> dict[str, int]:
    """Characters of Unicode category C (control, format, private use, unassigned) or Z (separators)
    other than the plain space in ``texts``, as ``"U+200D ZERO WIDTH JOINER": count``. After
    normalization only ZWJ/ZWNJ (kept on purpose) and private-use/unassigned code points can be left."""
    texts = list(texts)
    seen: set = set()
    for t in texts:
        seen.update(t)
    odd = sorted(c for c in seen if c != " " and unicodedata.category(c)[0] in "CZ")
    if not odd:
        return {}
    counts = {c: 0 for c in odd}
    for t in texts:
        for c in odd:
            counts[c] += t.count(c)
    return {
        f"U+{ord(c):04X} {unicodedata.name(c, unicodedata.category(c))}": n
        for c, n in counts.items()
    }


def _as_text(t):
    if t is None or (isinstance(t, float) and t != t) or type(t).__name__ in ("NAType", "NaTType"):
        return None
    return t if isinstance(t, str) else str(t)


def normalize(
    text, lowercase: bool = True, strip_punctuation: bool = True, unicode_form: str = "NFC"
) -> str:
    return normalize_many([text], lowercase, strip_punctuation, unicode_form)[0]


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
