"""Hostile input, a table per reader and per command: broken files stop with one line that
names the file, the line (or record) and what was expected, and nothing is written.
Inputs that are odd but valid (stray quotes, one enormous line) are read whole."""

from __future__ import annotations

import bz2
import json
import os
import random
import re
import subprocess
import sys

import pytest
from absl import flags

from data_prep import build_pretraining_dataset, build_tlm_index, build_vocab, readers
from electra_tf import cli, run_finetuning, run_predict, run_pretraining, run_tlm
from electra_tf.finetuning import serving
from electra_tf.tasks import readers as task_readers
from electra_tf.tokenization import SPECIAL_TOKENS, VocabError, load_vocab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Binary files: a real signature, then a few KB of noise (the signature decides where
# decoding fails, so the expected line is exact).
NOISE = random.Random(0).randbytes(4096)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + NOISE
GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + NOISE
LATIN1 = "Line one.\nLine two.\nCaf\xe9 au lait.\n".encode("latin-1")  # bad byte: line 3
UTF16 = "Plain words, saved as UTF-16.\n".encode("utf-16-le")  # no BOM: valid UTF-8
VOCAB = "\n".join(SPECIAL_TOKENS) + "\n"


def half_dump(sample_paths) -> bytes:
    """The first half of the sample Wikipedia dump's bytes (a cut-off download)."""
    with open(sample_paths["enwiki_dump"], "rb") as f:
        data = f.read()
    return data[:len(data) // 2]


HALF_DUMP_ERROR = ("{tmp}/half.xml.bz2: the compressed stream ends early, after page 115 "
                   "('Auteur Theory Film'); expected a complete .bz2 file (a truncated "
                   "download?)")


def write_files(root, written: dict, sample_paths=None) -> None:
    """Write ``{relative path: bytes | str | callable(sample_paths) -> bytes}`` under
    `root`; a value of None makes a folder."""
    for name, data in written.items():
        path = root / name
        if data is None:
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(data):
            data = data(sample_paths)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def all_files(root) -> set[str]:
    """Every file under `root`, hidden ones (temporary names) included."""
    return {os.path.relpath(os.path.join(folder, name), root)
            for folder, _, names in os.walk(root) for name in names}


def fault_name(request, prefix: str = "") -> str:
    """The case's id as the fault table's words, without `prefix` (the stage):
    ``text-invalid-utf8`` -> ``invalid utf8``."""
    return request.node.callspec.id.removeprefix(f"{prefix}-").replace("-", " ")


def shown(message: str, tmp_path) -> str:
    """`message` as the fault table shows it: paths relative to the test's folder."""
    return message.replace(f"{tmp_path}/", "")


def error_of(read, kind=ValueError) -> str:
    """The one-line message of the `kind` error that `read()` raises."""
    with pytest.raises(kind) as error:
        read()
    message = str(error.value)
    assert "\n" not in message, message
    return message


# ----------------------------------------------------------------------------- corpora

CORPUS_CASES = [
    pytest.param("text", {"c.txt": LATIN1}, "c.txt",
                 "{tmp}/c.txt: line 3: not UTF-8 text (invalid continuation byte at byte 23)",
                 id="text-invalid-utf8"),
    # The text decoder reads ahead: the bad byte's own line and offset are still named.
    pytest.param("text", {"c.txt": b"A plain line of text.\r\n" * 60000 + b"caf\xe9\n"},
                 "c.txt", "{tmp}/c.txt: line 60001: not UTF-8 text (invalid continuation "
                 "byte at byte 1380003)", id="text-invalid-utf8-far-in"),
    pytest.param("text", {"c.png": PNG}, "c.png",
                 "{tmp}/c.png: line 1: not UTF-8 text (invalid start byte at byte 0)",
                 id="text-png"),
    pytest.param("text", {"c.gz": GZIP}, "c.gz",
                 "{tmp}/c.gz: line 1: not UTF-8 text (invalid start byte at byte 1)",
                 id="text-gzip"),
    pytest.param("text", {"c.txt": UTF16}, "c.txt",
                 "{tmp}/c.txt: line 1: a NUL character at column 2; expected UTF-8 text, "
                 "not binary or UTF-16", id="text-utf16"),
    pytest.param("text", {"c.txt": b""}, "c.txt",
                 "{tmp}/c.txt: empty file; expected text, blank lines between documents",
                 id="text-empty-file"),
    pytest.param("text", {}, "missing.txt", "{tmp}/missing.txt: no such file or folder",
                 id="text-missing"),
    pytest.param("text", {"folder": None}, "folder",
                 "{tmp}/folder: folder holds no corpus files", id="text-empty-folder"),
    pytest.param("wikiextractor", {"wiki_00": '<doc id="1" title="T">\ntext\n'}, "wiki_00",
                 "{tmp}/wiki_00: ends inside a <doc> block (opened at line 1); expected "
                 "</doc> (a truncated file?)", id="wikiextractor-unclosed-doc"),
    pytest.param("wikiextractor", {"wiki_00": '<doc id="1" title="A">\ntext\n<doc id="2">\n'},
                 "wiki_00", "{tmp}/wiki_00: line 3: <doc> inside the <doc> of line 1; "
                 "expected </doc> first", id="wikiextractor-nested-doc"),
    pytest.param("wikiextractor", {"wiki_00": "</doc>\n"}, "wiki_00",
                 "{tmp}/wiki_00: line 1: </doc> without <doc>; expected WikiExtractor output "
                 "(<doc> blocks or JSON lines)", id="wikiextractor-close-without-open"),
    pytest.param("wikiextractor", {"wiki_00": "Some text.\n"}, "wiki_00",
                 "{tmp}/wiki_00: line 1: text outside <doc> blocks; expected WikiExtractor "
                 "output (<doc> blocks or JSON lines)", id="wikiextractor-plain-text"),
    pytest.param("wikiextractor", {"wiki_00": '{"text": "ok"}\n{"text": "cut'}, "wiki_00",
                 "{tmp}/wiki_00: line 2: not valid JSON (Unterminated string starting at: "
                 "column 10); expected a WikiExtractor JSON record with a 'text' string",
                 id="wikiextractor-bad-json"),
    pytest.param("wikiextractor", {"wiki_00": '{"title": "A", "text": ["x"]}\n'}, "wiki_00",
                 "{tmp}/wiki_00: line 1: 'text' of type list; expected a WikiExtractor JSON "
                 "record with a 'text' string", id="wikiextractor-text-not-a-string"),
    pytest.param("wikiextractor", {"wiki_00": '{"title": "A"}\n'}, "wiki_00",
                 "{tmp}/wiki_00: line 1: no 'text'; expected a WikiExtractor JSON record "
                 "with a 'text' string", id="wikiextractor-no-text"),
    pytest.param("wikipedia", {"half.xml.bz2": half_dump}, "half.xml.bz2", HALF_DUMP_ERROR,
                 id="wikipedia-truncated-bz2"),
    pytest.param("wikipedia", {"d.xml.bz2": b"this is not bzip2"}, "d.xml.bz2",
                 "{tmp}/d.xml.bz2: cannot read (Invalid data stream); expected a MediaWiki "
                 "XML dump (.xml or .xml.bz2)", id="wikipedia-not-bz2"),
    pytest.param("wikipedia", {"d.xml.bz2": b""}, "d.xml.bz2",
                 "{tmp}/d.xml.bz2: empty file; expected a MediaWiki XML dump (.xml or "
                 ".xml.bz2)", id="wikipedia-empty-file"),
    pytest.param("wikipedia", {"d.xml": "<mediawiki><page><title>x</title>\n<ns>0</oops>"},
                 "d.xml", "{tmp}/d.xml: line 2, column 7: not valid XML (mismatched tag); "
                 "expected a MediaWiki XML dump (.xml or .xml.bz2)", id="wikipedia-bad-xml"),
    pytest.param("wikipedia", {"d.xml": PNG}, "d.xml",
                 "{tmp}/d.xml: line 1, column 0: not valid XML (not well-formed (invalid "
                 "token)); expected a MediaWiki XML dump (.xml or .xml.bz2)",
                 id="wikipedia-png"),
    pytest.param("wikipedia", {"d.xml.bz2": bz2.compress(b"<html><body/></html>")},
                 "d.xml.bz2", "{tmp}/d.xml.bz2: the root element is <html>; expected a "
                 "MediaWiki XML dump (.xml or .xml.bz2), whose root is <mediawiki>",
                 id="wikipedia-not-a-dump"),
    pytest.param("wikipedia", {"d.xml": "<mediawiki><page><title>A</title><ns>zero</ns>"
                               "</page></mediawiki>"}, "d.xml",
                 "{tmp}/d.xml: page 1 ('A'): <ns> is 'zero'; expected a number",
                 id="wikipedia-bad-namespace"),
    pytest.param("wikipedia", {"dump": None}, "dump",
                 "{tmp}/dump: a folder; expected a MediaWiki XML dump (.xml or .xml.bz2)",
                 id="wikipedia-folder"),
    pytest.param("books", {"books/a.txt": "A good book.\n", "books/b.txt": LATIN1}, "books",
                 "{tmp}/books/b.txt: line 3: not UTF-8 text (invalid continuation byte at "
                 "byte 23)", id="books-invalid-utf8"),
    pytest.param("books", {"book.txt": "A book.\n"}, "book.txt",
                 "{tmp}/book.txt: not a folder; expected a folder of .txt books",
                 id="books-a-file"),
    pytest.param("books", {"books/a.pdf": PNG}, "books",
                 "{tmp}/books: folder holds no corpus files (.txt)", id="books-no-txt"),
]


@pytest.mark.parametrize("fmt, written, target, expected", CORPUS_CASES)
def test_corpus_readers(fmt, written, target, expected, request, tmp_path, sample_paths,
                       fault_report):
    write_files(tmp_path, written, sample_paths)

    def read():
        # The raw readers: where every input error comes from (cleaning, which they
        # skip, cannot fail on input).
        name, path = readers.parse_spec(f"{fmt}:{tmp_path / target}")
        for _ in readers.RAW_READERS[name](path, readers.ReadStats()):
            pass

    message = error_of(read, readers.CorpusError)
    assert message == expected.format(tmp=tmp_path)
    fault_report(f"{fmt} corpus reader", fault_name(request, fmt), "nothing read",
                 shown(message, tmp_path))


@pytest.mark.parametrize("spec, expected", [
    ("pdf:corpus.pdf", "corpus 'pdf:corpus.pdf': unknown format 'pdf'; allowed: wikipedia, "
                       "wikiextractor, books, text, tfds"),
    ("corpus.txt", "corpus 'corpus.txt': expected FORMAT:PATH with FORMAT one of wikipedia, "
                   "wikiextractor, books, text, tfds"),
])
def test_corpus_specs(spec, expected, fault_report):
    message = error_of(lambda: list(readers.read_corpora(["text:a.txt", spec])),
                       readers.CorpusError)
    assert message == expected
    fault_report("--corpus", f"--corpus={spec}", "nothing read", message)


def test_one_enormous_line_is_read_whole_up_to_a_limit(tmp_path, sample_paths, monkeypatch,
                                                       fault_report):
    """5 MB of prose without a line break is one document, split into its sentences,
    and becomes pretraining data; past MAX_LINE_CHARS it is refused rather than held in
    memory whole."""
    sentence = "The quick brown fox jumps over the lazy dog and then it ran away. "
    corpus = tmp_path / "one_line.txt"
    corpus.write_text(sentence * (5_000_000 // len(sentence)))
    stats = readers.ReadStats()
    documents = list(readers.read_plain_text(str(corpus), stats))
    assert len(documents) == 1 and stats.sentences == 5_000_000 // len(sentence)
    summary = build_pretraining_dataset.build_dataset(
        [f"text:{corpus}"], sample_paths["vocab"], str(tmp_path / "out"), 64, num_shards=1,
        progress=False)
    assert summary["documents"] == 1 and summary["examples"] > 10_000

    monkeypatch.setattr(readers, "MAX_LINE_CHARS", 1 << 20)
    message = error_of(lambda: list(readers.read_plain_text(str(corpus))), readers.CorpusError)
    assert message == (f"{corpus}: line 1: longer than 1,048,576 characters; expected text "
                       f"with line breaks")
    fault_report("text corpus reader", "5 MB on one line", "read whole; over the limit, "
                 "nothing read", shown(message, tmp_path))


# ----------------------------------------------------------------------------- vocab

VOCAB_CASES = [
    pytest.param("[PAD]\n[UNK]\nhello\n", "{tmp}/vocab.txt: lacks the special token(s) [CLS], "
                 "[SEP], [MASK] (expected [PAD], [UNK], [CLS], [SEP], [MASK])",
                 id="no-special-tokens"),
    pytest.param(VOCAB + "hello\nworld\nhello\n", "{tmp}/vocab.txt: line 8: duplicate token "
                 "'hello' (first on line 6); expected each token once", id="duplicate"),
    pytest.param("[PAD]\n\n[UNK]\n", "{tmp}/vocab.txt: line 2: empty line; expected one token "
                 "per line", id="empty-line"),
    pytest.param(VOCAB + "\n", "{tmp}/vocab.txt: line 6: empty line; expected one token per "
                 "line", id="blank-last-line"),
    pytest.param(VOCAB.encode() + b"caf\xe9\n", "{tmp}/vocab.txt: line 6: not UTF-8 text "
                 "(invalid continuation byte at byte 34)", id="invalid-utf8"),
    pytest.param(GZIP, "{tmp}/vocab.txt: line 1: not UTF-8 text (invalid start byte at byte 1)",
                 id="gzip"),
    pytest.param(b"", "{tmp}/vocab.txt: empty vocab file; expected one token per line",
                 id="empty-file"),
    pytest.param(None, "{tmp}/vocab.txt: a folder; expected a vocab file, one token per line",
                 id="a-folder"),
]


@pytest.mark.parametrize("content, expected", VOCAB_CASES)
def test_vocab(content, expected, request, tmp_path, fault_report):
    write_files(tmp_path, {"vocab.txt": content})
    message = error_of(lambda: load_vocab(str(tmp_path / "vocab.txt")), VocabError)
    assert message == expected.format(tmp=tmp_path)
    fault_report("vocab", fault_name(request), "nothing read", shown(message, tmp_path))


# ----------------------------------------------------------------------------- GLUE

SST_HEADER = "sentence\tlabel\n"
RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
STS_HEADER = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\t"
              "sentence2\tscore\n")

GLUE_CASES = [
    pytest.param("sst2", "SST-2", SST_HEADER.encode() + b"fine\t1\ncaf\xe9\t0\n",
                 "SST-2/train.tsv:3: not UTF-8 text (invalid continuation byte at byte 25)",
                 id="invalid-utf8"),
    pytest.param("sst2", "SST-2", PNG, "SST-2/train.tsv:1: not UTF-8 text (invalid start "
                 "byte at byte 0)", id="png"),
    pytest.param("sst2", "SST-2", "", "SST-2/train.tsv: no examples; expected tab-separated "
                 "rows after a header row (sst2 train split)", id="empty-file"),
    pytest.param("qnli", "QNLI", "index\tquestion\tsentence\tlabel\n", "QNLI/train.tsv: no "
                 "examples; expected tab-separated rows after a header row (qnli train "
                 "split)", id="header-only"),
    pytest.param("sst2", "SST-2", SST_HEADER + "fine\t1\t\n", "SST-2/train.tsv:2: expected 2 "
                 "tab-separated fields (as the header), got 3", id="extra-tab"),
    pytest.param("mrpc", "MRPC", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                 "1\t1\t2\ta\tb\n0\t3\t4\tc\n", "MRPC/train.tsv:3: expected 5 tab-separated "
                 "fields (as the header), got 4", id="missing-tab"),
    pytest.param("cola", "cola", "gj04\t1\t\tfine\ngj04\t1\tno star column\n",
                 "cola/train.tsv:2: expected 4 tab-separated fields, got 3",
                 id="missing-tab-no-header"),
    pytest.param("rte", "RTE", RTE_HEADER + "0\ta\tb\tentailed\n", "RTE/train.tsv:2: label "
                 "'entailed' is not one of rte's labels ['entailment', 'not_entailment']",
                 id="wrong-label"),
    pytest.param("sst2", "SST-2", SST_HEADER + "ok\t1\nbad\tpositive\n", "SST-2/train.tsv:3: "
                 "label 'positive' is not one of sst2's labels ['0', '1']",
                 id="label-name-for-id"),
    pytest.param("rte", "RTE", "index\tsentence1\tlabel\n0\ta\tentailment\n",
                 "RTE/train.tsv:1: the header has 3 tab-separated fields; expected at least 4 "
                 "(the rte train layout)", id="missing-header-column"),
    pytest.param("sst2_mr", "sst2_mr", "text\tlabel\nfine\t1\n", "sst2_mr/train.tsv:1: header "
                 "has no 'sentence' column (header: ['text', 'label'])",
                 id="missing-named-column"),
    pytest.param("stsb", "STS-B", STS_HEADER + "0\tg\tf\ty\to\ts\ts\ta\tb\tn/a\n",
                 "STS-B/train.tsv:2: expected a numeric score for stsb, got 'n/a'",
                 id="score-not-a-number"),
    pytest.param("stsb", "STS-B", STS_HEADER + "0\tg\tf\ty\to\ts\ts\ta\tb\tnan\n",
                 "STS-B/train.tsv:2: expected a numeric score for stsb, got 'nan'",
                 id="score-nan"),
]


@pytest.mark.parametrize("task, folder, content, expected", GLUE_CASES)
def test_glue_reader(task, folder, content, expected, request, tmp_path, fault_report):
    write_files(tmp_path, {f"finetuning_data/{folder}/train.tsv": content})
    message = error_of(lambda: task_readers.read_glue(task, str(tmp_path), "train"))
    assert message == f"{tmp_path}/finetuning_data/{expected}"
    fault_report("GLUE reader", fault_name(request), "nothing read", shown(message, tmp_path))


def test_glue_text_with_stray_quotes_and_a_5_mb_field_is_read_as_written(tmp_path):
    long_text = "word " * 1_000_000
    write_files(tmp_path, {"finetuning_data/SST-2/train.tsv": SST_HEADER + 'he said "hi\t1\n'
                           '"quoted" and "open\t0\n' + long_text + "\t1\n"})
    examples = task_readers.read_glue("sst2", str(tmp_path), "train")
    assert [(e.text_a, e.label) for e in examples] == [
        ('he said "hi', "1"), ('"quoted" and "open', "0"), (long_text, "1")]


# ----------------------------------------------------------------------------- RACE

RACE = {"article": "A short article.", "questions": ["Which?"], "options": [list("abcd")],
        "answers": ["A"], "id": "high1.txt"}


def race(**changes) -> str:
    return json.dumps({k: v for k, v in {**RACE, **changes}.items() if v is not ...})


RACE_CASES = [
    pytest.param('{"article": "x",\n "questions": [', "1.txt:2: not valid JSON (Expecting "
                 "value: column 16); expected a json object with article, questions, "
                 "options and answers", id="invalid-json"),
    pytest.param("", "1.txt: empty file; expected a json object with article, questions, "
                 "options and answers", id="empty-file"),
    pytest.param(b'{"article": "caf\xe9"}', "1.txt:1: not UTF-8 text (invalid continuation "
                 "byte at byte 16)", id="invalid-utf8"),
    pytest.param(PNG, "1.txt:1: not UTF-8 text (invalid start byte at byte 0)", id="png"),
    pytest.param("[1, 2]", "1.txt: a list; expected a json object with article, questions, "
                 "options and answers", id="not-an-object"),
    pytest.param(race(options=...), "1.txt: missing key 'options'; expected a json object "
                 "with article, questions, options and answers", id="missing-options"),
    pytest.param(race(article=...), "1.txt: missing key 'article'; expected a json object "
                 "with article, questions, options and answers", id="missing-article"),
    pytest.param(race(answers="A"), "1.txt: 'answers' is a string; expected a list of letters "
                 "A-D, one per question", id="answers-not-a-list"),
    pytest.param(race(answers=0), "1.txt: 'answers' is a number; expected a list of letters "
                 "A-D, one per question", id="answers-a-number"),
    pytest.param(race(questions="Which?"), "1.txt: 'questions' is a string; expected a list "
                 "of question strings", id="questions-not-a-list"),
    pytest.param(race(options=None), "1.txt: 'options' is null; expected a list of 4 options "
                 "per question", id="options-null"),
    pytest.param(race(options=["abcd"]), "1.txt: question index 0: its options entry is a "
                 "string; expected a list of 4 strings", id="options-flat"),
    pytest.param(race(options=[[1, 2, 3, 4]]), "1.txt: question index 0: option 0 is a "
                 "number; expected a string", id="option-a-number"),
    pytest.param(race(article=7), "1.txt: 'article' is a number; expected a string",
                 id="article-a-number"),
    pytest.param(race(questions=[["Which?"]]), "1.txt: question index 0: the question is a "
                 "list; expected a string", id="question-a-list"),
    pytest.param(race(questions=["q0", "q1"], options=[list("abcd"), list("abc")],
                      answers=["A", "B"]), "1.txt: question index 1: expected 4 options, got 3",
                 id="three-options"),
    pytest.param(race(questions=["q0", "q1"]), "1.txt: 2 questions, 1 option lists and 1 "
                 "answers; expected one of each per question", id="count-mismatch"),
    pytest.param(race(answers=["E"]), "1.txt: question index 0: answer 'E' is not one of A, "
                 "B, C, D", id="answer-out-of-range"),
    pytest.param(race(answers=[0]), "1.txt: question index 0: answer 0 is not one of A, B, "
                 "C, D", id="answer-an-index"),
]


@pytest.mark.parametrize("content, expected", RACE_CASES)
def test_race_reader(content, expected, request, tmp_path, fault_report):
    write_files(tmp_path, {"train/high/1.txt": content})
    message = error_of(lambda: task_readers.read_race(str(tmp_path), "train", "high"))
    assert message == f"{tmp_path}/train/high/{expected}"
    fault_report("RACE reader", fault_name(request), "nothing read", shown(message, tmp_path))


# ----------------------------------------------------------------------------- POS

POS_CASES = [
    pytest.param("train.txt", "Pierre/NNP Vinken/NNP\nsaid/VBD hello ./.\n", {},
                 "train.txt:2: token 'hello' is not word/TAG", id="slash-token-without-tag"),
    pytest.param("train.txt", "Pierre/NNP Vinken/NNP ,/, 61/CD years/NNS\nold/JJ ./.\n",
                 {"fmt": "conll"}, "train.txt:2: 2 field(s); expected 5, as on line 1",
                 id="slash-read-as-conll"),
    pytest.param("train.txt", "/NN a/DT\n", {}, "train.txt:1: token '/NN' is not word/TAG",
                 id="slash-tag-without-word"),
    pytest.param("dev.conll", "Pierre\tNNP\nVinken\n", {}, "dev.conll:2: expected a word in "
                 "column 0 and a tag in the last column, got 1 field(s)",
                 id="conll-token-without-tag"),
    pytest.param("dev.conll", "Pierre\tNNP\nVinken\n", {"tag_column": 1}, "dev.conll:2: "
                 "expected a word in column 0 and a tag in column 1, got 1 field(s)",
                 id="conll-token-without-tag-column-1"),
    pytest.param("dev.conll", "Confidence NN B-NP\nin IN\n", {}, "dev.conll:2: 2 field(s); "
                 "expected 3, as on line 1", id="conll-short-line"),
    pytest.param("dev.conll", "Pierre\t\n", {}, "dev.conll:1: empty word or tag in "
                 "'Pierre\\t'", id="conll-empty-tag"),
    pytest.param("dev.conll", "\n\n", {}, "dev.conll: no tagged sentences (read as conll); "
                 "expected word/TAG tokens, CoNLL columns or a treebank .pos file",
                 id="blank-lines"),
    pytest.param("dev.txt", "", {}, "dev.txt: no tagged sentences (read as conll); expected "
                 "word/TAG tokens, CoNLL columns or a treebank .pos file", id="empty-file"),
    pytest.param("wsj_0001.pos", "[ Pierre/NNP ]\n Vinken ]\n", {}, "wsj_0001.pos:2: token "
                 "'Vinken' is not word/TAG", id="pos-token-without-tag"),
    pytest.param("wsj_0001.pos", "[ Pierre/NNP Vinken/NNP\n,/, ./.\n=======\n", {},
                 "wsj_0001.pos:1: '[' not closed before the separator at line 3",
                 id="pos-unclosed-chunk"),
    pytest.param("train.txt", b"The/DT caf\xe9/NN\n", {}, "train.txt:1: not UTF-8 text "
                 "(invalid continuation byte at byte 10)", id="invalid-utf8"),
    pytest.param("train.txt", GZIP, {}, "train.txt:1: not UTF-8 text (invalid start byte at "
                 "byte 1)", id="gzip"),
]


@pytest.mark.parametrize("name, content, options, expected", POS_CASES)
def test_pos_reader(name, content, options, expected, request, tmp_path, fault_report):
    write_files(tmp_path, {name: content})
    message = error_of(lambda: task_readers.read_tagged(str(tmp_path / name), **options))
    assert message == f"{tmp_path}/{expected}"
    fault_report("POS reader", fault_name(request), "nothing read", shown(message, tmp_path))


# ----------------------------------------------------------------------------- QA

def squad(mutate=None) -> str:
    """A valid SQuAD 2.0 file of two questions, changed by `mutate` (in place)."""
    context = "Rollo led the Norse raiders."
    data = {"version": "v2.0", "data": [{"title": "Normans", "paragraphs": [{
        "context": context, "qas": [
            {"id": "q1", "question": "Who led them?", "is_impossible": False,
             "answers": [{"text": "Rollo", "answer_start": 0}]},
            {"id": "q2", "question": "Who followed?", "is_impossible": True, "answers": []}]}]}]}
    if mutate:
        mutate(data)
    return json.dumps(data, indent=1)


def _qa(data, **changes):
    data["data"][0]["paragraphs"][0]["qas"][0].update(changes)


QA_CASES = [
    pytest.param("train.json", squad()[:60], "train.json:6: not valid JSON (Expecting "
                 "property name enclosed in double quotes)", id="squad-cut-off"),
    pytest.param("train.json", "[]", "train.json: expected SQuAD JSON, an object with a 'data' "
                 "list", id="squad-not-an-object"),
    pytest.param("train.json", squad(lambda d: d["data"][0].pop("paragraphs")),
                 "train.json: data[0]: expected an object with a 'paragraphs' list",
                 id="squad-no-paragraphs"),
    pytest.param("train.json", squad(lambda d: d["data"][0]["paragraphs"][0].pop("context")),
                 "train.json: data[0].paragraphs[0]: no 'context'", id="squad-no-context"),
    pytest.param("train.json", squad(lambda d: _qa(d, question=7)), "train.json: "
                 "data[0].paragraphs[0].qas[0]: 'question' is int, expected a string",
                 id="squad-question-a-number"),
    pytest.param("train.json", squad(lambda d: _qa(d, answers="Rollo")), "train.json: "
                 "data[0].paragraphs[0].qas[0]: 'answers' is str, expected a list",
                 id="squad-answers-a-string"),
    pytest.param("train.json", squad(lambda d: _qa(d, answers=[{"text": "Rollo",
                                                                "answer_start": 99}])),
                 "train.json: data[0].paragraphs[0].qas[0].answers[0]: answer start 99 is not "
                 "a character offset in the context (0..27)", id="squad-start-past-the-end"),
    pytest.param("train.json", squad(lambda d: _qa(d, answers=[{"text": "Rollo"}])),
                 "train.json: data[0].paragraphs[0].qas[0].answers[0]: answer start None is "
                 "not a character offset in the context (0..27)", id="squad-no-start"),
    pytest.param("train.json", squad(lambda d: _qa(d, id="q2")), "train.json: question id "
                 "'q2' appears twice", id="squad-duplicate-id"),
    pytest.param("train.json", squad(lambda d: _qa(d, id=None) or d["data"][0]["paragraphs"][0][
                 "qas"][0].pop("id")), "train.json: data[0].paragraphs[0].qas[0]: needs "
                 "'question' and 'id'", id="squad-no-id"),
    pytest.param("train.json", b'{"data": ["caf\xe9"]}', "train.json:1: not UTF-8 text "
                 "(invalid continuation byte at byte 14)", id="squad-invalid-utf8"),
    pytest.param("train.json", GZIP, "train.json:1: not UTF-8 text (invalid start byte at "
                 "byte 1)", id="squad-gzip-named-json"),
    pytest.param("dev.jsonl", '{"header": {}}\n{"context": "x", "qas": [\n',
                 "dev.jsonl:2: not valid JSON (Expecting value)", id="mrqa-cut-off-line"),
    pytest.param("dev.jsonl", '{"header": {}}\n{"context": "x", "qas": [{"qid": "a", '
                 '"question": "?", "answers": ["x"], "detected_answers": [{"text": "x"}]}]}\n',
                 "dev.jsonl:2: qas[0].detected_answers[0]: expected an object with 'text' and "
                 "'char_spans' ([[start, end], ...])", id="mrqa-answer-without-spans"),
    pytest.param("dev.jsonl", '{"header": {}}\n{"context": "x", "qas": [{"id": "a", '
                 '"question": "?", "answers": ["x"], "detected_answers": []}]}\n',
                 "dev.jsonl:2: qas[0]: needs 'question' and 'qid'", id="mrqa-no-qid"),
    pytest.param("dev.jsonl", '{"header": {}}\n', "dev.jsonl: no questions (expected MRQA "
                 "lines with 'context' and 'qas')", id="mrqa-header-only"),
    pytest.param("dev.jsonl.gz", GZIP, "dev.jsonl.gz: not a whole gzip file (Error -3 while "
                 "decompressing data: invalid code lengths set)", id="mrqa-corrupt-gzip"),
]


@pytest.mark.parametrize("name, content, expected", QA_CASES)
def test_qa_reader(name, content, expected, request, tmp_path, fault_report):
    from electra_tf.tasks import qa

    write_files(tmp_path, {name: content})
    path = str(tmp_path / name)
    read = (lambda: qa.read_squad(path, v2=True, training=False)) if name.endswith(".json") \
        else (lambda: qa.read_mrqa(path, training=False))
    message = error_of(read)
    assert message == f"{tmp_path}/{expected}"
    fault_report("QA reader", fault_name(request), "nothing read", shown(message, tmp_path))


# ----------------------------------------------------------------------------- predict

PREDICT_CASES = [
    pytest.param("rows.tsv", b"sentence\nfine\ncaf\xe9\n", "classification",
                 "rows.tsv:3: not UTF-8 text (invalid continuation byte at byte 17)",
                 id="invalid-utf8"),
    pytest.param("rows.tsv", PNG, "classification",
                 "rows.tsv:1: not UTF-8 text (invalid start byte at byte 0)", id="png"),
    pytest.param("rows.tsv", "", "classification", "rows.tsv: empty file", id="empty-file"),
    pytest.param("rows.tsv", "sentence\nfine\tx\n", "classification",
                 "rows.tsv:2: 2 tab-separated fields, the header has 1", id="extra-tab"),
    pytest.param("rows.jsonl", '{"sentence": "a"}\n{"sentence": \n', "classification",
                 "rows.jsonl:2: not valid JSON (Expecting value)", id="invalid-json"),
    pytest.param("rows.jsonl", '{"article": "a", "question": "q", "options": "abcd"}\n',
                 "multiple_choice", "rows.jsonl:1: field 'options' must be a list of strings, "
                 "got a string", id="options-not-a-list"),
    pytest.param("rows.tsv", "sentence\n" + "word " * 40_000 + "\n", "classification", None,
                 id="a-200-kb-field"),
]


@pytest.mark.parametrize("name, content, kind, expected", PREDICT_CASES)
def test_predict_input_reader(name, content, kind, expected, request, tmp_path,
                              fault_report):
    write_files(tmp_path, {name: content})
    if expected is None:  # read whole
        assert len(serving.read_rows(str(tmp_path / name), kind)) == 1
        return
    message = error_of(lambda: serving.read_rows(str(tmp_path / name), kind))
    assert message == f"{tmp_path}/{expected}"
    fault_report("electra-predict input", fault_name(request), "nothing read",
                 shown(message, tmp_path))


# ----------------------------------------------------------------------------- commands

# The prog name each command's main() gives cli.run_main: its module, console script and
# the prefix of its cases' ids.
COMMANDS = {
    "build_vocab": (build_vocab, "electra-build-vocab", "build-vocab"),
    "build_pretraining_dataset": (build_pretraining_dataset,
                                  "electra-build-pretraining-dataset", "build-dataset"),
    "build_tlm_index": (build_tlm_index, "electra-build-tlm-index", "build-tlm-index"),
    "run_finetuning": (run_finetuning, "electra-finetune", "finetune"),
    "run_pretraining": (run_pretraining, "electra-pretrain", "pretrain"),
    "run_tlm": (run_tlm, "electra-tlm", "tlm"),
    "electra-predict": (run_predict, "electra-predict", "predict"),
}


def filled(text: str, values: dict) -> str:
    """`text` with each key of `values` replaced (not str.format: JSON has braces)."""
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def run_command(prog: str, argv: list[str], monkeypatch, capsys) -> str:
    """Run command `prog` in this process as its main() does, with `argv`; returns its
    stderr, after checking it exited with status 1 and printed nothing else."""
    module = COMMANDS[prog][0]
    values = module.define_flags(flags.FlagValues())
    quiet = ["--noprogress"] if "progress" in values and "--noprogress" not in argv else []
    values([prog, *argv, *quiet])
    # The commands read their module's FLAGS, and build_config takes them as a default
    # argument: point both at these flags.
    monkeypatch.setattr(module, "FLAGS", values)
    if hasattr(module, "build_config"):
        build_config = module.build_config
        monkeypatch.setattr(module, "build_config", lambda: build_config(values))
    work = (lambda: run_predict.predict(values)) if module is run_predict else getattr(
        module, "_run", getattr(module, "run", None))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(prog, work)([prog])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == "", (out, err)
    return err


def the_data(sample_paths) -> dict:
    """A data dir as the finetuning and pretraining commands want it: the sample vocab."""
    with open(sample_paths["vocab"], "rb") as f:
        return {"data/vocab.txt": f.read()}


FINETUNE = ["--data_dir={tmp}/data", "--model_name=m", "--from_scratch", "--model_size=debug",
            "--noprogress"]
PRETRAIN = ["--data_dir={tmp}/data", "--model_name=m", "--model_size=debug",
            "--num_train_steps=1", "--noprogress"]
NO_SPECIALS = "[PAD]\n[UNK]\nhello\n"

COMMAND_CASES = [
    pytest.param("build_vocab", {"in/c.txt": LATIN1},
                 ["--corpus=text:{tmp}/in/c.txt", "--output={tmp}/out/vocab.txt"],
                 "{tmp}/in/c.txt: line 3: not UTF-8 text (invalid continuation byte at byte 23)",
                 id="build-vocab-invalid-utf8"),
    pytest.param("build_vocab", {"in/c.txt": "Some text.\n"},
                 ["--corpus=text:{tmp}/in/c.txt", "--corpus=csv:{tmp}/in/c.csv",
                  "--output={tmp}/out/vocab.txt"],
                 "corpus 'csv:{tmp}/in/c.csv': unknown format 'csv'; allowed: wikipedia, "
                 "wikiextractor, books, text, tfds", id="build-vocab-unknown-format"),
    pytest.param("build_vocab", {"in/books/a.txt": "\n\n"},
                 ["--corpus=books:{tmp}/in/books", "--output={tmp}/out/vocab.txt"],
                 "no sentences in books:{tmp}/in/books (1 empty documents dropped)",
                 id="build-vocab-no-sentences"),
    pytest.param("build_pretraining_dataset", {"in/c.txt": UTF16},
                 ["--corpus=text:{tmp}/in/c.txt", "--vocab_file={vocab}",
                  "--output_dir={tmp}/out"],
                 "{tmp}/in/c.txt: line 1: a NUL character at column 2; expected UTF-8 text, "
                 "not binary or UTF-16", id="build-dataset-utf16"),
    pytest.param("build_pretraining_dataset", {"in/vocab.txt": NO_SPECIALS},
                 ["--corpus=text:{tmp}/in/c.txt", "--vocab_file={tmp}/in/vocab.txt",
                  "--output_dir={tmp}/out"],
                 "{tmp}/in/vocab.txt: lacks the special token(s) [CLS], [SEP], [MASK] "
                 "(expected [PAD], [UNK], [CLS], [SEP], [MASK])",
                 id="build-dataset-vocab-without-specials"),
    pytest.param("build_pretraining_dataset", {"in/d.xml.bz2": bz2.compress(
        b"<mediawiki><page>")[:20]}, ["--corpus=wikipedia:{tmp}/in/d.xml.bz2",
                                      "--vocab_file={vocab}", "--output_dir={tmp}/out"],
                 "{tmp}/in/d.xml.bz2: the compressed stream ends early, before the first "
                 "page; expected a complete .bz2 file (a truncated download?)",
                 id="build-dataset-truncated-bz2"),
    pytest.param("build_pretraining_dataset", {"in/blank/a.txt": "\n\n   \n"},
                 ["--corpus=text:{tmp}/in/blank", "--vocab_file={vocab}",
                  "--output_dir={tmp}/out"],
                 "no documents in text:{tmp}/in/blank (0 empty documents dropped)",
                 id="build-dataset-blank-corpus"),
    pytest.param("build_pretraining_dataset", {},
                 ["--corpus=text:{tmp}/in/nope.txt", "--vocab_file={vocab}",
                  "--output_dir={tmp}/out"],
                 "{tmp}/in/nope.txt: no such file or folder", id="build-dataset-missing"),
    pytest.param("build_pretraining_dataset", {"in/c.txt": "Some text here.\n"},
                 ["--corpus=text:{tmp}/in/c.txt", "--vocab_file={vocab}",
                  "--output_dir={tmp}/out", "--max_seq_length=600"],
                 "max_seq_length=600 exceeds max_position_embeddings=512",
                 id="build-dataset-too-long"),
    pytest.param("build_tlm_index", {"in/wiki_00": PNG},
                 ["--corpus=wikiextractor:{tmp}/in/wiki_00", "--index_dir={tmp}/out/index",
                  "--noprogress"],
                 "{tmp}/in/wiki_00: line 1: not UTF-8 text (invalid start byte at byte 0)",
                 id="build-tlm-index-png"),
    pytest.param("build_tlm_index", {"in/c.txt": "Some text.\n"},
                 ["--corpus=books:{tmp}/in/c.txt", "--index_dir={tmp}/out/index",
                  "--noprogress"],
                 "{tmp}/in/c.txt: not a folder; expected a folder of .txt books",
                 id="build-tlm-index-books-not-a-folder"),
    pytest.param("run_finetuning", {"data/finetuning_data/SST-2/train.tsv":
                                    SST_HEADER + "good\t1\nbad\tpositive\n"},
                 [*FINETUNE, "--task_names=sst2"],
                 "{tmp}/data/finetuning_data/SST-2/train.tsv:3: label 'positive' is not one "
                 "of sst2's labels ['0', '1']", id="finetune-glue-wrong-label"),
    pytest.param("run_finetuning", {"data/finetuning_data/race/train/middle/1.txt":
                                    '{"article": "x",'}, [*FINETUNE, "--task_names=race"],
                 "{tmp}/data/finetuning_data/race/train/middle/1.txt:1: not valid JSON "
                 "(Expecting property name enclosed in double quotes: column 17); expected "
                 "a json object with article, questions, options and answers",
                 id="finetune-race-invalid-json"),
    pytest.param("run_finetuning", {"data/finetuning_data/pos/train.txt":
                                    "The/DT cat/NN\nsat/VBD down ./.\n"},
                 [*FINETUNE, "--task_names=pos"],
                 "{tmp}/data/finetuning_data/pos/train.txt:2: token 'down' is not word/TAG",
                 id="finetune-pos-token-without-tag"),
    pytest.param("run_finetuning", {"data/no_specials.txt": NO_SPECIALS},
                 [*FINETUNE, "--task_names=sst2", "--vocab_file={tmp}/data/no_specials.txt"],
                 "{tmp}/data/no_specials.txt: lacks the special token(s) [CLS], [SEP], [MASK] "
                 "(expected [PAD], [UNK], [CLS], [SEP], [MASK])",
                 id="finetune-vocab-without-specials"),
    pytest.param("run_finetuning", {}, [*FINETUNE, '--hparams={"task_names": ["sst2"],}'],
                 "--hparams is not valid JSON (Expecting property name enclosed in double "
                 "quotes: line 1 column 25 (char 24)): '{\"task_names\": [\"sst2\"],}'",
                 id="finetune-hparams-bad-json"),
    pytest.param("run_finetuning", {"in/glue.flags": '--task_names=sst2\n'
                                    '--hparams={"num_train_epochs": 3\n'},
                 [*FINETUNE, "--flagfile={tmp}/in/glue.flags"],
                 "--hparams is not valid JSON (Expecting ',' delimiter: line 1 column 23 "
                 "(char 22)): '{\"num_train_epochs\": 3'", id="finetune-flagfile-bad-json"),
    pytest.param("run_finetuning", {}, ["--data_dir={tmp}/data", "--model_name=m",
                                        "--task_names=sst9", "--from_scratch"],
                 "unknown task 'sst9'; known: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, "
                 "wnli, sst2_mr, sst5_mr, stsb_mr, wiki_topics, race, race_middle, race_high, "
                 "squadv1, squad, newsqa, naturalqs, triviaqa, searchqa, squadv1* and squad* "
                 "(SQuAD 1.1 and 2.0 folders), mrqa_*, pos* and chunk* (tagging folders)",
                 id="finetune-unknown-task"),
    pytest.param("run_finetuning", {}, ["--data_dir={tmp}/data", "--model_name=m",
                                        "--task_names=sst2"],
                 "{tmp}/data/models/m/encoder.keras: no pretrained encoder; pretrain one "
                 "(electra-pretrain --model_name=m), give --init_checkpoint (a TF1 checkpoint "
                 "or a Hugging Face folder), or train from scratch with --from_scratch",
                 id="finetune-no-pretrained-encoder"),
    pytest.param("run_finetuning", {}, [*FINETUNE, "--task_names=sst2",
                                        "--warmup_proportion=1.5"],
                 "warmup_proportion=1.5 must be in [0, 1)", id="finetune-warmup-out-of-range"),
    pytest.param("run_tlm", {"data/corpus.txt": "Some text.\n\nMore text.\n"},
                 ["--data_dir={tmp}/data", "--model_name=m", "--num_train_steps=5",
                  "--task_name=stsb_mr", "--corpus=text:{tmp}/data/corpus.txt"],
                 "task 'stsb_mr' is a regression task; TLM needs a sentence or sentence-pair "
                 "classification task (sst2_mr, sst5_mr, sst2, cola, mrpc, qqp, mnli, qnli, rte, "
                 "...)", id="tlm-regression-task"),
    pytest.param("run_pretraining", {"data/vocab.txt": NO_SPECIALS}, PRETRAIN,
                 "{tmp}/data/vocab.txt: lacks the special token(s) [CLS], [SEP], [MASK] "
                 "(expected [PAD], [UNK], [CLS], [SEP], [MASK])",
                 id="pretrain-vocab-without-specials"),
    pytest.param("run_pretraining", {"data/vocab.txt": VOCAB + "the\nthe\n"}, PRETRAIN,
                 "{tmp}/data/vocab.txt: line 7: duplicate token 'the' (first on line 6); "
                 "expected each token once", id="pretrain-vocab-duplicate"),
    pytest.param("run_pretraining", {}, [*PRETRAIN, "--hparams=[1]"],
                 "--hparams must be a JSON object, got '[1]'", id="pretrain-hparams-a-list"),
    pytest.param("electra-predict", {"in/model/finetuned.keras": b"PK\x03\x04" + NOISE,
                                     "in/rows.tsv": "sentence\nfine\n"},
                 ["--model={tmp}/in/model", "--input={tmp}/in/rows.tsv",
                  "--output={tmp}/out/predictions.jsonl"],
                 "{tmp}/in/model/finetuned.keras: not a .keras file (no zip archive); "
                 "expected a model saved by this package, such as the finetuned.keras that "
                 "electra-finetune writes", id="predict-corrupt-model"),
]

@pytest.mark.parametrize("prog, written, argv, expected", COMMAND_CASES)
def test_commands(prog, written, argv, expected, request, tmp_path, sample_paths, monkeypatch,
                  capsys, fault_report):
    write_files(tmp_path, {**(the_data(sample_paths) if prog.startswith("run_") else {}),
                           **written})
    before = all_files(tmp_path)
    fill = {"{tmp}": str(tmp_path), "{vocab}": sample_paths["vocab"]}
    err = run_command(prog, [filled(arg, fill) for arg in argv], monkeypatch, capsys)
    message = filled(expected, fill)
    assert err == f"{prog}: error: {message}\n"
    assert sorted(all_files(tmp_path) - before) == []
    _, name, prefix = COMMANDS[prog]
    fault_report(name, fault_name(request, prefix), "nothing written",
                 shown(err.strip(), tmp_path))


# ----------------------------------------------------------------------------- end to end


# What TensorFlow's C++ runtime logs when it is imported, before absl's logging starts
# (TF_CPP_MIN_LOG_LEVEL does not reach it): not the command's output.
TF_START_UP = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is "
                         r"called are written to STDERR|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\] ")


def _command(module: str, *args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr without TensorFlow's start-up lines) of
    ``python -m module *args``."""
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                            text=True, cwd=ROOT, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    err = "".join(line for line in result.stderr.splitlines(keepends=True)
                  if not TF_START_UP.match(line))
    return result.returncode, result.stdout, err


def test_index_build_on_a_cut_off_dump_exits_1_with_one_line(tmp_path, sample_paths,
                                                              fault_report):
    """The index has taken the documents of the dump's first 115 pages when the dump
    ends: the half-built index is gone."""
    write_files(tmp_path, {"half.xml.bz2": half_dump}, sample_paths)
    before = all_files(tmp_path)
    status, out, err = _command("data_prep.build_tlm_index", "--noprogress",
                                f"--corpus=wikipedia:{tmp_path}/half.xml.bz2",
                                f"--index_dir={tmp_path}/out/index")
    message = HALF_DUMP_ERROR.format(tmp=tmp_path)
    assert (status, out, err) == (1, "", f"build_tlm_index: error: {message}\n")
    assert all_files(tmp_path) == before
    fault_report("electra-build-tlm-index", "the sample .bz2 dump cut in half",
                 "nothing written (partial index removed)", shown(err.strip(), tmp_path))


def test_pretrain_with_a_vocab_without_specials_exits_1_with_one_line(tmp_path, fault_report):
    write_files(tmp_path, {"data/vocab.txt": NO_SPECIALS})
    before = all_files(tmp_path)
    status, out, err = _command("electra_tf.run_pretraining",
                                *[arg.format(tmp=tmp_path) for arg in PRETRAIN])
    assert (status, out, err) == (1, "", f"run_pretraining: error: {tmp_path}/data/vocab.txt: "
                                         f"lacks the special token(s) [CLS], [SEP], [MASK] "
                                         f"(expected [PAD], [UNK], [CLS], [SEP], [MASK])\n")
    assert all_files(tmp_path) == before
    fault_report("electra-pretrain", "vocab without [CLS] [SEP] [MASK]", "nothing written",
                 shown(err.strip(), tmp_path))
