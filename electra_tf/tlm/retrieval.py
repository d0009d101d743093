"""Retrieval for TLM: task examples as BM25 queries over a general corpus.

Two backends behind one interface (:class:`Retriever`):

* :class:`WhooshRetriever` (default): a Whoosh index built by
  ``data_prep/build_tlm_index.py`` (which also defines the analyzer), parallel search
  over processes;
* :class:`Bm25sRetriever`: the same documents in a ``bm25s`` sparse matrix, for large
  corpora (many times the queries per second).

Both rank as the reference implementation's Elasticsearch does: Lucene's BM25
(:class:`LuceneBM25`; bm25s' "lucene" method), the text analyzed the same way (lower-case
standard tokenization, no stopwords, no stemming; stemming optional), and a query is the
sum over its terms, a term that appears twice counting twice (Elasticsearch's match
query: one SHOULD clause per token). Equal scores are ordered by document id
(:func:`id_order`), so both backends return the same top k. A Whoosh query is built
from Term objects, never through Whoosh's query-string parser, so task text holding
``:``, ``(``, ``AND`` or ``*`` cannot change the query.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import json
import math
import multiprocessing
import re
import sys
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging
from whoosh import scoring

from data_prep.build_tlm_index import (
    ID_FIELD,
    LENGTH_FIELD,
    SETTINGS_FILE,
    TEXT_FIELD,
    make_analyzer,
)
from electra_tf import files

Hit = tuple[str, int, float]  # (doc_id, rank from 1, score)


# ----------------------------------------------------------------------- analysis


def analyze(text: str, analyzer) -> list[str]:
    """The terms of `text`, in order, repeats kept."""
    return [token.text for token in analyzer(text)]


def query_terms(text: str, analyzer) -> list[str]:
    """The distinct terms of `text` in first-seen order."""
    return list(dict.fromkeys(analyze(text, analyzer)))


def query_term_counts(text: str, analyzer) -> dict[str, int]:
    """Each distinct term of `text` (first-seen order) with how often it appears: a
    query's terms, each weighted by its count."""
    return dict(Counter(analyze(text, analyzer)))


def build_query(text: str, analyzer):
    """``Or([Term("text", t, boost=count), ...])`` of the text's terms, or None if it has
    none (a term's boost is its count: Whoosh drops duplicate clauses)."""
    counts = query_term_counts(text, analyzer)
    return _term_query(counts) if counts else None


def _term_query(counts: dict[str, int]):
    """An Or of one Term per distinct term, boosted by its count."""
    from whoosh.query import Or, Term

    return Or([Term(TEXT_FIELD, t, boost=float(n)) for t, n in counts.items()])


# ----------------------------------------------------------------------- BM25 and ranking


def lucene_idf(doc_freq: int, num_docs: int) -> float:
    """Lucene's BM25 idf: ln(1 + (N - n + 0.5) / (n + 0.5))."""
    return math.log(1.0 + (num_docs - doc_freq + 0.5) / (doc_freq + 0.5))


def lucene_tf(tf: float, length: float, avg_length: float, k1: float, b: float) -> float:
    """Lucene's BM25 term-frequency part (no (k1 + 1) factor since Lucene 8):
    tf / (tf + k1 * (1 - b + b * dl / avgdl))."""
    return tf / (tf + k1 * (1.0 - b + b * length / avg_length))


def id_order(doc_id: str) -> tuple:
    """Sort key of a document id: runs of digits compared as numbers, so the ids
    ``build_tlm_index`` writes ("<doc>" or "<doc>-<passage>") sort in corpus order, as
    Lucene breaks score ties by index order."""
    return tuple(int(part) if i % 2 else part
                 for i, part in enumerate(re.split(r"(\d+)", doc_id)))


def score_key(score: float) -> float:
    """`score` at 12 significant digits: the backends add a query's terms in different
    orders, so the same score may differ in its last bits; equal keys are ties."""
    return float(f"{score:.11e}")


