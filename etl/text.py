"""Text normalization and transcript similarity (pure functions)."""
from __future__ import annotations

import re
import sys
import unicodedata

import Levenshtein

_SPACE = re.compile(r"\s+")
# Every Unicode punctuation code point (categories Pc Pd Pe Pf Pi Po Ps), built once.
_PUNCT = {cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")}


def normalize(text, lowercase: bool = True, strip_punctuation: bool = True) -> str:
    """NFC, optionally lowercased and without punctuation, whitespace collapsed.

    Punctuation becomes a space ("riječ,riječ" -> "riječ riječ"), so words never fuse.
    A missing value (None/NaN) normalizes to "".
    """
    if text is None or (isinstance(text, float) and text != text):
        return ""
    text = unicodedata.normalize("NFC", str(text))
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = text.translate(_PUNCT)
    return _SPACE.sub(" ", text).strip()


def similarity(a: str, b: str) -> float:
    """1 - 2*lev(a, b)/(len a + len b), exactly as the contract states: 1.0 for equal strings; it goes
    below 0 when the strings also differ in length (``similarity("abc", "") == -1.0``)."""
    total = len(a) + len(b)
    if total == 0:
        return 1.0
    return 1.0 - 2.0 * Levenshtein.distance(a, b) / total
