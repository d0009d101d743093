"""basic_tokenize: BERT's BasicTokenizer rules in pure Python, checked on hand-written
cases and against the package's C++ WordPieceTokenizer (whose basic step it mirrors)."""

import pytest

from electra_tf.tokenization import SPECIAL_TOKENS, WordPieceTokenizer, basic_tokenize

# Real-looking English with punctuation, numbers, accents, quotes, hyphens, odd spacing.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, World! How's it going?",
    "Albert Einstein (1879-1955) developed the theory of relativity.",
    "Steve Smith's bat cost $5.00, or 20% less than Jane's.",
    "She said, \"Don't touch that!\" and left at 3:45 p.m.",
    "The café on Rue de la Paix serves crème brûlée and a naïve rosé.",
    "Zürich, São Paulo and Kraków are cities; Reykjavík is a capital.",
    "E-mail me at someone@example.com or visit https://example.org/a_b?x=1&y=2.",
    "Well-known state-of-the-art models -- like BERT -- use WordPiece.",
    "“Curly quotes” and ‘single ones’ — with an em dash — and an en–dash.",
    "In 2019, the U.S. GDP grew by 2.3 percent [citation needed].",
    "Résumé: Pokémon fan, façade designer, coöperative señor.",
    "Wait... what?! #hashtag @mention ^caret `backtick` ~tilde |pipe",
    "Temperatures ranged from -5°C to 30°C; ±2° accuracy.",
    "The CEO's 10-K filing (pp. 12–15) lists R&D costs of €3.2M.",
    "Tabs\tand\nnewlines\r\nand  double  spaces\u00a0and non-breaking ones.",
    "He wrote 中文 and 日本 characters amid English text.",
    "Mr. O'Neill's great-grandmother arrived on 4/7/1912 at 6 a.m.",
    "Is it A+B=C or {a, b} <= c? Who knows; nobody* does!",
    "Übermensch, ÉCOLE, and ÅNGSTRÖM are UPPERCASE with accents.",
    "   leading and trailing whitespace   ",
]


@pytest.mark.parametrize("text, expected", [
    ("Hello, World!", ["hello", ",", "world", "!"]),
    ("Café naïve", ["cafe", "naive"]),
    ("Cafe\u0301 nai\u0308ve", ["cafe", "naive"]),  # decomposed accents too
    ("(1895-1943).", ["(", "1895", "-", "1943", ")", "."]),
    ("Steve Smith's", ["steve", "smith", "'", "s"]),
    ("中文abc", ["中", "文", "abc"]),
    ("$5.00", ["$", "5", ".", "00"]),
    ("a^b`c~d", ["a", "^", "b", "`", "c", "~", "d"]),  # ASCII symbols count as punctuation
    ("«hi»—“yo”", ["«", "hi", "»", "—", "“", "yo", "”"]),  # Unicode P* punctuation
    ("one\u00a0two\tthree\nfour\r\nfive\u3000six", ["one", "two", "three", "four", "five",
                                                    "six"]),
    ("a\x00b\ufffdc\x07d\u200be\x7ff\u00adg", ["abcdefg"]),  # dropped, not split on
    ("", []),
    ("   \t\n\r\u00a0 ", []),
    ("\x00\ufffd\x07", []),
])
def test_hand_written(text, expected):
    assert basic_tokenize(text) == expected


def test_casing_and_accents():
    assert basic_tokenize("Café naïve", do_lower_case=False) == ["Café", "naïve"]
    # strip_accents follows do_lower_case unless given
    assert basic_tokenize("Café naïve", do_lower_case=True, strip_accents=False) == [
        "café", "naïve"]
    assert basic_tokenize("Café naïve", do_lower_case=False, strip_accents=True) == [
        "Cafe", "naive"]
    assert basic_tokenize("Café", True, None) == basic_tokenize("Café", True, True)
    assert basic_tokenize("Café", False, None) == basic_tokenize("Café", False, False)
    assert basic_tokenize("Steve Smith's", do_lower_case=False) == ["Steve", "Smith", "'", "s"]


def _whole_word_tokenizer(texts, do_lower_case, strip_accents):
    words = {t for text in texts for t in basic_tokenize(text, do_lower_case, strip_accents)}
    vocab = list(SPECIAL_TOKENS) + sorted(words - set(SPECIAL_TOKENS))
    return WordPieceTokenizer(vocab, do_lower_case=do_lower_case, strip_accents=strip_accents)


@pytest.mark.parametrize("do_lower_case, strip_accents",
                         [(True, None), (False, None), (True, False), (False, True)])
def test_agrees_with_cpp_tokenizer(do_lower_case, strip_accents):
    """Every basic token is a whole vocab word, so the C++ WordPiece output is exactly
    its basic tokenization."""
    tokenizer = _whole_word_tokenizer(SENTENCES, do_lower_case, strip_accents)
    ids, splits = tokenizer.tokenize_batch(SENTENCES)
    for i, text in enumerate(SENTENCES):
        cpp = tokenizer.convert_ids_to_tokens(ids[splits[i]:splits[i + 1]])
        assert cpp == basic_tokenize(text, do_lower_case, strip_accents), text


# Where tf-text's C++ tokenizer departs from BERT's rules (basic_tokenize keeps BERT's):
# there lower-casing is NFKC case folding (BERT: str.lower, no NFKC); control and format
# characters (and NUL) split words (BERT drops them, joining the pieces); U+FFFD and
# private-use characters are kept (BERT drops them). Uncased, NFKC folding also deletes
# format characters such as the soft hyphen, so those agree again.
# (do_lower_case, text, BERT's tokens, the C++ tokenizer's tokens)
KNOWN_DEPARTURES = [
    (True, "Wait\u2026 what", ["wait", "\u2026", "what"], ["wait", ".", ".", ".", "what"]),
    (True, "\ufb01ne", ["\ufb01ne"], ["fine"]),
    (True, "Stra\u00dfe", ["stra\u00dfe"], ["strasse"]),
    (True, "\u039f\u0394\u039f\u03a3", ["\u03bf\u03b4\u03bf\u03c2"],
     ["\u03bf\u03b4\u03bf\u03c3"]),
    (True, "\u00bd \u2122", ["\u00bd", "\u2122"], ["1\u20442", "tm"]),
    (True, "\uff21\uff22\uff23", ["\uff41\uff42\uff43"], ["abc"]),
    (False, "co\u00adoperate", ["cooperate"], ["co", "operate"]),
    (False, "a\u200bb", ["ab"], ["a", "b"]),
    (True, "a\x85b", ["ab"], ["a", "b"]),
    (False, "a\x0bb", ["ab"], ["a", "b"]),
    (False, "d\x00e", ["de"], ["d", "e"]),
    (True, "e\ufffdf", ["ef"], ["e\ufffdf"]),
    (False, "a\ue000b", ["ab"], ["a\ue000b"]),
]


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_known_cpp_departures(do_lower_case):
    """Pins both sides of each known difference, so a change in either shows up here."""
    cases = [c for c in KNOWN_DEPARTURES if c[0] == do_lower_case]
    words = {t for _, _, bert, cpp in cases for t in bert + cpp}
    tokenizer = WordPieceTokenizer(list(SPECIAL_TOKENS) + sorted(words),
                                   do_lower_case=do_lower_case)
    ids, splits = tokenizer.tokenize_batch([text for _, text, _, _ in cases])
    for i, (_, text, bert, cpp) in enumerate(cases):
        assert basic_tokenize(text, do_lower_case) == bert, repr(text)
        assert tokenizer.convert_ids_to_tokens(ids[splits[i]:splits[i + 1]]) == cpp, repr(text)
