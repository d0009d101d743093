"""Data preparation on a non-local file system (ram://, as a stand-in for gs://): corpora,
vocab, TFRecords and the TLM index read and written only through electra_tf.files."""

import bz2
import uuid

import pytest

from data_prep import build_pretraining_dataset as bpd
from data_prep import readers
from data_prep.build_tlm_index import build_index
from data_prep.build_vocab import build_vocab_file
from electra_tf import files
from electra_tf.tlm.retrieval import SETTINGS_FILE, WhooshRetriever
from electra_tf.tokenization import load_vocab


@pytest.fixture
def ram():
    """A fresh ram:// folder (ram:// lives in this process's memory)."""
    return f"ram://data-prep-{uuid.uuid4().hex}"


def shard_bytes(folder, num_shards):
    return [files.read_bytes(files.join(folder, bpd.shard_name(k, num_shards)))
            for k in range(num_shards)]


def test_records_built_on_ram_are_the_bytes_of_a_local_build(two_books, sample_paths, ram,
                                                             tmp_path):
    books, vocab, out = files.join(ram, "books"), files.join(ram, "vocab.txt"), files.join(
        ram, "pretrain_tfrecords")
    files.copy_tree(two_books, books)
    files.copy(sample_paths["vocab"], vocab)
    local_out = str(tmp_path / "local")
    local = bpd.build_dataset([f"books:{two_books}"], sample_paths["vocab"], local_out, 64,
                              num_shards=3, seed=5, progress=False)
    remote = bpd.build_dataset([f"books:{books}"], vocab, out, 64, num_shards=3, seed=5,
                               progress=False)
    assert shard_bytes(out, 3) == shard_bytes(local_out, 3)
    assert files.listdir(out) == sorted([bpd.shard_name(k, 3) for k in range(3)]
                                        + ["summary.json"])  # no work or temporary files
    assert remote["settings"]["vocab_file"] == vocab  # a remote path is kept as it is
    assert remote["settings"]["corpora"][0]["path"] == books
    assert remote["settings"]["corpora"][0]["files"] == [
        ["macbeth_gut.txt", files.size_and_mtime(files.join(books, "macbeth_gut.txt"))[0], 0],
        ["sonnets_gut.txt", files.size_and_mtime(files.join(books, "sonnets_gut.txt"))[0], 0]]
    assert {k: remote[k] for k in ("documents", "examples", "tokens", "shard_counts")} == {
        k: local[k] for k in ("documents", "examples", "tokens", "shard_counts")}
    assert files.read_json(files.join(out, "summary.json")) == remote

    # Re-runs: the same settings do nothing, a lost shard is rewritten alone, other
    # settings are refused.
    assert bpd.build_dataset([f"books:{books}"], vocab, out, 64, num_shards=3, seed=5,
                             progress=False) == remote
    files.remove(files.join(out, bpd.shard_name(1, 3)))
    bpd.build_dataset([f"books:{books}"], vocab, out, 64, num_shards=3, seed=5,
                      progress=False)
    assert shard_bytes(out, 3) == shard_bytes(local_out, 3)
    with pytest.raises(ValueError, match=f"{out} holds a dataset built with other settings"):
        bpd.build_dataset([f"books:{books}"], vocab, out, 64, num_shards=3, seed=6,
                          progress=False)


def test_vocab_from_a_ram_corpus_to_a_ram_output(two_books, ram, tmp_path):
    books = files.join(ram, "books")
    files.copy_tree(two_books, books)
    output = files.join(ram, "out", "vocab.txt")
    vocab, stats = build_vocab_file([f"books:{books}"], output, 400, max_sentences=300,
                                    progress=False)
    local, _ = build_vocab_file([f"books:{two_books}"], str(tmp_path / "vocab.txt"), 400,
                                max_sentences=300, progress=False)
    assert vocab == local and len(vocab) > 200 and stats.documents == 1
    assert files.read_bytes(output) == (tmp_path / "vocab.txt").read_bytes()
    assert load_vocab(output) == vocab
    assert files.listdir(files.join(ram, "out")) == ["vocab.txt"]


CORPUS = [
    "Aardvarks dig burrows in the African savanna at night.",
    "Volcanoes erupt molten lava and ash over the mountain slopes.",
    "The violinist played a sonata in the concert hall tonight.",
    "Glaciers carve valleys slowly as the ice moves downhill.",
]


