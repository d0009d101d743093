"""Vocabulary I/O and the WordPiece tokenizer (tensorflow-text's fast C++ WordPiece).

The vocab file is BERT's ``vocab.txt``: one token per line, the line number is the id.
Special tokens sit where BERT uncased has them ([PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
[MASK]=103) when the vocab comes from :mod:`data_prep.build_vocab` or Google; any vocab
that has the five special tokens somewhere works.
"""

from __future__ import annotations

import dataclasses
import unicodedata

import numpy as np
import tensorflow as tf

from electra_tf import files

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BERT_SPECIAL_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103}


class VocabError(ValueError):
    """A vocab file that cannot be used; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


def load_vocab(path: str) -> list[str]:
    """Tokens of a vocab.txt, checked: UTF-8, not empty, no empty lines or duplicates, the
    special tokens present."""
    if files.isdir(path):
        raise VocabError(f"{path}: a folder; expected a vocab file, one token per line")
    if not files.isfile(path):
        raise VocabError(f"{path}: no such vocab file")
    tokens: list[str] = []
    seen: dict[str, int] = {}
    try:
        with files.open_file(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                token = line.rstrip("\n").rstrip("\r")
                if not token.strip():
                    raise VocabError(f"{path}: line {line_no}: empty line; expected one "
                                     f"token per line")
                if token in seen:
                    raise VocabError(f"{path}: line {line_no}: duplicate token {token!r} "
                                     f"(first on line {seen[token]}); expected each token once")
                seen[token] = line_no
                tokens.append(token)
    except UnicodeDecodeError:
        raise VocabError(files.not_utf8(path)) from None
    if not tokens:
        raise VocabError(f"{path}: empty vocab file; expected one token per line")
    missing = [t for t in SPECIAL_TOKENS if t not in seen]
    if missing:
        raise VocabError(f"{path}: lacks the special token(s) {', '.join(missing)} "
                         f"(expected {', '.join(SPECIAL_TOKENS)})")
    return tokens


def special_ids(vocab: list[str]) -> SpecialIds:
    index = {token: i for i, token in enumerate(vocab)}
    return SpecialIds(*(index[t] for t in SPECIAL_TOKENS))


class WordPieceTokenizer:
    """Text -> WordPiece ids in C++ (tf-text), a batch of strings at a time.

    BERT's basic tokenization (whitespace and punctuation splitting, CJK characters) and
    greedy longest-match WordPiece. ``do_lower_case`` lower-cases, ``strip_accents``
    removes accents (NFD, drop combining marks; default: as ``do_lower_case``, like the
    original) — the original's two flags.
    """

    def __init__(self, vocab: list[str] | str, do_lower_case: bool = True,
                 strip_accents: bool | None = None):
        import tensorflow_text as tf_text  # its ops load only when a tokenizer is made

        self.vocab = load_vocab(vocab) if isinstance(vocab, str) else list(vocab)
        self.special = special_ids(self.vocab)
        self.do_lower_case = do_lower_case
        self.strip_accents = do_lower_case if strip_accents is None else strip_accents
        both = self.do_lower_case and self.strip_accents
        # The original allows words of up to 200 characters before [UNK].
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=self.vocab, token_out_type=tf.int64, unknown_token="[UNK]",
            lower_case_nfd_strip_accents=both, max_bytes_per_word=400)
        self._tf = tf
        self._tf_text = tf_text
        # autograph off: the graph has no Python control flow, and converting it costs
        # more than tokenizing a million tokens.
        self._tokenize = tf.function(
            self._tokenize_graph, input_signature=[tf.TensorSpec([None], tf.string)],
            autograph=False)

    def _tokenize_graph(self, texts):
        tf, tf_text = self._tf, self._tf_text
        if not (self.do_lower_case and self.strip_accents):
            if self.do_lower_case:
                texts = tf_text.case_fold_utf8(texts)
            if self.strip_accents:
                texts = tf.strings.regex_replace(
                    tf_text.normalize_utf8(texts, "NFD"), r"\p{Mn}", "")
        ragged = self._tokenizer.tokenize(texts)
        if ragged.ragged_rank > 1:
            ragged = ragged.merge_dims(-2, -1)
        return ragged.flat_values, ragged.row_splits

    def tokenize_batch(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(flat ids, row splits): sentence i is ids[splits[i]:splits[i+1]]."""
        if not texts:
            return np.zeros(0, np.int64), np.zeros(1, np.int64)
        flat, splits = self._tokenize(self._tf.constant(texts))
        return flat.numpy(), splits.numpy()

    def tokenize_each(self, texts: list[str]) -> list[list[int]]:
        """The ids of each text, tokenized in one batch."""
        flat, splits = self.tokenize_batch(texts)
        return [flat[splits[i]:splits[i + 1]].tolist() for i in range(len(texts))]

    def tokenize(self, text: str) -> list[int]:
        flat, _ = self.tokenize_batch([text])
        return flat.tolist()

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.vocab[i] for i in ids]