def ranked(scored: Iterable[tuple[str, float]], k: int) -> list[Hit]:
    """The top `k` of (doc_id, score) pairs, best score first, ties by :func:`id_order`."""
    order = sorted(scored, key=lambda pair: (-score_key(pair[1]), id_order(pair[0])))
    return [(doc_id, rank, score) for rank, (doc_id, score) in enumerate(order[:k], 1)]


class LuceneBM25(scoring.WeightingModel):
    """Lucene's (Elasticsearch's default) BM25 as a Whoosh weighting model: idf
    ln(1 + (N - n + 0.5) / (n + 0.5)), tf part tf / (tf + k1 (1 - b + b dl / avgdl)), N
    the documents, avgdl their mean number of terms. Document lengths come from the exact
    ``length`` column ``build_tlm_index`` writes (Whoosh's own are rounded to a byte), or
    Whoosh's when the index has none."""

    def __init__(self, k1: float = 1.2, b: float = 0.75):
        self.k1, self.b = k1, b
        self._lengths = weakref.WeakKeyDictionary()  # segment reader -> docnum -> length

    def idf(self, searcher, fieldname, text):
        parent = searcher.get_parent()
        return lucene_idf(parent.doc_frequency(fieldname, text), parent.doc_count_all())

    def lengths(self, searcher, fieldname):
        """docnum -> the document's number of terms, in `searcher`'s segment."""
        reader = searcher.reader()
        if reader not in self._lengths:
            if LENGTH_FIELD in searcher.schema and reader.has_column(LENGTH_FIELD):
                self._lengths[reader] = reader.column_reader(LENGTH_FIELD,
                                                             translate=False).__getitem__
            else:
                self._lengths[reader] = lambda docnum: searcher.doc_field_length(
                    docnum, fieldname, 1)
        return self._lengths[reader]

    def scorer(self, searcher, fieldname, text, qf=1):
        return _LuceneBM25Scorer(self, searcher, fieldname, text)


class _LuceneBM25Scorer(scoring.BaseScorer):
    def __init__(self, model: LuceneBM25, searcher, fieldname: str, text):
        parent = searcher.get_parent()
        self.k1, self.b = model.k1, model.b
        self.idf = parent.idf(fieldname, text)
        self.avg_length = (parent.field_length(fieldname) / parent.doc_count_all()) or 1.0
        self.length = model.lengths(searcher, fieldname)
        self._max = self._bound(searcher.term_info(fieldname, text).max_weight())

    def _bound(self, max_tf: float) -> float:
        # The score at length 0 bounds every document's; Whoosh skips blocks below it.
        return self.idf * lucene_tf(max_tf, 0.0, self.avg_length, self.k1, self.b)

    def supports_block_quality(self):
        return True

    def score(self, matcher):
        return self.idf * lucene_tf(matcher.weight(), self.length(matcher.id()),
                                    self.avg_length, self.k1, self.b)

    def max_quality(self):
        return self._max

    def block_quality(self, matcher):
        return self._bound(matcher.block_max_weight())


# ----------------------------------------------------------------------- RAKE