def test_tlm_index_built_on_ram_is_searchable_from_a_local_copy(ram):
    corpus = files.join(ram, "corpus.txt")
    files.atomic_write(corpus, "\n\n".join(CORPUS) + "\n")
    index_dir = files.join(ram, "tlm_index")
    first = build_index([f"text:{corpus}"], index_dir, progress=False)
    assert first["indexed"] == len(CORPUS)
    assert files.read_json(files.join(index_dir, SETTINGS_FILE)) == first
    assert any(name.endswith(".toc") for name in files.listdir(index_dir))
    with files.local_copy(index_dir) as local, WhooshRetriever(local) as retriever:
        hits = retriever.search(["lava volcanoes", "violinist sonata"], 1)
        assert [h[0][0] for h in hits] == ["1", "2"]
    # The same inputs again: nothing rebuilt; other inputs: refused, or rebuilt with
    # overwrite.
    names = {n: files.read_bytes(files.join(index_dir, n)) for n in files.listdir(index_dir)}
    assert build_index([f"text:{corpus}"], index_dir, progress=False) == first
    assert {n: files.read_bytes(files.join(index_dir, n))
            for n in files.listdir(index_dir)} == names
    with pytest.raises(ValueError, match="other inputs"):
        build_index([f"text:{corpus}"], index_dir, passage_words=3, progress=False)
    # (Made only now: ram:// sees "<index_dir>.partial" as a part of "<index_dir>".)
    files.atomic_write(files.join(index_dir + ".partial", "junk.seg"), "x")
    rebuilt = build_index([f"text:{corpus}"], index_dir, passage_words=3, overwrite=True,
                          progress=False)
    assert rebuilt["indexed"] > len(CORPUS)
    assert not files.exists(files.join(index_dir + ".partial", "junk.seg"))
    with files.local_copy(index_dir) as local, WhooshRetriever(local) as retriever:
        assert retriever.num_documents == rebuilt["indexed"]
    # A failed build leaves the index as it was.
    with pytest.raises(readers.CorpusError, match="no such file"):
        build_index([f"text:{corpus}.missing"], index_dir, overwrite=True, progress=False)
    assert files.read_json(files.join(index_dir, SETTINGS_FILE)) == rebuilt


DUMP = b"""<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">
<page><title>Alpha</title><ns>0</ns><revision><text>'''Alpha''' is the first letter of \
the [[Greek alphabet|Greek]] alphabet.{{cite}} It has the value one.</text></revision></page>
<page><title>Old</title><ns>0</ns><redirect title="Alpha"/><revision><text>#REDIRECT
[[Alpha]]</text></revision></page>
<page><title>Talk:Alpha</title><ns>1</ns><revision><text>Talk page text is not read at
all by the reader.</text></revision></page>
</mediawiki>
"""


def test_readers_and_their_errors_on_ram(ram, tmp_path, sample_paths):
    dump = files.join(ram, "dump.xml.bz2")
    files.atomic_write(dump, bz2.compress(DUMP))
    (tmp_path / "dump.xml.bz2").write_bytes(bz2.compress(DUMP))
    stats = readers.ReadStats()
    documents = list(readers.read_wikipedia_dump(dump, stats))
    assert documents == list(readers.read_wikipedia_dump(str(tmp_path / "dump.xml.bz2")))
    assert [d.title for d in documents] == ["Alpha"]
    assert documents[0].sentences[0] == "Alpha is the first letter of the Greek alphabet."
    assert (stats.skipped_redirects, stats.skipped_namespaces) == (1, 1)

    broken = files.join(ram, "broken.xml.bz2")
    files.atomic_write(broken, b"this is not bzip2")
    with pytest.raises(readers.CorpusError, match=f"{broken}: cannot read"):
        list(readers.read_wikipedia_dump(broken))
    bad = files.join(ram, "texts", "bad.txt")
    files.atomic_write(bad, "Good line one.\r\nGood line two.\r\n\r\nbad \xff here\n".encode(
        "latin-1"))
    with pytest.raises(readers.CorpusError,
                       match=rf"{bad}: line 4: not UTF-8 text \(invalid start byte at byte 38\)"):
        list(readers.read_plain_text(files.join(ram, "texts")))
    truncated = files.join(ram, "wiki_00")
    files.atomic_write(truncated, '<doc id="1" title="T">\ntext\n')
    with pytest.raises(readers.CorpusError, match=f"{truncated}: ends inside a <doc> block"):
        list(readers.read_wikiextractor(truncated))
    with pytest.raises(readers.CorpusError, match="missing.txt: no such file"):
        list(readers.read_plain_text(files.join(ram, "missing.txt")))
    with pytest.raises(readers.CorpusError, match="not a folder"):
        list(readers.read_books(bad))
    files.atomic_write(files.join(ram, "empty", "a.txt"), "\n\n  \n")
    out = files.join(ram, "out")
    with pytest.raises(readers.CorpusError, match=f"no documents in text:{ram}/empty"):
        bpd.build_dataset([f"text:{ram}/empty"], sample_paths["vocab"], out, 64,
                          num_shards=2, progress=False)
    assert not files.exists(out) or files.listdir(out) == []  # nothing half-written
