"""build_pretraining_dataset: corpora -> WordPiece -> pretraining TFRecords.

Example::

  python -m data_prep.build_pretraining_dataset \\
      --corpus=wikipedia:data/enwiki.xml.bz2 --corpus=books:data/books \\
      --vocab_file=data/vocab.txt --output_dir=data/pretrain_tfrecords \\
      --max_seq_length=128 --num_shards=64 --num_processes=2 --seed=1

Examples follow the original ELECTRA ``build_pretraining_dataset.py``: sentences of a
document accumulate up to the target length; with probability 0.1 the example is one
segment, otherwise it is split into A and B near the middle; with probability 0.05 the
next target length is random; ``[CLS] A [SEP] B [SEP]``, zero padded; features
``input_ids``, ``input_mask``, ``segment_ids`` (int64, length max_seq_length), so files
from either builder are interchangeable.

Two stages, both resumable: (1) the corpora are streamed once and split into per-shard
sentence-per-line text (document i goes to shard i mod num_shards); (2) each shard is
tokenized (tf-text's C++ WordPiece, whole batches of sentences) and written as
``pretrain_data.tfrecord-K-of-N`` under a temporary name, renamed when complete. A
re-run skips finished shards. Shard K's randomness comes from (seed, K) alone, so the
same seed and inputs give byte-identical shards whatever --num_processes is.
``summary.json`` beside the shards counts documents, sentences, examples, tokens and
padding.

Every path (corpora, vocab, output dir) goes through :mod:`electra_tf.files`, so inputs
and outputs may live in a bucket (``gs://...``); the work files of stage 1 sit in
``<output_dir>/.work`` and are deleted when the build is complete.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sys
from collections.abc import Iterable

import tensorflow as tf
from absl import flags

from data_prep import readers
from data_prep.samples import sha256
from electra_tf import cli, files
from electra_tf.tokenization import WordPieceTokenizer, load_vocab

WORK_DIR = ".work"


def read_state(path: str):
    """A build's state or settings JSON; an unreadable one is an error naming it."""
    try:
        return json.loads(files.read_text(path))
    except (OSError, ValueError, tf.errors.OpError) as e:
        reason = e.message if isinstance(e, tf.errors.OpError) else e
        raise ValueError(f"{path}: unreadable build state ({reason}); delete it to start "
                         f"over") from None


def _absolute(path: str) -> str:
    """A local path made absolute; a remote one (``gs://...``) as it is."""
    return os.path.abspath(path) if files.is_local(path) else path


def _relative(path: str, folder: str) -> str:
    if files.is_local(folder):
        return os.path.relpath(path, folder)
    return path[len(folder.rstrip("/")) + 1:]


def corpus_fingerprint(spec: str) -> dict:
    """What identifies a corpus: absolute path, and size and mtime of every file."""
    fmt, _, path = spec.partition(":")
    if fmt == "tfds" or not files.exists(path):
        return {"spec": spec}
    found = [path] if files.isfile(path) else readers.all_files(path)
    return {"format": fmt, "path": _absolute(path),
            "files": [[_relative(f, path) if f != path else "", *files.size_and_mtime(f)]
                      for f in found]}
SPLIT_DONE = "split_done.json"
SENTENCE_BATCH = 8192


def shard_name(index: int, num_shards: int) -> str:
    return f"pretrain_data.tfrecord-{index}-of-{num_shards}"