# BERT's CJK ideograph blocks: each such character becomes a word of its own.
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
               (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
# ASCII symbols BERT counts as punctuation although Unicode does not (e.g. "$", "^", "`").
_ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if any(lo <= cp <= hi for lo, hi in _ASCII_PUNCT_RANGES):
        return True
    return unicodedata.category(char).startswith("P")


def _clean_char(char: str) -> str:
    """The empty string for a character BERT drops, " " for whitespace, else the character."""
    if char in " \t\n\r":
        return " "
    cp = ord(char)
    category = unicodedata.category(char)
    if cp == 0 or cp == 0xFFFD or category.startswith("C"):
        return ""
    return " " if category == "Zs" else char


def _split_punctuation(word: str) -> list[str]:
    pieces: list[str] = []
    run: list[str] = []
    for char in word:
        if _is_punctuation(char):
            if run:
                pieces.append("".join(run))
                run = []
            pieces.append(char)
        else:
            run.append(char)
    if run:
        pieces.append("".join(run))
    return pieces


def basic_tokenize(text: str, do_lower_case: bool = True,
                   strip_accents: bool | None = None) -> list[str]:
    """BERT's basic tokenization in pure Python: the words WordPiece then splits further.

    The same rules as the original's ``BasicTokenizer`` and as the basic step of
    :class:`WordPieceTokenizer` in this module: control characters, NUL and U+FFFD are
    dropped and whitespace becomes a space; CJK ideographs stand alone; the text is split
    on whitespace; each word is lower-cased (``do_lower_case``) and has its accents
    removed (``strip_accents``: NFD, combining marks dropped; default: as
    ``do_lower_case``); then every punctuation character (Unicode ``P*`` or ASCII
    symbols such as ``$``) becomes a token of its own.

    For mapping WordPiece predictions back onto the original text, as the original's
    SQuAD decoding does with ``BasicTokenizer``: these tokens are what a prediction's
    WordPieces join into, before they are aligned with the whitespace-separated words.

    The C++ tokenizer agrees on ordinary text but not on every character: it lower-cases
    by NFKC case folding ("…" -> "...", "ß" -> "ss", "ﬁ" -> "fi"), splits words at
    control/format characters where BERT drops them, and keeps U+FFFD and private-use
    characters (tests/test_basic_tokenize.py lists the cases).
    """
    if strip_accents is None:
        strip_accents = do_lower_case
    cleaned = []
    for char in text:
        char = _clean_char(char)
        cleaned.append(f" {char} " if char and _is_cjk(ord(char)) else char)
    tokens: list[str] = []
    for word in "".join(cleaned).split():
        if do_lower_case:
            word = word.lower()
        if strip_accents:
            word = "".join(c for c in unicodedata.normalize("NFD", word)
                           if unicodedata.category(c) != "Mn")
        tokens.extend(_split_punctuation(word))
    return [t for t in tokens if t]
