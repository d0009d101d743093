"""Data preparation on the real sample corpora: readers, vocab, TFRecords, errors."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from data_prep import build_pretraining_dataset as bpd
from data_prep import readers, samples
from data_prep.build_vocab import build_vocab, reserved_tokens, write_vocab
from electra_tf.tokenization import BERT_SPECIAL_IDS, WordPieceTokenizer, load_vocab

MARKUP = ("{{", "}}", "[[", "]]", "<ref", "</ref", "{|")


def test_vocab_sample_is_bert_uncased(sample_paths):
    vocab = load_vocab(sample_paths["vocab"])
    assert len(vocab) == 30522
    assert all(vocab[i] == token for token, i in BERT_SPECIAL_IDS.items())
    assert samples.sha256(sample_paths["vocab"]) == (
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3")


def test_wikipedia_dump_reader_on_the_real_sample(sample_paths):
    stats = readers.ReadStats()
    documents = list(readers.read_wikipedia_dump(sample_paths["enwiki_dump"], stats))
    assert stats.skipped_redirects == 100 and stats.documents == len(documents) == 106
    titles = {d.title for d in documents}
    assert "AccessibleComputing" not in titles  # a redirect
    assert {"Anarchism", "Aristotle", "A"} <= titles
    text = " ".join(s for d in documents for s in d.sentences)
    assert not [m for m in MARKUP if m in text]
    first = next(d for d in documents if d.title == "A").sentences[0]
    assert first.startswith("A (named") and "first letter" in first


def test_news_sample_is_one_text_document_per_line_of_the_lee_corpus():
    news = samples.path("news")
    with open(os.path.join(os.path.dirname(news), "lee_background.cor"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    with open(news, encoding="utf-8") as f:
        text = f.read()
    assert len(lines) == 300 and all(line.strip() for line in lines)
    # One line per document, a blank line after each.
    assert text.endswith("\n\n") and text[:-2].split("\n\n") == [ln.strip() for ln in lines]
    stats = readers.ReadStats()
    documents = list(readers.read_corpora(["text:" + news], stats))
    assert stats.documents == len(documents) == 300 and stats.dropped_empty == 0
    assert documents[0].sentences[0].startswith("Hundreds of people have been forced")
    assert all(len(d.sentences) > 1 for d in documents)


def test_books_text_and_wikiextractor_readers(two_books, tmp_path):
    stats = readers.ReadStats()
    books = list(readers.read_books(two_books, stats))
    assert [d.title for d in books] == ["macbeth_gut.txt", "sonnets_gut.txt"]
    assert stats.sentences > 1000 and all(len(d.sentences) > 100 for d in books)

    plain = tmp_path / "corpus.txt"
    plain.write_text("First doc. Two sentences here.\nA second line.\n\n\n"
                     "Second document is here!\n\n  \n<br>\n\n")
    stats = readers.ReadStats()
    docs = list(readers.read_plain_text(str(plain), stats))
    assert [d.sentences for d in docs] == [
        ["First doc.", "Two sentences here.", "A second line."],
        ["Second document is here!"]]
    assert stats.dropped_empty == 1  # the "<br>" block: nothing a document can be

    extracted = tmp_path / "wiki_00"
    extracted.write_text('<doc id="1" url="u" title="Alpha">\nAlpha\nAlpha is a letter. It '
                         'comes first.\n</doc>\n<doc id="2" url="u" title="Beta">\nBeta\n'
                         '\n</doc>\n')
    jsonl = tmp_path / "wiki_01"
    jsonl.write_text(json.dumps({"id": "3", "title": "Gamma",
                                 "text": "Gamma\n\nGamma is the third letter."}) + "\n")
    stats = readers.ReadStats()
    docs = list(readers.read_wikiextractor(str(tmp_path / "wiki_00"), stats))
    docs += list(readers.read_wikiextractor(str(jsonl), stats))
    assert [d.title for d in docs] == ["Alpha", "Gamma"]
    assert docs[0].sentences == ["Alpha is a letter.", "It comes first."]
    assert docs[1].sentences == ["Gamma is the third letter."]
    assert stats.dropped_empty == 1


def test_tfds_reader_needs_a_prepared_dataset(tmp_path):
    with pytest.raises(readers.CorpusError, match="tfds dataset 'wikipedia/20230601.en' is "
                                                  "not prepared in .*TFDS_DATA_DIR"):
        next(readers.read_tfds("wikipedia/20230601.en", data_dir=str(tmp_path)))
    # Asked to download, it tries, and offline that is one clear error too.
    with pytest.raises(readers.CorpusError, match="could not be downloaded"):
        next(readers.read_tfds("wikipedia/20230601.en", data_dir=str(tmp_path),
                               download=True))


def test_build_vocab_has_the_bert_layout(two_books, tmp_path):
    sentences = [s for d in readers.read_books(two_books) for s in d.sentences]
    vocab = build_vocab(sentences, vocab_size=2000)
    assert vocab[:104] == reserved_tokens()
    assert all(vocab[i] == token for token, i in BERT_SPECIAL_IDS.items())
    assert 1000 < len(vocab) <= 2100 and "macbeth" in vocab and "the" in vocab
    assert all(token == token.lower() for token in vocab[104:])
    write_vocab(vocab, str(tmp_path / "vocab.txt"))
    assert load_vocab(str(tmp_path / "vocab.txt")) == vocab


def read_records(path, max_seq_length):
    spec = {n: tf.io.FixedLenFeature([max_seq_length], tf.int64)
            for n in ("input_ids", "input_mask", "segment_ids")}
    for record in tf.data.TFRecordDataset(path):
        yield {k: v.numpy() for k, v in tf.io.parse_single_example(record, spec).items()}


def test_records_follow_the_original_layout(built, sample_paths):
    _, out, summary = built
    vocab_size = len(load_vocab(sample_paths["vocab"]))
    files = sorted(f for f in os.listdir(out) if f.startswith("pretrain_data.tfrecord-"))
    assert files == [f"pretrain_data.tfrecord-{k}-of-3" for k in range(3)]
    assert not [f for f in os.listdir(out) if f.startswith(".")], "temporary files left"
    count = 0
    for name in files:
        for ex in read_records(os.path.join(out, name), 64):
            count += 1
            ids, mask, seg = ex["input_ids"], ex["input_mask"], ex["segment_ids"]
            length = int(mask.sum())
            assert ids[0] == 101 and np.all(mask[:length] == 1) and np.all(mask[length:] == 0)
            assert np.all((ids != 0) == (mask == 1)) and np.all(ids < vocab_size)
            seps = np.flatnonzero(ids == 102)
            assert seps[-1] == length - 1 and len(seps) in (1, 2)
            # Segment A through the first [SEP] is 0; B after it, with its [SEP], is 1.
            assert np.all(seg[:seps[0] + 1] == 0)
            assert np.all(seg[seps[0] + 1:length] == (1 if len(seps) == 2 else 0))
            assert np.all(seg[length:] == 0)
    assert count == summary["examples"] > 1000
    assert summary["documents"] == 108 and summary["skipped_redirects"] == 100
    assert 0 < summary["padding_fraction"] < 0.2
    with open(os.path.join(out, "summary.json")) as f:
        assert json.load(f)["tokens"] == summary["tokens"]


def test_same_seed_gives_identical_bytes_whatever_the_process_count(built, sample_paths,
                                                                    tmp_path):
    corpora, out, _ = built
    again = str(tmp_path / "again")
    # The CLI with 2 workers (forked: it has not imported TensorFlow before forking).
    result = _run_builder(*[f"--corpus={c}" for c in corpora],
                          f"--vocab_file={sample_paths['vocab']}", f"--output_dir={again}",
                          "--max_seq_length=64", "--num_shards=3", "--num_processes=2",
                          "--seed=7")
    assert result.returncode == 0, result.stderr[-2000:]
    for k in range(3):
        name = bpd.shard_name(k, 3)
        with open(os.path.join(out, name), "rb") as a, open(os.path.join(again, name),
                                                            "rb") as b:
            assert a.read() == b.read(), name


def test_interrupted_build_resumes_without_rewriting_finished_shards(two_books,
                                                                     sample_paths,
                                                                     tmp_path, monkeypatch):
    out = str(tmp_path / "resume")
    corpora = [f"books:{two_books}"]
    real_build_shard = bpd.build_shard

    def dies_on_shard_2(index, *args):
        if index == 2:
            raise KeyboardInterrupt("killed")
        return real_build_shard(index, *args)

    monkeypatch.setattr(bpd, "build_shard", dies_on_shard_2)
    with pytest.raises(KeyboardInterrupt):
        bpd.build_dataset(corpora, sample_paths["vocab"], out, 64, num_shards=4, seed=1,
                          progress=False)
    finished = {k: os.stat(os.path.join(out, bpd.shard_name(k, 4))).st_mtime_ns
                for k in (0, 1)}
    assert not os.path.exists(os.path.join(out, bpd.shard_name(2, 4)))
    monkeypatch.setattr(bpd, "build_shard", real_build_shard)
    summary = bpd.build_dataset(corpora, sample_paths["vocab"], out, 64, num_shards=4,
                                seed=1, progress=False)
    for k, mtime in finished.items():
        assert os.stat(os.path.join(out, bpd.shard_name(k, 4))).st_mtime_ns == mtime
    assert summary["documents"] == 2 and summary["examples"] > 100
    with pytest.raises(ValueError, match="other settings"):
        bpd.build_dataset(corpora, sample_paths["vocab"], out, 64, num_shards=4, seed=2,
                          progress=False)
    # Losing one finished shard rewrites only that one.
    os.remove(os.path.join(out, bpd.shard_name(3, 4)))
    kept = os.stat(os.path.join(out, bpd.shard_name(0, 4))).st_mtime_ns
    again = bpd.build_dataset(corpora, sample_paths["vocab"], out, 64, num_shards=4,
                              seed=1, progress=False)
    assert os.stat(os.path.join(out, bpd.shard_name(0, 4))).st_mtime_ns == kept
    assert again["examples"] == summary["examples"]
    fresh = str(tmp_path / "fresh")
    bpd.build_dataset(corpora, sample_paths["vocab"], fresh, 64, num_shards=4, seed=1,
                      progress=False)
    for k in range(4):
        with open(os.path.join(out, bpd.shard_name(k, 4)), "rb") as a, \
                open(os.path.join(fresh, bpd.shard_name(k, 4)), "rb") as b:
            assert a.read() == b.read()


def reference_examples(documents, max_length, rng):
    """The original build_pretraining_dataset.py's segment logic, restated plainly: one
    example at a time, lists of token ids."""
    examples, current, target = [], [], max_length

    def create():
        nonlocal current, target
        first_target = 100000 if rng.random() < 0.1 else (target - 3) // 2
        a, b = [], []
        for sentence in current:
            if len(a) == 0 or len(a) + len(sentence) < first_target or (
                    len(b) == 0 and len(a) < first_target and rng.random() < 0.5):
                a = a + sentence
            else:
                b = b + sentence
        a = a[:max_length - 2]
        b = b[:max(0, max_length - len(a) - 3)]
        current = []
        target = rng.randint(5, max_length) if rng.random() < 0.05 else max_length
        ids = [101] + a + [102] + (b + [102] if b else [])
        segs = [0] * (len(a) + 2) + ([1] * (len(b) + 1) if b else [])
        return (ids + [0] * (max_length - len(ids)), [1] * len(ids) + [0] * (
            max_length - len(ids)), segs + [0] * (max_length - len(segs)))

    for document in documents:
        for sentence in document:
            current.append(sentence)
            if sum(map(len, current)) >= target:
                examples.append(create())
        # At a document's end, as the original: an example if any tokens are pending
        # (sentences without tokens stay for the next one).
        if sum(map(len, current)):
            examples.append(create())
    return examples


def packed_examples(documents, max_length, rng, batches=1):
    """The builder's examples of `documents` (lists of token lists), fed in `batches`."""
    builder = bpd.ExampleBuilder(max_length, rng)
    produced = []
    step = -(-len(documents) // batches)
    for first in range(0, len(documents), step):
        lengths, tokens = [], []
        for document in documents[first:first + step]:
            for sentence in document:
                lengths.append(len(sentence))
                tokens.append(sentence)
            lengths.append(-1)
            tokens.append([])
        splits = np.cumsum([0] + [len(t) for t in tokens])
        flat = np.array([i for t in tokens for i in t], np.int64)
        pieces = builder.pack(lengths)
        if pieces[0]:
            arrays = bpd.encode_examples(flat, splits, pieces, max_length, 101, 102)
            produced += [tuple(a[i].tolist() for a in arrays) for i in range(len(arrays[0]))]
    return produced


@pytest.mark.parametrize("max_length", [8, 32, 128])
def test_builder_matches_the_reference_segment_logic(max_length):
    rng = random.Random(max_length)
    # Sentences of 0 to 150 tokens: some without any, some longer than an example.
    documents = [[[1000 + rng.randrange(30000) for _ in range(rng.choice(
        [0, 1, 5, rng.randint(1, 30), rng.randint(1, 150)]))]
        for _ in range(rng.randint(1, 12))] for _ in range(300)]
    expected = reference_examples(documents, max_length, random.Random(42))
    for batches in (1, 7):  # the builder's state carries from batch to batch
        assert packed_examples(documents, max_length, random.Random(42), batches) == expected
    assert any(102 in e[0][1:-1] and e[2].count(1) for e in expected)  # some have B
    assert any(e[1][-1] == 1 for e in expected)  # some fill the whole length


def test_serialize_examples_gives_protobufs_bytes():
    rng = np.random.default_rng(0)
    for length in (8, 128, 512):
        ids = rng.integers(0, 30522, (50, length))
        ids[0] = rng.integers(0, 1 << 28, length)  # varints of 1 to 4 bytes
        ids[1] = 0
        mask, segments = rng.integers(0, 2, (2, 50, length))
        expected = [bpd.serialize(ids[i].tolist(), mask[i].tolist(), segments[i].tolist())
                    for i in range(50)]
        assert bpd.serialize_examples(ids, mask, segments) == expected
    with pytest.raises(ValueError, match="2\\*\\*28"):
        bpd.serialize_examples(np.full((1, 8), -1), np.ones((1, 8)), np.zeros((1, 8)))


def test_shards_hold_the_reference_examples(built, sample_paths, two_books):
    """The whole build restated one example at a time (sequential reader, one tokenizer
    call per document, the reference segment logic, one protobuf per example): the
    same records, in the same shards."""
    corpora, out, summary = built
    documents = list(readers.read_corpora(corpora))
    tokenizer = WordPieceTokenizer(sample_paths["vocab"])
    for k in range(3):
        tokenized = [tokenizer.tokenize_each(d.sentences) for d in documents[k::3]]
        expected = [bpd.serialize(*e) for e in reference_examples(
            tokenized, 64, random.Random(f"electra-tf-7-shard-{k}"))]
        records = [r.numpy() for r in tf.data.TFRecordDataset(
            os.path.join(out, bpd.shard_name(k, 3)))]
        assert records == expected, k


def test_plain_text_blocks_hold_the_line_readers_documents(tmp_path, monkeypatch):
    """Plain text read in blocks (split in workers) gives the line reader's documents,
    whatever the line ends and wherever the blocks are cut."""
    documents = [f"Document {i} has a sentence. And another one here." for i in range(40)]
    texts = {
        "lf.txt": "\n\n".join(documents).encode(),
        "crlf.txt": ("\r\n\r\n".join(documents) + "\r\n").encode(),
        "cr.txt": "\r\r".join(documents).encode(),
        "mixed.txt": "".join(d + ["\n\n", "\r\n\r\n", "\n \t\n\x0b\n", "\r\r\n", "\n\r\n",
                                  "\nA last line\n\u3000\n"][i % 6]
                             for i, d in enumerate(documents)).encode(),
    }
    for name, data in texts.items():
        (tmp_path / name).write_bytes(data)
        spec = f"text:{tmp_path / name}"
        expected = [(len(d.sentences), ("\n".join(d.sentences) + "\n\n").encode())
                    for d in readers.read_corpora([spec])]
        assert len(expected) >= 40
        for block in (1, 2, 3, 50, 1 << 20):
            monkeypatch.setattr(readers, "TEXT_BLOCK", block)
            stats = readers.ReadStats()
            assert list(readers.read_corpora_lines([spec], stats)) == expected, (name, block)
            assert stats.documents == len(expected)


def test_shard_text_is_read_in_whole_documents(tmp_path, monkeypatch):
    """Stage 2 reads its text in blocks of whole documents, wherever the reads end
    (documents longer than a read, "\\n\\n" split between two)."""
    rng = random.Random(0)
    documents = [[f"sentence {d}.{i} " * rng.randint(1, 40) for i in range(rng.randint(1, 9))]
                 for d in range(200)]
    lines = [line.strip().encode() for d in documents for line in d + [""]]
    (tmp_path / "text-0").write_bytes(b"\n".join(lines) + b"\n")
    for size in (1, 2, 3, 64, 1000, 1 << 20):
        monkeypatch.setattr(bpd, "READ_BLOCK", size)
        blocks = list(bpd._document_blocks(str(tmp_path / "text-0")))
        assert [line for block in blocks for line in block] == lines, size
        assert all(block[-1] == b"" for block in blocks)


@pytest.mark.parametrize("data", [
    b"Good text here.\n\n" * 1000 + b"caf\xe9 is not UTF-8.\n",
    b"Good text here.\n\n" * 1000 + b"A NUL\x00 here.\n",
    b"Good text.\n\n" + "ok\n".encode("utf-16"),
    b"Good text here.\n\n" * 1000 + b"A long line " * 100 + b"\n\nMore text.\n"])
def test_plain_text_blocks_fail_as_the_line_reader(data, tmp_path, monkeypatch):
    """Bad input read in blocks: the line reader's error, naming the same line."""
    monkeypatch.setattr(readers, "MAX_LINE_CHARS", 1000)
    monkeypatch.setattr(readers, "TEXT_BLOCK", 4096)
    (tmp_path / "c.txt").write_bytes(data)
    spec = f"text:{tmp_path / 'c.txt'}"
    with pytest.raises(readers.CorpusError) as expected:
        list(readers.read_corpora([spec]))
    with pytest.raises(readers.CorpusError) as got:
        list(readers.read_corpora_lines([spec]))
    assert str(got.value) == str(expected.value) and ": line " in str(got.value)


def test_bad_input_read_by_workers_is_one_clear_line(tmp_path, sample_paths):
    """An error found in a worker is reported as the reader's own: one line naming the
    file and line, exit 1, nothing left behind."""
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(b"Good text here. More of it.\n\n" * 50000 + b"caf\xe9 is bad.\n")
    out = tmp_path / "out"
    result = _run_builder(f"--corpus=text:{corpus}", f"--vocab_file={sample_paths['vocab']}",
                          f"--output_dir={out}", "--num_processes=2", "--progress=false")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"build_pretraining_dataset: error: {corpus}: line 100001: not UTF-8 text (invalid "
        f"continuation byte at byte 1450003)")
    assert os.listdir(out) == []


def test_workers_fork_until_tensorflow_runs_here(tmp_path):
    """Workers are forked (no start-up) only while this process has not started
    TensorFlow's runtime and runs no other Python thread, and never for files in a
    bucket."""
    tf.constant(1)  # the runtime runs in this (test) process
    assert bpd._start_method([str(tmp_path)]) == "spawn"
    code = ("import threading; from data_prep import build_pretraining_dataset as b; "
            "print(b._start_method(['/tmp']), b._start_method(['gs://bucket/x'])); "
            "t = threading.Thread(target=threading.Event().wait, daemon=True); t.start(); "
            "print(b._start_method(['/tmp']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.split() == ["fork", "spawn", "spawn"], result.stderr[-2000:]


def _run_builder(*args):
    return subprocess.run([sys.executable, "-m", "data_prep.build_pretraining_dataset",
                           *args], capture_output=True, text=True, timeout=300)