class ExampleBuilder:
    """Packs a stream of tokenized sentences into examples, as the original does.

    ``add_sentence(ids)`` returns an example (a pair of segments) when the target
    length is reached; ``end_document()`` flushes what is left of a document. The
    random calls happen in the original's order, so a seeded ``random.Random`` gives
    the original's choices.
    """

    def __init__(self, max_length: int, rng: random.Random):
        self.max_length = max_length
        self.rng = rng
        self.target_length = max_length
        self.sentences: list[list[int]] = []
        self.length = 0

    def add_sentence(self, ids: list[int]):
        self.sentences.append(ids)
        self.length += len(ids)
        if self.length >= self.target_length:
            return self._create()
        return None

    def end_document(self):
        return self._create() if self.length else None

    def _create(self) -> tuple[list[int], list[int]]:
        rng = self.rng
        if rng.random() < 0.1:
            first_target = 100000  # one segment, as in classification tasks
        else:
            first_target = (self.target_length - 3) // 2  # room for [CLS] [SEP] [SEP]
        first: list[int] = []
        second: list[int] = []
        for sentence in self.sentences:
            # Into A if A is empty, if it still fits, or (B still empty, A short of
            # its target) on a coin flip; otherwise into B.
            if (not first or len(first) + len(sentence) < first_target
                    or (not second and len(first) < first_target and rng.random() < 0.5)):
                first += sentence
            else:
                second += sentence
        first = first[:self.max_length - 2]
        second = second[:max(0, self.max_length - len(first) - 3)]
        self.sentences, self.length = [], 0
        if rng.random() < 0.05:
            self.target_length = rng.randint(5, self.max_length)
        else:
            self.target_length = self.max_length
        return first, second


def make_features(first: list[int], second: list[int], max_length: int, cls_id: int,
                  sep_id: int) -> tuple[list[int], list[int], list[int]]:
    """``[CLS] A [SEP] (B [SEP])`` zero padded: (input_ids, input_mask, segment_ids)."""
    input_ids = [cls_id] + first + [sep_id]
    segment_ids = [0] * len(input_ids)
    if second:
        input_ids += second + [sep_id]
        segment_ids += [1] * (len(second) + 1)
    input_mask = [1] * len(input_ids)
    padding = max_length - len(input_ids)
    return input_ids + [0] * padding, input_mask + [0] * padding, segment_ids + [0] * padding


