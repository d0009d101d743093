"""Benchmark: TLM retrieval — Whoosh (1 and N processes) against bm25s, same corpus/queries.

Corpus: the Wikipedia-leads sample (whole documents), `--copies` times over with distinct
ids. Queries: sentences of the movie-review task's train.tsv (`--num_queries`). Reports
index build docs/s, queries/s per backend, how far the backends' top-K agree (both rank
by Lucene's BM25, so they should return the same lists), and the projected time to serve
100k queries over 1M documents (queries/s scaled by the corpus size ratio: BM25 search
cost grows about linearly with posting-list lengths).

  python benchmarks/retrieval.py [--num_queries=40] [--top_k=50] [--procs=2]
"""

import csv
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from data_prep import samples  # noqa: E402
from data_prep.build_tlm_index import build_index  # noqa: E402
from electra_tf.tlm.retrieval import Bm25sRetriever, WhooshRetriever  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("samples_dir", samples.DEFAULT_DIR, "Where the samples are.")
flags.DEFINE_integer("num_queries", 40, "Task sentences used as queries.", lower_bound=1)
flags.DEFINE_integer("top_k", 50, "Documents per query.", lower_bound=1)
flags.DEFINE_integer("procs", 2, "Processes for the parallel Whoosh search and writer.",
                     lower_bound=2)
flags.DEFINE_integer("copies", 1, "Index the corpus this many times over.", lower_bound=1)


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def _projection(qps: float, corpus_docs: int) -> str:
    seconds = 100_000 / qps * (1_000_000 / corpus_docs)
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _main(argv):
    del argv
    corpus = samples.path("wiki_leads", FLAGS.samples_dir)
    tsv = os.path.join(samples.path("movie_reviews", FLAGS.samples_dir), "sst2_mr", "train.tsv")
    with open(tsv, encoding="utf-8") as f:
        queries = [row["sentence"] for row in csv.DictReader(f, delimiter="\t")]
    queries = queries[:FLAGS.num_queries]
    work = tempfile.mkdtemp(prefix="tlm_bench_")
    try:
        specs = [f"text:{corpus}"] * FLAGS.copies
        summary, build_s = _timed(lambda: build_index(
            specs, os.path.join(work, "index"), procs=1, progress=False))
        docs = summary["indexed"]
        _, build_mp_s = _timed(lambda: build_index(
            specs, os.path.join(work, "index_mp"), procs=FLAGS.procs, progress=False))
        index_dir = os.path.join(work, "index")
        k = FLAGS.top_k
        single = WhooshRetriever(index_dir)
        whoosh_hits, w1_s = _timed(lambda: single.search(queries, k))
        with WhooshRetriever(index_dir, procs=FLAGS.procs, chunk_size=64) as parallel:
            parallel.search(queries[:FLAGS.procs * 2], k)  # start the pool first
            _, wn_s = _timed(lambda: parallel.search(queries, k))
        bm25s_retriever, bm_build_s = _timed(lambda: Bm25sRetriever.from_index(index_dir))
        bm25s_retriever.search(queries[:8], k)  # warm-up
        bm25s_hits, bm_s = _timed(lambda: bm25s_retriever.search(queries, k))
        single.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    overlaps = [len({h[0] for h in a} & {h[0] for h in b}) / max(1, len(a), len(b))
                for a, b in zip(whoosh_hits, bm25s_hits, strict=True) if a or b]
    top1 = [a[0][0] == b[0][0] for a, b in zip(whoosh_hits, bm25s_hits, strict=True)
            if a and b]
    same = [[h[0] for h in a] == [h[0] for h in b]
            for a, b in zip(whoosh_hits, bm25s_hits, strict=True)]
    n = len(queries)
    rows = [("whoosh, 1 process", n / w1_s), (f"whoosh, {FLAGS.procs} processes", n / wn_s),
            ("bm25s", n / bm_s)]
    print(f"\ncorpus: wiki_leads x{FLAGS.copies} = {docs:,} documents; {n} queries "
          f"(sst2_mr train), top-{k}")
    print(f"index build (whoosh): {docs / build_s:,.0f} docs/s with 1 process, "
          f"{docs / build_mp_s:,.0f} docs/s with {FLAGS.procs}; bm25s index from the "
          f"stored texts: {bm_build_s:.1f} s")
    print("\n| backend | queries/s | vs whoosh x1 | 100k queries over 1M docs |")
    print("|---|---:|---:|---:|")
    for name, qps in rows:
        print(f"| {name} | {qps:,.1f} | {qps / rows[0][1]:.2f}x | {_projection(qps, docs)} |")
    print(f"\ntop-{k} overlap whoosh vs bm25s: mean {sum(overlaps) / len(overlaps):.1%}; "
          f"same top-1 on {sum(top1) / max(1, len(top1)):.1%} of queries; the same top-{k} "
          f"list (ids and order) on {sum(same) / len(same):.1%}")


if __name__ == "__main__":
    app.run(_main)