# A short English stop word list (function words); RAKE splits phrases at these.
STOP_WORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each either else
ever every few for from further had has have having he her here hers herself him himself his
how i if in into is it its itself just let me more most my myself neither no nor not now of
off on once only or other ought our ours ourselves out over own same she should so some
such than that the their theirs them themselves then there these they this those through to
too under until up upon us very was we were what when where which while who whom whose why
will with would yet you your yours yourself yourselves
""".split())

_RAKE_SPLIT = re.compile(r"[^\w\s'-]+|\s-\s|\s'|'\s")
_RAKE_WORD = re.compile(r"[\w'-]+")


def rake_keywords(text: str, top_n: int = 20) -> list[str]:
    """The `top_n` best RAKE key phrases of `text` ("Automatic Keyword Extraction from
    Individual Documents", Rose, Engel, Cramer and Cowley): candidate phrases are runs of
    words between stop words and punctuation; a word scores degree / frequency over the
    candidates, a phrase the sum of its words' scores. As rake-nltk (the reference's
    RAKE) ranks them: every occurrence of a phrase is a candidate, so a repeated phrase
    can come back more than once, and equal scores go in reverse alphabetical order."""
    phrases: list[list[str]] = []
    for chunk in _RAKE_SPLIT.split(text.lower()):
        current: list[str] = []
        for word in _RAKE_WORD.findall(chunk):
            word = word.strip("'-")
            if not word or word in STOP_WORDS or word.isdigit():
                if current:
                    phrases.append(current)
                current = []
            else:
                current.append(word)
        if current:
            phrases.append(current)
    frequency: dict[str, int] = {}
    degree: dict[str, int] = {}
    for phrase in phrases:
        for word in phrase:
            frequency[word] = frequency.get(word, 0) + 1
            degree[word] = degree.get(word, 0) + len(phrase)
    scored = [(sum(degree[w] / frequency[w] for w in phrase), " ".join(phrase))
              for phrase in phrases]
    scored.sort(reverse=True)
    return [phrase for _, phrase in scored[:top_n]]


# ----------------------------------------------------------------------- retrievers


class Retriever(abc.ABC):
    """Top-k BM25 search of query texts; queries without indexable terms are skipped
    (an empty hit list) and counted in `skipped`."""

    def __init__(self):
        self.skipped = 0

    @property
    @abc.abstractmethod
    def num_documents(self) -> int:
        """Documents (or passages) in the corpus."""

    @abc.abstractmethod
    def search(self, query_texts: list[str], k: int) -> list[list[Hit]]:
        """Per query, its top `k` hits as (doc_id, rank starting at 1, score)."""

    @abc.abstractmethod
    def texts(self, doc_ids: Iterable[str]) -> dict[str, str]:
        """The stored text of each id."""

    @abc.abstractmethod
    def document_ids(self) -> list[str]:
        """Every document's id, in corpus order."""

    def _effective_k(self, k: int) -> int:
        if k < 1:
            raise ValueError(f"k={k}: need at least 1 document per query")
        if k > self.num_documents:
            logging.warning("k=%d is larger than the corpus (%d documents): every query "
                            "returns all its matching documents", k, self.num_documents)
            return self.num_documents
        return k


def _pool_context():
    # TensorFlow does not survive a fork once loaded: fork only while it is not.
    return multiprocessing.get_context("spawn" if "tensorflow" in sys.modules else "fork")


_WORKER: dict = {}


def _open_worker(index_dir: str, k1: float, b: float) -> None:
    from whoosh import index

    ix = index.open_dir(index_dir)
    _WORKER["searcher"] = ix.searcher(weighting=LuceneBM25(k1, b))


def _search_terms(searcher, queries: Sequence[dict[str, int]], k: int) -> list[list[Hit]]:
    """Top `k` of each query (term -> count) over `searcher`, ties by document id."""
    results = []
    for counts in queries:
        query = _term_query(counts)
        limit = k + 1
        while True:
            found = [(hit[ID_FIELD], float(hit.score))
                     for hit in searcher.search(query, limit=limit)]
            # Whoosh breaks ties by its document order: when the k-th score goes on
            # past what came back, fetch more, so ties are broken by id as in bm25s.
            if len(found) < limit or score_key(found[-1][1]) != score_key(found[k - 1][1]):
                break
            limit *= 2
        results.append(ranked(found, k))
    return results


def _search_chunk(args) -> list[list[Hit]]:
    term_lists, k = args
    return _search_terms(_WORKER["searcher"], term_lists, k)


