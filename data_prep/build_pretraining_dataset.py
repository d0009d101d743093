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
tokenized (tf-text's C++ WordPiece, whole batches of sentences), packed and serialized
a batch at a time in numpy, and written as ``pretrain_data.tfrecord-K-of-N`` under a
temporary name, renamed when complete. A re-run skips finished shards. Shard K's
randomness comes from (seed, K) alone, so the same seed and inputs give byte-identical
shards whatever --num_processes is. With --num_processes > 1 one pool of workers does
both stages' work (cleaning and sentence splitting, then whole shards); it is forked
when it can be (no start-up), see :func:`_start_method`.
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
import threading
import time
from collections.abc import Iterable

import numpy as np
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
READ_BLOCK = 1 << 20  # stage 2 tokenizes whole documents about this many bytes at a time


def shard_name(index: int, num_shards: int) -> str:
    return f"pretrain_data.tfrecord-{index}-of-{num_shards}"


class ExampleBuilder:
    """Packs tokenized sentences into examples, as the original does.

    Works on sentence lengths: :meth:`pack` takes a batch's token counts and says which
    sentence goes to which example and segment; :func:`encode_examples` then copies the
    tokens. The random calls happen in the original's order, so a seeded
    ``random.Random`` gives the original's choices.
    """

    def __init__(self, max_length: int, rng: random.Random):
        self.max_length = max_length
        self.rng = rng
        self.target_length = max_length
        self.sentences: list[tuple[int, int]] = []  # (index, length) of pending sentences
        self.length = 0

    def pack(self, lengths: list[int]) -> tuple[list[int], list[int], list[int]]:
        """Examples from a batch of sentences: `lengths` holds each one's token count, -1
        where a document ends (a batch must end with one). Returns the pieces of the
        examples completed, in order: example number (from 0), sentence index in
        `lengths`, segment (0 = A, 1 = B); sentences without tokens are left out."""
        pieces: tuple[list[int], list[int], list[int]] = ([], [], [])
        for index, length in enumerate(lengths):
            if length < 0:
                if self.length:
                    self._create(pieces)
                continue
            self.sentences.append((index, length))
            self.length += length
            if self.length >= self.target_length:
                self._create(pieces)
        # Still pending now: only sentences without tokens (as in the original, they
        # stay for the next example, where they cost coin flips but add no tokens).
        return pieces

    def _create(self, pieces) -> None:
        """One example of the pending sentences (it has tokens: callers check)."""
        rng = self.rng
        if rng.random() < 0.1:
            first_target = 100000  # one segment, as in classification tasks
        else:
            first_target = (self.target_length - 3) // 2  # room for [CLS] [SEP] [SEP]
        example = pieces[0][-1] + 1 if pieces[0] else 0
        first = second = 0  # tokens in A and B so far
        for index, length in self.sentences:
            # Into A if A is empty, if it still fits, or (B still empty, A short of
            # its target) on a coin flip; otherwise into B.
            if (not first or first + length < first_target
                    or (not second and first < first_target and rng.random() < 0.5)):
                first += length
                segment = 0
            else:
                second += length
                segment = 1
            if length:
                pieces[0].append(example)
                pieces[1].append(index)
                pieces[2].append(segment)
        self.sentences, self.length = [], 0
        if rng.random() < 0.05:
            self.target_length = rng.randint(5, self.max_length)
        else:
            self.target_length = self.max_length


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


def encode_examples(flat: np.ndarray, splits: np.ndarray, pieces, max_length: int,
                    cls_id: int, sep_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`ExampleBuilder.pack`'s examples as (input_ids, input_mask, segment_ids),
    int64 [examples, max_length]: what :func:`make_features` gives for each, with A (its
    sentences' tokens in order) cut to max_length - 2 and B to what is left. Sentence i's
    tokens are ``flat[splits[i]:splits[i + 1]]``."""
    example, index, segment = (np.asarray(p, np.int64) for p in pieces)
    count = int(example[-1]) + 1 if len(example) else 0
    group = example * 2 + segment
    order = np.argsort(group, kind="stable")  # A's sentences, then B's, in their order
    example, segment, group, index = example[order], segment[order], group[order], index[order]
    start = splits[index]
    length = splits[index + 1] - start
    before = np.cumsum(length) - length
    first = np.ones(len(group), bool)
    first[1:] = group[1:] != group[:-1]
    offset = before - np.maximum.accumulate(np.where(first, before, 0))  # within segment
    totals = np.bincount(group, weights=length, minlength=2 * count).astype(np.int64)
    a = np.minimum(totals[0::2], max_length - 2)
    b = np.minimum(totals[1::2], np.maximum(0, max_length - a - 3))
    take = np.clip(np.where(segment == 0, a[example], b[example]) - offset, 0, length)
    column = np.where(segment == 0, 1, 2 + a[example]) + offset
    repeat = np.repeat(np.arange(len(take)), take)
    within = np.arange(int(take.sum())) - np.repeat(np.cumsum(take) - take, take)
    input_ids = np.zeros((count, max_length), np.int64)
    input_ids.reshape(-1)[example[repeat] * max_length + column[repeat] + within] = \
        flat[start[repeat] + within]
    rows = np.arange(count)
    input_ids[:, 0] = cls_id
    input_ids[rows, 1 + a] = sep_id
    with_b = b > 0
    input_ids[rows[with_b], (2 + a + b)[with_b]] = sep_id
    used = (2 + a + np.where(with_b, b + 1, 0))[:, None]
    columns = np.arange(max_length)
    input_mask = (columns < used).astype(np.int64)
    segment_ids = ((columns >= (2 + a)[:, None]) & (columns < used)).astype(np.int64)
    return input_ids, input_mask, segment_ids


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, length: int) -> bytes:
    """A length-delimited field's tag and length."""
    return bytes([tag]) + _varint(length)


def _feature_header(name: bytes, payload: int) -> bytes:
    """A Features map entry up to its values: key `name`, an Int64List whose packed
    values take `payload` bytes."""
    int64_list = 1 + len(_varint(payload)) + payload
    feature = 1 + len(_varint(int64_list)) + int64_list
    entry = 1 + len(_varint(len(name))) + len(name) + 1 + len(_varint(feature)) + feature
    return (_field(0x0A, entry) + _field(0x0A, len(name)) + name + _field(0x12, feature)
            + _field(0x1A, int64_list) + _field(0x0A, payload))


def _packed_varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Protobuf's packed encoding of each row of `values` (ids, each in [0, 2**28): at
    most 4 bytes): (all rows' bytes, where each row's start, its length), as
    :func:`_join_rows` takes them."""
    v = values.reshape(-1)
    low, high = (int(v.min()), int(v.max())) if len(v) else (0, 0)
    if low < 0 or high >= 1 << 28:
        raise ValueError(f"values must be in [0, 2**28); got {low}..{high}")
    width = 1 + sum(high >= 1 << 7 * k for k in (1, 2, 3))
    if width == 1:
        data, size = v.astype(np.uint8), np.ones(len(v), np.uint8)
    else:
        v = v.astype(np.uint32)
        longer = [v >= 1 << 7 * k for k in range(1, width)]  # needs a 2nd, 3rd, 4th byte
        size = np.ones(len(v), np.uint8)
        # The bytes of each value in one little-endian word: 7 bits per byte, the top
        # bit set where another byte follows.
        word = (v & 0x7F) | (v & 0x3F80) << 1 | (v & 0x1FC000) << 2 | (v & 0xFE00000) << 3
        for k, more in enumerate(longer):
            size += more
            word |= more.astype(np.uint32) << (8 * k + 7)
        data = word.astype("<u4").view(np.uint8).reshape(-1, 4)[:, :width]
        data = data[np.arange(width, dtype=np.uint8) < size[:, None]]
    lengths = size.reshape(values.shape).sum(axis=1, dtype=np.int64)
    return data, np.cumsum(lengths) - lengths, lengths


def _headers(payloads: np.ndarray, make) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`make(payload)` for each row, as :func:`_join_rows` takes them; made once per
    distinct payload size."""
    distinct, inverse = np.unique(payloads, return_inverse=True)
    made = [make(int(p)) for p in distinct]
    lengths = np.array([len(m) for m in made], np.int64)
    return (np.frombuffer(b"".join(made), np.uint8), (np.cumsum(lengths) - lengths)[inverse],
            lengths[inverse])


def _join_rows(parts) -> list[bytes]:
    """Row i: the i-th piece of each part, in order; a part is (bytes as uint8, each
    row's start in them, its length)."""
    lengths = np.stack([part[2] for part in parts], axis=1)
    ends = np.cumsum(lengths.sum(axis=1))
    starts = (ends - lengths.sum(axis=1))[:, None] + np.cumsum(lengths, axis=1) - lengths
    out = np.empty(int(ends[-1]) if len(ends) else 0, np.uint8)
    for column, (data, begin, length) in enumerate(parts):
        within = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
        out[np.repeat(starts[:, column], length) + within] = data[np.repeat(begin, length)
                                                                   + within]
    joined = out.tobytes()
    ends = ends.tolist()
    return [joined[start:end] for start, end in zip([0] + ends[:-1], ends, strict=True)]


FEATURE_NAMES = (b"input_ids", b"input_mask", b"segment_ids")  # in serialized map order


def serialize_examples(input_ids: np.ndarray, input_mask: np.ndarray,
                       segment_ids: np.ndarray) -> list[bytes]:
    """:func:`serialize` of each row, byte for byte, for a whole batch at once, in numpy
    (one protobuf message per example cost more than tokenizing)."""
    parts, body = [], 0
    for name, values in zip(FEATURE_NAMES, (input_ids, input_mask, segment_ids), strict=True):
        payload = _packed_varints(values)
        header = _headers(payload[2], lambda p, name=name: _feature_header(name, p))
        parts += (header, payload)
        body = body + header[2] + payload[2]
    return _join_rows([_headers(body, lambda n: _field(0x0A, n))] + parts)


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
        documents = readers.read_corpora_lines(corpora, stats, pool)
        if progress:
            from tqdm import tqdm
            documents = tqdm(documents, unit="doc", desc="reading corpora")
        for index, (_, text) in enumerate(documents):
            outputs[index % num_shards].write(text)
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


def _document_blocks(path: str):
    """Lines of a stage-1 text file (bytes), whole documents about READ_BLOCK bytes at a
    time; an empty line ends each document."""
    with files.open_file(path, "rb") as f:
        parts: list[bytes] = []  # read since the last document end
        last = b""  # the byte before `block`: a "\n\n" may straddle two reads
        while block := f.read(READ_BLOCK):
            end = (last + block).rfind(b"\n\n")
            if end < 0:
                parts.append(block)
                last = block[-1:]
                continue
            end += 2 - len(last)  # in `block`, after the "\n\n"
            last = block[-1:]
            parts.append(block[:end])
            yield b"".join(parts)[:-1].split(b"\n")
            parts = [block[end:]]
        rest = b"".join(parts).rstrip(b"\n")
        if rest:
            yield rest.split(b"\n") + [b""]


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
    """Tokenize shard `index`'s text and write its TFRecord; returns its counts and, under
    "seconds", the time each step took."""
    seconds = dict.fromkeys(("tokenizer_setup", "read", "tokenize", "pack", "write"), 0.0)
    start = time.perf_counter()
    tokenizer = _tokenizer(vocab_file, do_lower_case, strip_accents)
    seconds["tokenizer_setup"] = time.perf_counter() - start
    rng = random.Random(f"electra-tf-{seed}-shard-{index}")
    builder = ExampleBuilder(max_seq_length, rng)
    counts = {"examples": 0, "tokens": 0, "wordpieces": 0, "padding": 0}
    final = files.join(output_dir, shard_name(index, num_shards))
    tmp = files.join(output_dir, f".tmp-{shard_name(index, num_shards)}")
    try:
        _write_shard(tmp, files.join(work_dir, f"text-{index}"), tokenizer, builder, counts,
                     seconds)
    except BaseException:
        files.remove(tmp)
        raise
    # The counts first: a shard under its final name always has them, so a re-run
    # never writes a finished shard again.
    files.write_json(files.join(work_dir, f"shard-{index}.json"), counts)
    files.rename(tmp, final)
    return dict(counts, seconds=seconds)


def _write_shard(tmp, text_path, tokenizer, builder, counts, seconds):
    max_length = builder.max_length
    cls_id, sep_id = tokenizer.special.cls, tokenizer.special.sep
    clock = time.perf_counter()

    def lap(step):
        nonlocal clock
        now = time.perf_counter()
        seconds[step] += now - clock
        clock = now

    with tf.io.TFRecordWriter(tmp) as writer:
        for lines in _document_blocks(text_path):
            lap("read")
            flat, splits = tokenizer.tokenize_batch(lines)
            lap("tokenize")
            lengths = np.diff(splits)
            lengths[[i for i, line in enumerate(lines) if not line]] = -1  # document ends
            pieces = builder.pack(lengths.tolist())
            if not pieces[0]:
                lap("pack")
                continue
            input_ids, input_mask, segment_ids = encode_examples(
                flat, splits, pieces, max_length, cls_id, sep_id)
            lap("pack")
            for record in serialize_examples(input_ids, input_mask, segment_ids):
                writer.write(record)
            real = int(input_mask.sum())
            counts["examples"] += len(input_ids)
            counts["tokens"] += real
            # Less [CLS] and [SEP] each, and the second [SEP] of those with a B segment.
            with_b = int(np.count_nonzero(segment_ids.any(axis=1)))
            counts["wordpieces"] += real - 2 * len(input_ids) - with_b
            counts["padding"] += input_mask.size - real
            lap("write")


def _build_shard_star(args):
    return build_shard(*args)


def build_dataset(corpora: list[str], vocab_file: str, output_dir: str,
                  max_seq_length: int = 128, num_shards: int = 1, num_processes: int = 1,
                  seed: int = 1, do_lower_case: bool = True, strip_accents: bool | None = None,
                  max_position_embeddings: int = 512, progress: bool = True,
                  timings: dict | None = None) -> dict:
    """Build (or finish building) the TFRecord shards; returns the summary.

    A re-run with the same settings (corpus files, vocab contents, sizes, seed) writes
    only the shards that are missing; other settings in a used `output_dir` are an error.
    A `timings` dict gets the seconds of each stage (wall), and under "workers" the
    seconds the shard writers spent per step, summed.
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
    timings = {} if timings is None else timings
    timings["start_method"] = None
    clock = time.perf_counter()
    if num_processes > 1 and (not split_done or len(missing) > 1):
        # One pool for both stages (its workers clean and split the text, then write
        # the shards): workers start once.
        timings["start_method"] = _start_method(
            [output_dir, vocab_file] + [c.partition(":")[2] for c in corpora])
        pool = multiprocessing.get_context(timings["start_method"]).Pool(
            num_processes, initializer=_die_with_parent, initargs=(os.getpid(),))
        pool.apply(os.getpid)  # a worker is up
    timings["start_up"] = time.perf_counter() - clock
    try:
        try:
            read_summary = split_corpus(corpora, work_dir, num_shards, progress, pool)
        except BaseException:
            if not split_done:
                files.rmtree(work_dir)  # a failed read leaves nothing behind
            raise
        timings["read_split"] = time.perf_counter() - clock - timings["start_up"]
        # Missing shards, and any whose counts file is gone (written again: the same
        # bytes).
        known = set(done_counts) | {
            k for k in range(num_shards)
            if files.exists(files.join(work_dir, f"shard-{k}.json"))}
        pending = sorted(set(missing) | (set(range(num_shards)) - known))
        clock = time.perf_counter()
        timings["workers"] = _write_shards(
            pending, work_dir, output_dir, num_shards, vocab_file, max_seq_length, seed,
            do_lower_case, strip_accents, pool, progress)
        timings["write_shards"] = time.perf_counter() - clock
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


def _start_method(paths: list[str]) -> str:
    """fork while this process has not started TensorFlow's runtime and runs no other
    Python thread: the workers then inherit the imported modules (no start-up) and each
    starts its own runtime. A started runtime does not survive a fork, and a lock held by
    another thread (a notebook kernel's, a test runner's) stays held in the child: then
    spawn (each worker imports TensorFlow, seconds). Remote paths spawn too: a bucket's
    file system may keep threads of its own."""
    from tensorflow.python.eager import context

    runtime = context.context_safe()
    started = runtime is not None and getattr(runtime, "_context_handle", 1) is not None
    if (sys.platform.startswith("linux") and not started and threading.active_count() == 1
            and all(map(files.is_local, paths))):
        return "fork"
    return "spawn"


def _write_shards(pending, work_dir, output_dir, num_shards, vocab_file, max_seq_length,
                  seed, do_lower_case, strip_accents, pool, progress) -> dict:
    """Build the `pending` shards; returns the seconds the workers spent per step."""
    # Largest first: the last shards to finish are then small ones, and no worker waits
    # long for another (the bytes do not depend on the order).
    sizes = {k: files.size_and_mtime(files.join(work_dir, f"text-{k}"))[0] for k in pending}
    jobs = [(k, num_shards, work_dir, output_dir, vocab_file, max_seq_length, seed,
             do_lower_case, strip_accents) for k in sorted(pending, key=lambda k: -sizes[k])]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(jobs), unit="shard", desc="writing shards")
    if pool is not None and len(jobs) > 1:
        results = pool.imap_unordered(_build_shard_star, jobs)
    else:
        results = (build_shard(*job) for job in jobs)
    seconds: dict[str, float] = {}
    for counts in results:
        for step, value in counts["seconds"].items():
            seconds[step] = seconds.get(step, 0.0) + value
        if bar:
            bar.update()
    if bar:
        bar.close()
    return seconds


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
