"""TLM retrieval: analyzer, hostile queries, Lucene's BM25 in both backends (by hand, on
real text, ties, repeated terms), RAKE, dedup, index build re-runs."""

import json
import math
import os
import re

import numpy as np
import pytest
from absl import logging
from whoosh.query import Or, Term

from data_prep import samples
from data_prep.build_tlm_index import PARTIAL_SUFFIX, SETTINGS_FILE, build_index, passages
from data_prep.readers import Document
from electra_tf.tlm import retrieval
from electra_tf.tlm.retrieval import (
    Bm25sRetriever,
    RetrievedSet,
    WhooshRetriever,
    build_query,
    make_analyzer,
    rake_keywords,
    read_retrieved,
    retrieve,
    union_best_rank,
    write_retrieved,
)

# Each document has a word of its own, so a query of that word has one clear winner.
CORPUS = [
    "Aardvarks dig burrows in the African savanna at night.",
    "Volcanoes erupt molten lava and ash over the mountain slopes.",
    "The violinist played a sonata in the concert hall tonight.",
    "Glaciers carve valleys slowly as the ice moves downhill.",
    "A chess grandmaster sacrificed the queen to win the game.",
    "Bakers knead dough and bake bread in a hot oven each morning.",
]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tlm")
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS) + "\n")
    directory = str(root / "index")
    build_index([f"text:{corpus}"], directory, progress=False)
    return directory


def test_analyzer_lowercases_keeps_stopwords_and_does_not_stem():
    analyzer = make_analyzer()
    assert retrieval.analyze("The Cats AND a dog's e.g. 3.14", analyzer) == [
        "the", "cats", "and", "a", "dog", "s", "e.g", "3.14"]
    assert retrieval.analyze("jumped cats", make_analyzer(stem=True)) == ["jump", "cat"]


def test_hostile_query_text_is_only_the_or_of_its_terms():
    query = build_query("title:foo AND (bar OR *)", make_analyzer())
    assert query == Or([Term("text", t) for t in ["title", "foo", "and", "bar", "or"]])
    assert build_query("  :() * -- ", make_analyzer()) is None
    # A repeated term is one clause weighted by its count.
    assert build_query("The cat saw the CAT, the end", make_analyzer()) == Or(
        [Term("text", "the", boost=3.0), Term("text", "cat", boost=2.0),
         Term("text", "saw"), Term("text", "end")])


# Five documents of 3, 2, 4, 1 and 4 terms (14 in all), long enough for the text reader.
BY_HAND = ["internationalization localization internationalization",
           "localization accessibility",
           "elderberry gooseberry mulberry cloudberry",
           "internationalization",
           "cloudberry mulberry gooseberry elderberry"]


@pytest.fixture(scope="module")
def by_hand_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("by_hand")
    (root / "corpus.txt").write_text("\n\n".join(BY_HAND) + "\n")
    directory = str(root / "index")
    build_index([f"text:{root / 'corpus.txt'}"], directory, progress=False)
    return directory


def test_both_backends_score_lucene_bm25_by_hand_counting_repeated_terms(by_hand_index):
    # N = 5 documents, avgdl = 14 / 5; "internationalization" is in 2 documents,
    # "accessibility" in 1; k1 = 1.2, b = 0.75.
    def idf(n):
        return math.log(1 + (5 - n + 0.5) / (n + 0.5))

    def tf_part(tf, dl):
        return tf / (tf + 1.2 * (1 - 0.75 + 0.75 * dl / (14 / 5)))

    intl, access = idf(2), idf(1)
    # The query has "internationalization" twice: each occurrence adds its score, as in
    # Elasticsearch's match query (one clause per token).
    query = "Internationalization internationalization accessibility"
    expected = [("3", 2 * intl * tf_part(1, 1)),  # 1.0799
                ("0", 2 * intl * tf_part(2, 3)),  # 1.0728
                ("1", access * tf_part(1, 2))]    # 0.7135
    once = [("1", access * tf_part(1, 2)), ("3", intl * tf_part(1, 1)),
            ("0", intl * tf_part(2, 3))]
    with WhooshRetriever(by_hand_index) as whoosh_retriever:
        backends = [whoosh_retriever, Bm25sRetriever.from_index(by_hand_index)]
        for retriever in backends:
            for text, want in ((query, expected), ("internationalization accessibility", once)):
                hits = retriever.search([text], 3)[0]
                assert [(d, r) for d, r, _ in hits] == [(d, r) for r, (d, _) in
                                                        enumerate(want, 1)]
                np.testing.assert_allclose([s for _, _, s in hits], [s for _, s in want],
                                           rtol=1e-12)
            # Documents 2 and 4 hold the same words: a tie, broken by id in both.
            assert [h[:2] for h in retriever.search(["mulberry"], 2)[0]] == [("2", 1),
                                                                               ("4", 2)]
            assert [h[0] for h in retriever.search(["mulberry"], 1)[0]] == ["2"]


