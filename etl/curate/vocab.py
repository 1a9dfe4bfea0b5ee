"""The CTC vocabulary (pure): every character of the train text, in the form
``transformers.Wav2Vec2CTCTokenizer`` loads (``|`` for the space, then ``[UNK]`` and ``[PAD]``)."""

from __future__ import annotations

from collections.abc import Iterable

WORD_DELIMITER, UNK, PAD = "|", "[UNK]", "[PAD]"


def build_vocab(texts: Iterable[str]) -> dict[str, int]:
    chars: set[str] = set()
    for t in texts:
        chars.update(t)
    chars.discard(" ")
    chars.discard(WORD_DELIMITER)
    vocab = {c: i for i, c in enumerate(sorted(chars))}
    for token in (WORD_DELIMITER, UNK, PAD):
        vocab[token] = len(vocab)
    return vocab


def missing_characters(texts: Iterable[str], vocab: dict[str, int]) -> dict[str, int]:
    """Characters of ``texts`` the vocabulary lacks, with how often each occurs (most frequent first)."""
    counts: dict[str, int] = {}
    for t in texts:
        for c in t:
            if c != " " and c not in vocab:
                counts[c] = counts.get(c, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def missing_from_counts(counts: dict[str, int], vocab: dict[str, int]) -> dict[str, int]:
    """As ``missing_characters``, from character counts (a reduction of the split's texts)."""
    missing = {c: n for c, n in counts.items() if c != " " and c not in vocab}
    return dict(sorted(missing.items(), key=lambda kv: (-kv[1], kv[0])))
