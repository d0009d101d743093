"""Benchmark: text -> pretraining TFRecords, against Hugging Face's Rust WordPiece.

Ours is end to end: read a plain-text corpus, split sentences, tokenize (tf-text), pack
examples and write TFRecord shards with --num_processes workers, start-up included
(worker processes import TensorFlow and build their tokenizers: about 6 s that a large
corpus amortizes). The peer is `tokenizers`' BertWordPieceTokenizer (Rust,
multi-threaded encode_batch) tokenizing the very sentences our reader produced, with the
same vocab: tokenization only, its best case. Both run on this machine in the same run;
throughput is the corpus's WordPiece tokens (as the peer counts them) per second.

The corpus is the Wikipedia-leads and Shakespeare samples, written as one plain-text
file `--copies` times over (to measure at a size where start-up costs matter less).

  python benchmarks/data_prep.py [--copies=8] [--num_processes=2]
"""

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from data_prep import readers, samples  # noqa: E402
from data_prep.build_pretraining_dataset import build_dataset  # noqa: E402

flags.DEFINE_integer("copies", 8, "How many times the sample corpus is repeated.",
                     lower_bound=1)
flags.DEFINE_integer("num_processes", 2, "Worker processes for our builder.", lower_bound=1)
FLAGS = flags.FLAGS


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


def main(_):
    from tokenizers import BertWordPieceTokenizer

    vocab = samples.path("vocab")
    workdir = tempfile.mkdtemp(prefix="bench-data-prep-")
    try:
        path, sentences = _corpus(workdir)
        peer = BertWordPieceTokenizer(vocab, lowercase=True, strip_accents=True)
        start = time.perf_counter()
        encodings = peer.encode_batch(sentences, add_special_tokens=False)
        peer_seconds = time.perf_counter() - start
        tokens = sum(len(e.ids) for e in encodings)
        del encodings

        start = time.perf_counter()
        summary = build_dataset([f"text:{path}"], vocab, os.path.join(workdir, "shards"),
                                max_seq_length=128, num_shards=16,
                                num_processes=FLAGS.num_processes, seed=1, progress=False)
        our_seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ours, theirs = tokens / our_seconds, tokens / peer_seconds
    print(f"corpus: Wikipedia leads + Shakespeare x{FLAGS.copies}: {len(sentences):,} "
          f"sentences, {tokens:,} WordPiece tokens, {summary['examples']:,} examples; "
          f"{os.cpu_count()} cores")
    print(f"electra-tf text->TFRecord (end to end, {FLAGS.num_processes} processes): "
          f"{ours:,.0f} tokens/s ({our_seconds:.1f} s)")
    print(f"HF tokenizers BertWordPieceTokenizer (tokenize only): {theirs:,.0f} tokens/s "
          f"({peer_seconds:.1f} s)")
    print(f"ratio electra-tf / HF tokenizers: {ours / theirs:.2f}x")


if __name__ == "__main__":
    app.run(main)