def index_exists(index_dir: str) -> bool:
    """Whether `index_dir` holds a complete index: its ``tlm_index.json``, which
    ``build_tlm_index`` writes last, is there; a local folder without it also counts
    when Whoosh finds an index in it (one built by other tools)."""
    if files.isfile(files.join(index_dir, SETTINGS_FILE)):
        return True
    if not files.is_local(index_dir) or not files.isdir(index_dir):
        return False  # remote: no marker, no index (it may be half copied)
    from whoosh import index

    return index.exists_in(index_dir)


class WhooshRetriever(Retriever):
    """Lucene's BM25 (:class:`LuceneBM25`) over a Whoosh index (``build_tlm_index``);
    `procs` > 1 searches query chunks in that many processes, each with its own searcher.
    Whoosh reads only local folders: a remote (``gs://``) index is copied to a temporary
    folder for the retriever's life (until :meth:`close`)."""

    def __init__(self, index_dir: str, k1: float = 1.2, b: float = 0.75, procs: int = 1,
                 chunk_size: int = 256):
        from whoosh import index

        super().__init__()
        if not index_exists(index_dir):
            raise ValueError(f"{index_dir}: no Whoosh index there; build one with "
                             f"data_prep/build_tlm_index.py")
        self.index_dir, self.k1, self.b, self.procs = index_dir, k1, b, procs
        self.chunk_size = chunk_size
        self._pool = None
        self._local = contextlib.ExitStack()
        try:
            self._local_dir = self._local.enter_context(files.local_copy(index_dir))
            self._index = index.open_dir(self._local_dir)
        except BaseException:
            self._local.close()
            raise
        self.analyzer = self._index.schema[TEXT_FIELD].analyzer
        if LENGTH_FIELD not in self._index.schema:
            logging.warning("%s has no exact document lengths (an older index): BM25 uses "
                            "Whoosh's, rounded to a byte, and ranks slightly differently "
                            "from bm25s; rebuild it with build_tlm_index", index_dir)
        self._searcher = self._index.searcher(weighting=LuceneBM25(k1, b))

    @property
    def num_documents(self) -> int:
        return self._searcher.doc_count()

    def _terms(self, query_texts: list[str]) -> list[dict[str, int]]:
        term_lists = [query_term_counts(text, self.analyzer) for text in query_texts]
        self.skipped += sum(1 for terms in term_lists if not terms)
        return term_lists

    def search(self, query_texts: list[str], k: int) -> list[list[Hit]]:
        if self.num_documents == 0:
            raise ValueError(f"{self.index_dir}: the index is empty")
        k = self._effective_k(k)
        term_lists = self._terms(query_texts)
        todo = [i for i, terms in enumerate(term_lists) if terms]
        results: list[list[Hit]] = [[] for _ in query_texts]
        wanted = [term_lists[i] for i in todo]
        if self.procs > 1 and len(wanted) > 1:
            size = max(1, min(self.chunk_size, math.ceil(len(wanted) / self.procs)))
            chunks = [(wanted[i:i + size], k) for i in range(0, len(wanted), size)]
            if self._pool is None:
                self._pool = _pool_context().Pool(
                    self.procs, initializer=_open_worker,
                    initargs=(self._local_dir, self.k1, self.b))
            found = [hits for part in self._pool.imap(_search_chunk, chunks) for hits in part]
        else:
            found = _search_terms(self._searcher, wanted, k)
        for i, hits in zip(todo, found, strict=True):
            results[i] = hits
        return results

    def texts(self, doc_ids: Iterable[str]) -> dict[str, str]:
        out = {}
        for doc_id in doc_ids:
            fields = self._searcher.document(**{ID_FIELD: doc_id})
            if fields is None:
                raise KeyError(f"{doc_id!r} is not in {self.index_dir}")
            out[doc_id] = fields[TEXT_FIELD]
        return out

    def document_ids(self) -> list[str]:
        return [fields[ID_FIELD] for fields in self._searcher.all_stored_fields()]

    def documents(self) -> Iterable[tuple[str, str]]:
        """Every stored (id, text), in index order."""
        for fields in self._searcher.all_stored_fields():
            yield fields[ID_FIELD], fields[TEXT_FIELD]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._searcher.close()
        self._index.close()
        self._local.close()  # deletes the local copy of a remote index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Bm25sRetriever(Retriever):
    """Lucene's BM25 (bm25s' "lucene" method, in float64) over (id, text) documents,
    tokenized by the same analyzer as the Whoosh index. Documents without terms are kept
    (``texts``, ``document_ids``) but left out of the BM25 statistics, as Lucene counts
    only documents that have the field and ``build_tlm_index`` leaves them out."""

    def __init__(self, documents: Iterable[tuple[str, str]], k1: float = 1.2,
                 b: float = 0.75, stem: bool = False, show_progress: bool = False):
        import bm25s

        super().__init__()
        self.analyzer = make_analyzer(stem)
        self.ids: list[str] = []
        self._texts: dict[str, str] = {}
        self._rows: list[str] = []  # the id of each row of the BM25 matrix
        tokens = []
        for doc_id, text in documents:
            self.ids.append(doc_id)
            self._texts[doc_id] = text
            terms = analyze(text, self.analyzer)
            if terms:
                self._rows.append(doc_id)
                tokens.append(terms)
        self._model = bm25s.BM25(k1=k1, b=b, method="lucene", dtype="float64")
        if tokens:
            self._model.index(tokens, show_progress=show_progress)
        self._vocab = set(self._model.vocab_dict) - {""} if tokens else set()

    @classmethod
    def from_index(cls, index_dir: str, k1: float = 1.2, b: float = 0.75,
                   stem: bool | None = None) -> Bm25sRetriever:
        """Over the documents stored in a Whoosh index, with its analyzer setting."""
        if stem is None:
            stem = read_index_settings(index_dir).get("stem", False)
        with WhooshRetriever(index_dir) as whoosh_retriever:
            documents = list(whoosh_retriever.documents())
        return cls(documents, k1=k1, b=b, stem=stem)

    @property
    def num_documents(self) -> int:
        return len(self.ids)

    def search(self, query_texts: list[str], k: int) -> list[list[Hit]]:
        if self.num_documents == 0:
            raise ValueError("the corpus is empty")
        k = self._effective_k(k)
        results: list[list[Hit]] = []
        for text in query_texts:
            terms = analyze(text, self.analyzer)
            self.skipped += not terms
            # Terms absent from the corpus match nothing, in either backend.
            terms = [t for t in terms if t in self._vocab]
            if not terms:
                results.append([])
                continue
            scores = self._model.get_scores(terms)
            matching = np.flatnonzero(scores > 0)
            if len(matching) > k:
                # The top k, and whatever ties with the k-th: ranked() orders ties by id.
                kth = np.partition(scores[matching], len(matching) - k)[len(matching) - k]
                matching = matching[scores[matching] >= kth * (1 - 1e-9)]
            results.append(ranked(((self._rows[i], float(scores[i])) for i in matching), k))
        return results

    def texts(self, doc_ids: Iterable[str]) -> dict[str, str]:
        return {doc_id: self._texts[doc_id] for doc_id in doc_ids}

    def document_ids(self) -> list[str]:
        return list(self.ids)