def test_ties_are_broken_by_document_id_in_number_order():
    assert sorted(["10-0", "9-1", "9-0", "b", "a2", "a10"], key=retrieval.id_order) == [
        "9-0", "9-1", "10-0", "a2", "a10", "b"]
    text = "the same few words in every document"
    documents = [("doc10", text), ("doc9", text), ("doc2", "no match here at all"),
                 ("doc1", text)]
    hits = Bm25sRetriever(documents).search(["few words"], 2)[0]
    assert [h[:2] for h in hits] == [("doc1", 1), ("doc9", 2)]
    # A document without terms is kept (texts, ids) but is not in the BM25 statistics.
    empty = Bm25sRetriever(documents + [("punct", "-- ... !!")])
    assert empty.num_documents == 5 and empty.texts(["punct"]) == {"punct": "-- ... !!"}
    assert empty.search(["few words"], 2) == [hits]


@pytest.fixture(scope="module")
def news_index(tmp_path_factory):
    """The 300 articles of the news sample, indexed whole."""
    directory = str(tmp_path_factory.mktemp("news") / "index")
    news = samples.path("news")
    summary = build_index([f"text:{news}"], directory, progress=False)
    assert summary["indexed"] == 300
    return directory


def test_both_backends_rank_real_text_identically(news_index):
    with WhooshRetriever(news_index) as whoosh_retriever:
        documents = dict(whoosh_retriever.documents())
        bm25s_retriever = Bm25sRetriever.from_index(news_index)
        # Queries: the opening words of every tenth article, and a few written here (one
        # with repeated words, one of common words only, where many scores tie).
        queries = [" ".join(documents[str(i)].split()[:12]) for i in range(0, 300, 10)]
        queries += ["bushfire bushfire near Sydney and the highway", "of the and a to",
                    "Australian cricket captain Steve Waugh", "Israeli tanks in Gaza"]
        k = 20
        whoosh_hits = whoosh_retriever.search(queries, k)
        bm25s_hits = bm25s_retriever.search(queries, k)
        for query, ours, theirs in zip(queries, whoosh_hits, bm25s_hits, strict=True):
            assert len(ours) == k, query
            assert [h[:2] for h in ours] == [h[:2] for h in theirs], query
            np.testing.assert_allclose([h[2] for h in ours], [h[2] for h in theirs],
                                       rtol=1e-9)

    # One score by hand: statistics counted here, over the stored texts, by a tokenizer
    # written here (lower-cased words, inner dots kept).
    def terms(text):
        return re.findall(r"\w+(?:\.?\w+)*", text.lower())

    lengths = {doc_id: len(terms(text)) for doc_id, text in documents.items()}
    n, avgdl = len(documents), sum(lengths.values()) / len(documents)
    query = ["bushfire", "bushfire", "near", "sydney", "and", "the", "highway"]
    doc_id, _, score = whoosh_hits[-4][0]
    doc_terms = terms(documents[doc_id])
    expected = 0.0
    for term in query:
        df = sum(term in set(terms(text)) for text in documents.values())
        tf = doc_terms.count(term)
        if tf:
            expected += (math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf
                         / (tf + 1.2 * (0.25 + 0.75 * lengths[doc_id] / avgdl)))
    assert doc_terms.count("bushfire") > 0
    assert score == pytest.approx(expected, rel=1e-12)
    assert bm25s_hits[-4][0][2] == pytest.approx(expected, rel=1e-9)


