"""TLM retrieval: analyzer, hostile queries, both backends, dedup, index build re-runs."""

import json
import os

import pytest
from absl import logging
from whoosh.query import Or, Term

from data_prep.build_tlm_index import PARTIAL_SUFFIX, build_index, passages
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
