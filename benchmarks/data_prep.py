"""Benchmark: text -> pretraining TFRecords, against Hugging Face's Rust WordPiece.

Ours is end to end: read a plain-text corpus, split sentences, tokenize (tf-text), pack
examples and write TFRecord shards with --num_processes workers, start-up included. The
peer is `tokenizers`' BertWordPieceTokenizer (Rust, multi-threaded encode_batch)
tokenizing the very sentences our reader produced, with the same vocab: tokenization
only, its best case (the faster of one call over all sentences and calls of
--peer_batch sentences, each timed alone). Both run on this machine in the same run;
throughput is the corpus's WordPiece tokens (as the peer counts them) per second. Each
measurement also prints the CPU that other processes used meanwhile (in cores): on a
2-core machine a busy neighbour changes the ratio.

The corpus is the Wikipedia-leads and Shakespeare samples, written as one plain-text
file `--copies` times over.

  python benchmarks/data_prep.py [--copies=8] [--num_processes=2] [--repeats=1]
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from peer_process import CpuWatch  # noqa: E402

from data_prep import readers, samples  # noqa: E402
from data_prep.build_pretraining_dataset import build_dataset  # noqa: E402

flags.DEFINE_integer("copies", 8, "How many times the sample corpus is repeated.",
                     lower_bound=1)
flags.DEFINE_integer("num_processes", 2, "Worker processes for our builder.", lower_bound=1)
flags.DEFINE_integer("peer_batch", 8192, "Sentences per encode_batch call in the peer's "
                     "batched variant.", lower_bound=1)
flags.DEFINE_integer("repeats", 1, "Measure both this many times, alternating; each pair "
                     "prints its own ratio.", lower_bound=1)
FLAGS = flags.FLAGS


class Watch(CpuWatch):
    """CpuWatch that counts the builder's workers as ours: they have ended (and been
    waited for) when the window closes, so their CPU is in this process's children's
    time."""

    def _ours(self):
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        children = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        return super()._ours() + children


def _corpus(workdir):
    """One plain-text corpus file (blank lines between documents) and its sentences."""
    documents = list(readers.read_corpora(["text:" + samples.path("wiki_leads"),
                                           "books:" + samples.path("shakespeare")]))
    path = os.path.join(workdir, "corpus.txt")
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(FLAGS.copies):
            for document in documents:
                f.write("\n".join(document.sentences) + "\n\n")
    sentences = [s for d in documents for s in d.sentences] * FLAGS.copies
    return path, sentences


def _peer(tokenizer, sentences, batch):
    """(tokens, seconds, other cores) of encoding `sentences`, `batch` at a time."""
    with Watch() as watch:
        start = time.perf_counter()
        tokens = 0
        for i in range(0, len(sentences), batch):
            encodings = tokenizer.encode_batch(sentences[i:i + batch],
                                               add_special_tokens=False)
            tokens += sum(len(e.ids) for e in encodings)
            del encodings
        seconds = time.perf_counter() - start
    return tokens, seconds, watch.other_cores


def _ours(path, vocab, workdir):
    out, timings = os.path.join(workdir, "shards"), {}
    with Watch() as watch:
        start = time.perf_counter()
        summary = build_dataset([f"text:{path}"], vocab, out, max_seq_length=128,
                                num_shards=16, num_processes=FLAGS.num_processes, seed=1,
                                progress=False, timings=timings)
        seconds = time.perf_counter() - start
    shutil.rmtree(out)
    return summary, timings, seconds, watch.other_cores


def _stages(s) -> str:
    w = s["workers"]
    return (f"  stages (wall): start-up {s['start_up']:.2f} s ({s['start_method'] or 'no'} "
            f"workers), read+split {s['read_split']:.1f} s, tokenize+pack+write "
            f"{s['write_shards']:.1f} s\n"
            f"  worker seconds (summed): tokenizer set-up {w['tokenizer_setup']:.1f}, read "
            f"{w['read']:.1f}, tokenize {w['tokenize']:.1f}, pack {w['pack']:.1f}, "
            f"serialize+write {w['write']:.1f}")


def main(_):
    from tokenizers import BertWordPieceTokenizer

    vocab = samples.path("vocab")
    workdir = tempfile.mkdtemp(prefix="bench-data-prep-")
    try:
        path, sentences = _corpus(workdir)
        peer = BertWordPieceTokenizer(vocab, lowercase=True, strip_accents=True)
        threads = os.environ.get("RAYON_NUM_THREADS") or os.environ.get(
            "RAYON_RS_NUM_CPUS") or f"default ({os.cpu_count()})"
        print(f"corpus: Wikipedia leads + Shakespeare x{FLAGS.copies}: {len(sentences):,} "
              f"sentences; {os.cpu_count()} cores; peer threads: {threads}", flush=True)
        ratios = []
        for repeat in range(FLAGS.repeats):
            runs = {"one call": _peer(peer, sentences, len(sentences)),
                    f"batches of {FLAGS.peer_batch}": _peer(peer, sentences, FLAGS.peer_batch)}
            summary, timings, our_seconds, our_busy = _ours(path, vocab, workdir)
            tokens = next(iter(runs.values()))[0]
            best = min(runs, key=lambda k: runs[k][1])
            theirs = tokens / runs[best][1]
            ours = tokens / our_seconds
            ratios.append(ours / theirs)
            print(f"run {repeat + 1}: {tokens:,} WordPiece tokens, "
                  f"{summary['examples']:,} examples")
            for name, (_, seconds, busy) in runs.items():
                print(f"  HF tokenizers BertWordPieceTokenizer (tokenize only, {name}): "
                      f"{tokens / seconds:,.0f} tokens/s ({seconds:.1f} s; others used "
                      f"{busy:.2f} cores)")
            print(f"  electra-tf text->TFRecord (end to end, {FLAGS.num_processes} "
                  f"processes): {ours:,.0f} tokens/s ({our_seconds:.1f} s; others used "
                  f"{our_busy:.2f} cores)")
            print(_stages(timings))
            print(f"  ratio electra-tf / HF tokenizers (its best, {best}): "
                  f"{ours / theirs:.2f}x", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if FLAGS.repeats > 1:
        print("ratios: " + ", ".join(f"{r:.2f}x" for r in ratios))


if __name__ == "__main__":
    app.run(main)