def test_union_keeps_each_documents_best_rank():
    best = union_best_rank([[("a", 1, 3.0), ("b", 2, 1.0)], [("b", 1, 5.0), ("c", 3, 0.5)],
                            [("a", 4, 0.1)]])
    assert best == {"a": 1, "b": 1, "c": 3}


def test_both_backends_return_the_same_top_documents(index_dir):
    queries = ["aardvarks", "lava volcanoes", "violinist sonata", "glaciers ice",
               "chess queen", "bread oven dough"]
    whoosh_retriever = WhooshRetriever(index_dir)
    bm25s_retriever = Bm25sRetriever.from_index(index_dir)
    whoosh_hits = whoosh_retriever.search(queries, 1)
    bm25s_hits = bm25s_retriever.search(queries, 1)
    assert [h[0][0] for h in whoosh_hits] == [h[0][0] for h in bm25s_hits]
    texts = whoosh_retriever.texts([h[0][0] for h in whoosh_hits])
    for query, hits in zip(queries, whoosh_hits, strict=True):
        doc_id, rank, score = hits[0]
        assert rank == 1 and score > 0
        # the winner is the document holding the query's words, and shares terms with it
        analyzer = make_analyzer()
        assert set(retrieval.analyze(query, analyzer)) <= set(
            retrieval.analyze(texts[doc_id], analyzer))
    # parallel search gives the same answers as one process
    with WhooshRetriever(index_dir, procs=2, chunk_size=2) as parallel:
        assert parallel.search(queries, 3) == whoosh_retriever.search(queries, 3)
    whoosh_retriever.close()


def test_empty_queries_are_skipped_and_counted_and_big_k_warns(index_dir, monkeypatch):
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *a: warnings.append(msg % a))
    for retriever in (WhooshRetriever(index_dir), Bm25sRetriever.from_index(index_dir)):
        hits = retriever.search(["", "*** :: ()", "in the a"], 100)
        assert hits[0] == hits[1] == [] and retriever.skipped == 2
        # every document has one of these words: all of them come back, ranks 1..6
        assert sorted(h[0] for h in hits[2]) == [str(i) for i in range(len(CORPUS))]
        assert [h[1] for h in hits[2]] == list(range(1, len(CORPUS) + 1))
    assert len(warnings) == 2 and "larger than the corpus" in warnings[0]


def test_retrieve_union_stats_and_jsonl_round_trip(index_dir, tmp_path):
    with WhooshRetriever(index_dir) as retriever:
        task = ["Aardvarks at night (savanna: AND *)", "the mountain lava", "", "aardvarks"]
        retrieved = retrieve(retriever, task, k=2)
    assert retrieved.stats["queries"] == 4 and retrieved.stats["skipped"] == 1
    assert retrieved.ids[0] in {"0", "1"} and len(set(retrieved.ids)) == len(retrieved.ids)
    assert dict((d, r) for d, r, _ in retrieved.entries)["0"] == 1
    assert retrieved.stats["unique_documents"] == len(retrieved.entries)
    assert retrieved.stats["fraction_of_corpus"] == len(retrieved.entries) / len(CORPUS)
    path = str(tmp_path / "retrieved.jsonl")
    write_retrieved(path, retrieved)
    assert read_retrieved(path) == retrieved
    assert isinstance(retrieved, RetrievedSet)
    assert json.loads(open(path).readline())["text"] == CORPUS[0]
    rake = retrieve(WhooshRetriever(index_dir), ["the violinist played a sonata"], 1,
                    query="rake")
    assert rake.ids == ["2"]


def test_rake_on_a_known_sentence():
    text = ("Compatibility of systems of linear constraints over the set of natural "
            "numbers. Criteria of compatibility of a system of linear Diophantine "
            "equations are considered.")
    assert rake_keywords(text, 3) == ["linear diophantine equations", "linear constraints",
                                      "natural numbers"]
    # The reference's 20 by default; as rake-nltk, every occurrence is a candidate (here
    # "compatibility" twice) and equal scores go in reverse alphabetical order.
    assert rake_keywords(text) == [
        "linear diophantine equations", "linear constraints", "natural numbers",
        "systems", "system", "set", "criteria", "considered", "compatibility",
        "compatibility"]