def read_index_settings(index_dir: str) -> dict:
    """The index's ``tlm_index.json`` ({} when it has none)."""
    path = files.join(index_dir, SETTINGS_FILE)
    try:
        return files.read_json(path)
    except FileNotFoundError:
        return {}


# ----------------------------------------------------------------------- retrieved set


@dataclasses.dataclass
class RetrievedSet:
    """The union of the queries' top-k: each document once, with its best rank."""

    entries: list[tuple[str, int, str]]  # (doc_id, best_rank, text), best ranks first
    stats: dict

    @property
    def ids(self) -> list[str]:
        return [doc_id for doc_id, _, _ in self.entries]


def union_best_rank(results: Iterable[list[Hit]]) -> dict[str, int]:
    """doc_id -> the best (smallest) rank it got from any query."""
    best: dict[str, int] = {}
    for hits in results:
        for doc_id, rank, _ in hits:
            if rank < best.get(doc_id, rank + 1):
                best[doc_id] = rank
    return best


def query_texts_for(texts: Sequence[str], query: str = "text", rake_top_n: int = 20):
    """The query text of each task text: itself, or its top RAKE phrases joined."""
    if query == "text":
        return list(texts)
    if query == "rake":
        return [" ".join(rake_keywords(text, rake_top_n)) for text in texts]
    raise ValueError(f"query={query!r}: allowed: text, rake")


