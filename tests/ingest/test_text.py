"""Text normalization and transcript similarity."""

from __future__ import annotations

import sys
import unicodedata

import numpy as np
import pytest

from etl.ingest.text import normalize, similarity

# One or more characters of every Unicode punctuation category.
PUNCTUATION = {
    "Pc": "_‿⁀",
    "Pd": "-–—‐",
    "Ps": "([{„‚「",
    "Pe": ")]}」",
    "Pi": "“«‹‘",
    "Pf": "”»›’",
    "Po": "!\"#%&'*,./:;?@\\…¿¡·§¶、。",
}


def test_punctuation_table_above_covers_every_category():
    for cat, chars in PUNCTUATION.items():
        assert {unicodedata.category(c) for c in chars} == {cat}


def test_decomposed_letters_are_composed():
    assert normalize("c\u030c") == "č"
    assert normalize("C\u030cevapi") == "čevapi"
    assert normalize("z\u030ca\u030aba", lowercase=False) == "žåba"
    assert normalize("c\u030c", lowercase=False, strip_punctuation=False) == "\u010d"


def test_text_is_lowercased():
    assert normalize("Dobar Dan ŠUMA ĐAK") == "dobar dan šuma đak"


@pytest.mark.parametrize("cat", sorted(PUNCTUATION))
def test_punctuation_of_every_category_is_removed(cat):
    for ch in PUNCTUATION[cat]:
        assert normalize(f"riječ{ch}riječ") == "riječriječ", (ch, cat)
        assert normalize(f"riječ{ch} riječ") == "riječ riječ", (ch, cat)
        assert normalize(f"{ch}riječ{ch}") == "riječ", (ch, cat)


def test_every_unicode_punctuation_code_point_is_removed():
    punct = [
        chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")
    ]
    assert len(punct) > 700
    assert normalize("a" + "".join(punct) + "b") == "ab"


def test_punctuation_is_deleted_as_in_hf_ctc_recipes():
    assert (
        normalize("„Dobar dan…“ rekao je — tiho, «zar ne»? ¿Što?")
        == "dobar dan rekao je tiho zar ne što"
    )
    assert normalize("it’s an e-mail") == "its an email"
    assert normalize("riječ, riječ") == "riječ riječ"


def test_symbols_and_digits_are_not_punctuation():
    assert normalize("5 € + 3 $ = 8 ° ©") == "5 € + 3 $ = 8 ° ©"


def test_whitespace_is_collapsed_and_trimmed():
    assert normalize("  dobar \t\n dan\u00a0\u2003svima  ") == "dobar dan svima"
    assert normalize(" \t ") == ""


def test_croatian_and_non_latin_letters_survive():
    assert normalize("Č Ć Đ Š Ž č ć đ š ž") == "č ć đ š ž č ć đ š ž"
    assert normalize("Добар дан, свима!") == "добар дан свима"
    assert normalize("Добар дан", lowercase=False) == "Добар дан"
    assert normalize("Γειά σου κόσμε") == "γειά σου κόσμε"
    assert normalize("東京。大阪") == "東京大阪"


def test_lowercase_flag_is_respected():
    assert normalize("Dobar Dan!", lowercase=False) == "Dobar Dan"
    assert normalize("Dobar Dan!", lowercase=True) == "dobar dan"


def test_strip_punctuation_flag_is_respected():
    assert normalize("  Dobar  dan, „svima“!  ", strip_punctuation=False) == "dobar dan, „svima“!"
    assert normalize("Dobar dan!", lowercase=False, strip_punctuation=False) == "Dobar dan!"


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan])
def test_missing_text_normalizes_to_empty(missing):
    assert normalize(missing) == ""
    assert normalize(missing, lowercase=False, strip_punctuation=False) == ""


def test_non_string_values_are_stringified():
    assert normalize(42) == "42"
    assert normalize(1.5) == "15"  # the dot is punctuation


def test_normalize_is_idempotent():
    once = normalize("„Dobar DAN…“ — c\u030cevapi!")
    assert normalize(once) == once


def test_similarity_of_equal_strings_is_one():
    assert similarity("dobar dan", "dobar dan") == 1.0
    assert similarity("", "") == 1.0


def test_similarity_of_same_length_strings_with_nothing_in_common_is_zero():
    assert similarity("abc", "xyz") == 0.0


def test_similarity_is_the_contract_formula_even_below_zero():
    # 1 - 2*lev/(la+lb) as specified; very different lengths go negative (and are filtered anyway)
    assert similarity("abc", "") == -1.0
    assert similarity("da", "nešto posve drugačije") < 0.0


def test_similarity_formula_on_a_hand_computed_example():
    # kitten -> sitting: k->s, e->i, +g = 3 edits; 1 - 2*3/(6+7) = 7/13
    assert similarity("kitten", "sitting") == pytest.approx(7 / 13)
    # "dobar dan" vs "dobar dam": 1 edit; 1 - 2*1/(9+9) = 8/9
    assert similarity("dobar dan", "dobar dam") == pytest.approx(8 / 9)


def test_similarity_counts_characters_not_bytes():
    # one substitution of a 2-byte letter: 1 - 2*1/(4+4)
    assert similarity("šuma", "suma") == pytest.approx(0.75)


def test_similarity_is_symmetric():
    assert similarity("dobar dan svima", "dobro dan") == similarity("dobro dan", "dobar dan svima")


# ---------------------------------------------------------------- invisible characters (issue 16)


@pytest.mark.parametrize(
    "ch",
    [
        "\x00",
        "\x07",
        "\x7f",
        "\x9f",
        "\ufeff",
        "\u200b",
        "\u00ad",
        "\u2060",
        "\u200e",
        "\u200f",
        "\u061c",
        "\u202a",
        "\u202e",
        "\u2066",
        "\u2069",
        "\ufff9",
    ],
)
def test_control_and_invisible_format_characters_are_deleted(ch):
    assert normalize(f"nul{ch}byte") == "nulbyte"
    assert normalize(f"{ch}riječ {ch}") == "riječ"


def test_whitespace_controls_separate_words():
    assert normalize("a\tb\nc\rd\x0be\x0cf\x1cg\x85h\u2028i") == "a b c d e f g h i"


def test_zwj_and_zwnj_are_kept_where_scripts_need_them():
    persian = "می\u200cخواهم"  # "I want": the prefix joined with a ZWNJ
    assert normalize(persian) == persian
    assert normalize("क्\u200dष") == "क्\u200dष"  # Devanagari half-form


def test_nfkc_folds_fullwidth_forms_and_ligatures_only_when_asked():
    assert normalize("１２３ ﬁne") == "１２３ ﬁne"
    assert normalize("１２３ ﬁne", unicode_form="NFKC") == "123 fine"


def test_normalization_is_idempotent_where_a_deletion_joins_a_letter_and_its_accent():
    once = normalize("e!\u0301")
    assert once == "é" and normalize(once) == once


def test_lone_surrogates_cannot_break_normalization():
    assert normalize("a\ud800b") == "a\ufffdb"