def test_passages_cut_documents_by_words():
    docs = [Document("t", ["one two three", "four five"]), Document("u", ["six"])]
    assert list(passages(docs, 2)) == [("0-0", "one two"), ("0-1", "three four"),
                                       ("0-2", "five"), ("1-0", "six")]
    assert list(passages(docs)) == [("0", "one two three four five"), ("1", "six")]


def test_index_rerun_is_a_no_op_and_an_interrupted_build_is_cleaned(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(CORPUS) + "\n")
    directory = str(tmp_path / "index")
    leftover = directory + PARTIAL_SUFFIX
    os.makedirs(leftover)
    open(os.path.join(leftover, "junk_seg.seg"), "w").close()  # an interrupted build
    first = build_index([f"text:{corpus}"], directory, progress=False)
    assert not os.path.exists(leftover) and first["indexed"] == len(CORPUS)
    mtimes = {n: os.path.getmtime(os.path.join(directory, n)) for n in os.listdir(directory)}
    assert build_index([f"text:{corpus}"], directory, progress=False) == first
    assert {n: os.path.getmtime(os.path.join(directory, n))
            for n in os.listdir(directory)} == mtimes
    with pytest.raises(ValueError, match="other inputs"):
        build_index([f"text:{corpus}"], directory, passage_words=3, progress=False)
    rebuilt = build_index([f"text:{corpus}"], directory, passage_words=3, overwrite=True,
                          progress=False)
    assert rebuilt["indexed"] > len(CORPUS)
    assert WhooshRetriever(directory).num_documents == rebuilt["indexed"]
    # An index written by an older version of the builder is rebuilt, not refused.
    settings = json.load(open(os.path.join(directory, SETTINGS_FILE)))
    settings["inputs"]["format_version"] = 1
    json.dump(settings, open(os.path.join(directory, SETTINGS_FILE), "w"))
    again = build_index([f"text:{corpus}"], directory, passage_words=3, progress=False)
    assert again["inputs"]["format_version"] == 2 and again["indexed"] == rebuilt["indexed"]


def test_a_remote_index_is_searched_from_a_local_copy(index_dir):
    """An index in a bucket (ram:// here): Whoosh reads a local copy, deleted on close;
    the answers are the local index's; a remote folder without ``tlm_index.json`` (the
    marker written last) is no index; retrieved sets round-trip through ram://."""
    import uuid

    from electra_tf import files

    remote = f"ram://tlm-{uuid.uuid4().hex}"
    files.copy_tree(index_dir, files.join(remote, "index"))
    queries = ["aardvarks", "lava volcanoes", "chess queen", "in the a"]
    with WhooshRetriever(index_dir) as local:
        expected = local.search(queries, 3)
    assert retrieval.index_exists(index_dir)
    assert retrieval.index_exists(files.join(remote, "index"))
    with WhooshRetriever(files.join(remote, "index")) as retriever:
        copy = retriever._local_dir
        assert files.is_local(copy) and os.path.isdir(copy)
        assert retriever.search(queries, 3) == expected
        retrieved = retrieve(retriever, queries, k=2)
    assert not os.path.exists(copy)
    assert retrieval.read_index_settings(files.join(remote, "index")) == \
        retrieval.read_index_settings(index_dir) != {}
    assert [h[0][0] for h in Bm25sRetriever.from_index(files.join(remote, "index"))
            .search(queries[:3], 1)] == [h[0][0] for h in expected[:3]]

    path = files.join(remote, "retrieved", "tlm.jsonl")
    write_retrieved(path, retrieved)
    assert read_retrieved(path) == retrieved

    files.copy_tree(index_dir, files.join(remote, "half"))
    files.remove(files.join(remote, "half", retrieval.SETTINGS_FILE))
    assert not retrieval.index_exists(files.join(remote, "half"))
    with pytest.raises(ValueError, match=r"half: no Whoosh index there"):
        WhooshRetriever(files.join(remote, "half"))