def retrieve(retriever: Retriever, texts: Sequence[str], k: int, query: str = "text",
             rake_top_n: int = 20, batch_size: int = 4096, progress: bool = False
             ) -> RetrievedSet:
    """Top-`k` per task text, union with duplicates removed (best rank kept), plus stats:
    queries, skipped (no indexable terms), unique docs and the fraction of the corpus."""
    queries = query_texts_for(texts, query, rake_top_n)
    skipped_before = retriever.skipped
    best: dict[str, int] = {}
    from tqdm import tqdm

    with tqdm(total=len(queries), unit="query", desc="retrieving", disable=not progress) as bar:
        for start in range(0, len(queries), batch_size):
            batch = queries[start:start + batch_size]
            for doc_id, rank in union_best_rank(retriever.search(batch, k)).items():
                if rank < best.get(doc_id, rank + 1):
                    best[doc_id] = rank
            bar.update(len(batch))
    order = sorted(best, key=lambda d: (best[d], d))
    texts_by_id = retriever.texts(order)
    entries = [(doc_id, best[doc_id], texts_by_id[doc_id]) for doc_id in order]
    corpus = retriever.num_documents
    stats = {"queries": len(queries), "skipped": retriever.skipped - skipped_before,
             "top_k": k, "query": query, "unique_documents": len(entries),
             "corpus_documents": corpus,
             "fraction_of_corpus": len(entries) / corpus if corpus else 0.0}
    return RetrievedSet(entries, stats)


def random_documents(retriever: Retriever, n: int, seed: int = 0) -> RetrievedSet:
    """`n` documents drawn uniformly without replacement from the whole corpus: the
    TLM paper's control for retrieval (rank 0 marks "not retrieved")."""
    import random

    ids = retriever.document_ids()
    if n > len(ids):
        logging.warning("%d random documents asked from a corpus of %d: taking all", n,
                        len(ids))
        n = len(ids)
    chosen = sorted(random.Random(seed).sample(ids, n))
    texts_by_id = retriever.texts(chosen)
    stats = {"random": True, "seed": seed, "unique_documents": n,
             "corpus_documents": len(ids), "fraction_of_corpus": n / len(ids) if ids else 0.0}
    return RetrievedSet([(doc_id, 0, texts_by_id[doc_id]) for doc_id in chosen], stats)


def write_retrieved(path: str, retrieved: RetrievedSet) -> None:
    """JSONL, one {"id", "best_rank", "text"} per line; stats in `path`.stats.json.
    Both written atomically, the stats first: the JSONL marks the set complete."""
    lines = [json.dumps({"id": d, "best_rank": r, "text": t}, ensure_ascii=False)
             for d, r, t in retrieved.entries]
    files.write_json(path + ".stats.json", retrieved.stats)
    files.atomic_write(path, "".join(line + "\n" for line in lines))


def read_retrieved(path: str) -> RetrievedSet:
    entries = []
    with files.open_file(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                entries.append((row["id"], int(row["best_rank"]), row["text"]))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{path}:{number}: not a retrieved-set line ({e})") from None
    stats = {}
    if files.exists(path + ".stats.json"):
        stats = files.read_json(path + ".stats.json")
    return RetrievedSet(entries, stats)