def serialize(input_ids, input_mask, segment_ids) -> bytes:
    def feature(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    return tf.train.Example(features=tf.train.Features(feature={
        "input_ids": feature(input_ids),
        "input_mask": feature(input_mask),
        "segment_ids": feature(segment_ids),
    })).SerializeToString(deterministic=True)  # map order must not depend on the process


# ----------------------------------------------------------------------- stage 1


def split_corpus(corpora: Iterable[str], work_dir: str, num_shards: int,
                 progress: bool = True, pool=None) -> dict:
    """Stream the corpora once into per-shard sentence-per-line files (resumable).

    With a `pool`, cleaning and sentence splitting run in its workers."""
    done = files.join(work_dir, SPLIT_DONE)
    if files.exists(done):
        return read_state(done)
    files.makedirs(work_dir)
    _allow_open_files(num_shards + 64)
    stats = readers.ReadStats()
    tmp_paths = [files.join(work_dir, f".tmp-text-{k}") for k in range(num_shards)]
    outputs = []
    ok = False
    try:
        for tmp in tmp_paths:
            outputs.append(files.open_file(tmp, "wb"))
            outputs[-1].write(b"")  # the file exists even if no document goes there
        documents = readers.read_corpora(corpora, stats, pool)
        if progress:
            from tqdm import tqdm
            documents = tqdm(documents, unit="doc", desc="reading corpora")
        for index, document in enumerate(documents):
            text = "\n".join(s.replace("\n", " ") for s in document.sentences) + "\n\n"
            outputs[index % num_shards].write(text.encode("utf-8"))
        if stats.documents == 0:
            raise readers.CorpusError(f"no documents in {', '.join(corpora)} "
                                      f"({stats.dropped_empty} empty documents dropped)")
        ok = True
    finally:
        for out in outputs:
            out.close()
        if not ok:
            for path in tmp_paths:
                files.remove(path)
    for k, path in enumerate(tmp_paths):
        files.rename(path, files.join(work_dir, f"text-{k}"))
    summary = {"documents": stats.documents, "sentences": stats.sentences,
               "dropped_empty_documents": stats.dropped_empty,
               "skipped_redirects": stats.skipped_redirects,
               "skipped_namespaces": stats.skipped_namespaces}
    files.write_json(done, summary)
    return summary


def _allow_open_files(needed: int) -> None:
    """Stage 1 keeps one file per shard open: raise the soft limit if it is too low."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise ValueError(f"{needed - 64} shards need {needed} open files but the limit is "
                             f"{hard}; use fewer --num_shards")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


# ----------------------------------------------------------------------- stage 2


def _read_documents(path: str):
    """Documents (lists of sentences) of a stage-1 text file."""
    sentences: list[str] = []
    with files.open_file(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                sentences.append(line)
            elif sentences:
                yield sentences
                sentences = []
    if sentences:
        yield sentences


_TOKENIZERS: dict = {}


def _die_with_parent(parent: int) -> None:
    """A pool worker's start: have the kernel kill it when process `parent`, the build,
    dies (on Linux; elsewhere an orphan ends at its next task). A build killed outright
    (SIGKILL, the OOM killer) cannot stop its workers itself, and one left writing its
    shard would write into the same temporary file as the re-run's worker."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the build died before the line above
        os._exit(1)


def _tokenizer(vocab_file: str, do_lower_case: bool, strip_accents: bool):
    """One tokenizer per process (building and tracing it costs about a second)."""
    key = (_absolute(vocab_file), do_lower_case, strip_accents)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = WordPieceTokenizer(vocab_file, do_lower_case, strip_accents)
    return _TOKENIZERS[key]


def build_shard(index: int, num_shards: int, work_dir: str, output_dir: str,
                vocab_file: str, max_seq_length: int, seed: int, do_lower_case: bool,
                strip_accents: bool) -> dict:
    """Tokenize shard `index`'s text and write its TFRecord; returns its counts."""
    tokenizer = _tokenizer(vocab_file, do_lower_case, strip_accents)
    cls_id, sep_id = tokenizer.special.cls, tokenizer.special.sep
    rng = random.Random(f"electra-tf-{seed}-shard-{index}")
    builder = ExampleBuilder(max_seq_length, rng)
    counts = {"examples": 0, "tokens": 0, "wordpieces": 0, "padding": 0}
    final = files.join(output_dir, shard_name(index, num_shards))
    tmp = files.join(output_dir, f".tmp-{shard_name(index, num_shards)}")

    try:
        _write_shard(tmp, index, work_dir, tokenizer, builder, counts, max_seq_length,
                     cls_id, sep_id)
    except BaseException:
        files.remove(tmp)
        raise
    files.rename(tmp, final)
    files.write_json(files.join(work_dir, f"shard-{index}.json"), counts)
    return counts


def _write_shard(tmp, index, work_dir, tokenizer, builder, counts, max_seq_length, cls_id,
                 sep_id):
    with tf.io.TFRecordWriter(tmp) as writer:
        def emit(segments):
            if segments is None:
                return
            ids, mask, segment_ids = make_features(*segments, max_seq_length, cls_id, sep_id)
            writer.write(serialize(ids, mask, segment_ids))
            real = sum(mask)
            counts["examples"] += 1
            counts["tokens"] += real
            counts["wordpieces"] += len(segments[0]) + len(segments[1])
            counts["padding"] += max_seq_length - real

        batch: list[list[str]] = []
        batch_sentences = 0

        def flush():
            texts = [s for document in batch for s in document]
            flat, splits = tokenizer.tokenize_batch(texts)
            flat = flat.tolist()
            position = 0
            for document in batch:
                for _ in document:
                    emit(builder.add_sentence(flat[splits[position]:splits[position + 1]]))
                    position += 1
                emit(builder.end_document())

        for document in _read_documents(files.join(work_dir, f"text-{index}")):
            batch.append(document)
            batch_sentences += len(document)
            if batch_sentences >= SENTENCE_BATCH:
                flush()
                batch, batch_sentences = [], 0
        if batch:
            flush()


def _build_shard_star(args):
    return build_shard(*args)


def build_dataset(corpora: list[str], vocab_file: str, output_dir: str,
                  max_seq_length: int = 128, num_shards: int = 1, num_processes: int = 1,
                  seed: int = 1, do_lower_case: bool = True, strip_accents: bool | None = None,
                  max_position_embeddings: int = 512, progress: bool = True) -> dict:
    """Build (or finish building) the TFRecord shards; returns the summary.

    A re-run with the same settings (corpus files, vocab contents, sizes, seed) writes
    only the shards that are missing; other settings in a used `output_dir` are an error.
    """
    strip_accents = do_lower_case if strip_accents is None else strip_accents
    if max_seq_length > max_position_embeddings:
        raise ValueError(f"max_seq_length={max_seq_length} exceeds "
                         f"max_position_embeddings={max_position_embeddings}")
    if max_seq_length < 8:
        raise ValueError(f"max_seq_length={max_seq_length} is too short (at least 8)")
    load_vocab(vocab_file)  # fail early, before reading the corpus
    settings = {"max_seq_length": max_seq_length, "num_shards": num_shards, "seed": seed,
                "do_lower_case": do_lower_case, "strip_accents": strip_accents,
                "vocab_file": _absolute(vocab_file), "vocab_sha256": sha256(vocab_file),
                "corpora": [corpus_fingerprint(c) for c in corpora]}
    files.makedirs(output_dir)
    work_dir = files.join(output_dir, WORK_DIR)
    summary_path = files.join(output_dir, "summary.json")
    settings_path = files.join(work_dir, "settings.json")
    done_counts: dict[int, dict] = {}
    for path, what in ((summary_path, "a dataset"), (settings_path, "an unfinished build")):
        if files.exists(path):
            recorded = read_state(path)
            if recorded.get("settings", recorded) != settings:
                raise ValueError(f"{output_dir} holds {what} built with other settings or "
                                 f"inputs ({path}); use another --output_dir or delete it")
            if path == summary_path:
                done_counts = {int(k): v for k, v in recorded["shard_counts"].items()}
    present = set(files.listdir(output_dir))
    missing = [k for k in range(num_shards) if shard_name(k, num_shards) not in present]
    if not missing and files.exists(summary_path):
        if files.exists(work_dir):  # a build killed while deleting its work files
            files.rmtree(work_dir)
        return read_state(summary_path)

    split_done = files.exists(files.join(work_dir, SPLIT_DONE))
    # Recorded before the split: a split that a killed build finished is then never
    # taken for one made with other settings (another shard count, other corpora).
    files.write_json(settings_path, settings)
    pool = None
    if num_processes > 1 and (not split_done or len(missing) > 1):
        # TensorFlow does not survive a fork once initialized: fork (fast) only while
        # this process has not imported it, else spawn. One pool for both stages (its
        # workers clean and split the text, then write the shards): each spawned worker
        # pays TensorFlow's import once.
        context = multiprocessing.get_context(
            "spawn" if "tensorflow" in sys.modules else "fork")
        pool = context.Pool(num_processes, initializer=_die_with_parent,
                            initargs=(os.getpid(),))
    try:
        try:
            read_summary = split_corpus(corpora, work_dir, num_shards, progress, pool)
        except BaseException:
            if not split_done:
                files.rmtree(work_dir)  # a failed read leaves nothing behind
            raise
        # Missing shards, and any whose counts were lost (killed between writing the
        # shard and its counts).
        known = set(done_counts) | {
            k for k in range(num_shards)
            if files.exists(files.join(work_dir, f"shard-{k}.json"))}
        pending = sorted(set(missing) | (set(range(num_shards)) - known))
        _write_shards(pending, work_dir, output_dir, num_shards, vocab_file, max_seq_length,
                      seed, do_lower_case, strip_accents, pool, progress)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    for k in range(num_shards):
        counts_path = files.join(work_dir, f"shard-{k}.json")
        if files.exists(counts_path):
            done_counts[k] = read_state(counts_path)
    summary = _summarize(read_summary, done_counts, num_shards, max_seq_length, settings)
    files.write_json(summary_path, summary)
    try:
        files.rmtree(work_dir)
    except (OSError, tf.errors.OpError) as e:  # the dataset is complete: only warn
        print(f"build_pretraining_dataset: could not delete {work_dir} ({e})",
              file=sys.stderr)
    return summary


def _write_shards(pending, work_dir, output_dir, num_shards, vocab_file, max_seq_length,
                  seed, do_lower_case, strip_accents, pool, progress):
    jobs = [(k, num_shards, work_dir, output_dir, vocab_file, max_seq_length, seed,
             do_lower_case, strip_accents) for k in pending]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="shard", desc="writing shards")
    if pool is not None and len(jobs) > 1:
        for _ in pool.imap_unordered(_build_shard_star, jobs):
            if bar:
                bar.update()
    else:
        for job in jobs:
            build_shard(*job)
            if bar:
                bar.update()
    if bar:
        bar.close()


def _summarize(read_summary, shard_counts, num_shards, max_seq_length, settings) -> dict:
    totals = {"examples": 0, "tokens": 0, "wordpieces": 0, "padding": 0}
    for k in range(num_shards):
        for key, value in shard_counts[k].items():
            totals[key] += value
    slots = totals["examples"] * max_seq_length
    return dict(read_summary, examples=totals["examples"], tokens=totals["tokens"],
                wordpieces=totals["wordpieces"],
                padding_fraction=(totals["padding"] / slots) if slots else 0.0,
                shards=num_shards, settings=settings,
                shard_counts={str(k): shard_counts[k] for k in range(num_shards)})


# ----------------------------------------------------------------------- CLI

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_multi_string("corpus", None, "FORMAT:PATH of a corpus (FORMAT one of "
                              f"{', '.join(readers.FORMATS)}); repeatable.", required=True, **fv)
    flags.DEFINE_string("vocab_file", None, "WordPiece vocab.txt.", required=True, **fv)
    flags.DEFINE_string("output_dir", None, "Where the shards go (the original's "
                        "<data_dir>/pretrain_tfrecords).", required=True, **fv)
    flags.DEFINE_integer("max_seq_length", 128, "Tokens per example.", lower_bound=8, **fv)
    flags.DEFINE_integer("max_position_embeddings", 512,
                         "The models' position table size; max_seq_length may not exceed it.",
                         lower_bound=8, **fv)
    flags.DEFINE_integer("num_shards", 16, "Number of output files.", lower_bound=1, **fv)
    flags.DEFINE_integer("num_processes", 1, "Worker processes for tokenizing/writing.",
                         lower_bound=1, **fv)
    flags.DEFINE_integer("seed", 1, "Random seed; same seed and inputs => same bytes.", **fv)
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.", **fv)
    flags.DEFINE_bool("strip_accents", None, "Strip accents (default: as --do_lower_case, "
                      "like the original).", **fv)
    flags.DEFINE_bool("progress", True, "Show progress bars.", **fv)
    return flag_values


def _run() -> str:
    summary = build_dataset(
        FLAGS.corpus, FLAGS.vocab_file, FLAGS.output_dir, FLAGS.max_seq_length,
        FLAGS.num_shards, FLAGS.num_processes, FLAGS.seed, FLAGS.do_lower_case,
        FLAGS.strip_accents, FLAGS.max_position_embeddings, FLAGS.progress)
    return (f"{FLAGS.output_dir}: {summary['shards']} shards, {summary['examples']:,} "
            f"examples, {summary['tokens']:,} tokens from {summary['documents']:,} documents "
            f"/ {summary['sentences']:,} sentences; padding {summary['padding_fraction']:.1%}")


def main():
    define_flags()
    cli.run_command("build_pretraining_dataset", _run)


if __name__ == "__main__":
    main()
