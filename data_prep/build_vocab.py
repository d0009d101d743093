"""build_vocab: learn a WordPiece vocab.txt from corpora, in BERT's special-token layout.

Example::

  python -m data_prep.build_vocab --corpus=wikipedia:data/enwiki.xml.bz2 \\
      --corpus=books:data/books --vocab_size=30522 --output=data/vocab.txt

The vocab starts with BERT uncased's reserved block: [PAD]=0, [unused0..98]=1..99,
[UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, then the learned tokens (tensorflow-text's
WordPiece learner through keras-hub). ``--max_sentences`` caps how much text is read.
Corpora and output go through :mod:`electra_tf.files` (local paths or ``gs://...``).
"""

from __future__ import annotations

from absl import flags

from data_prep import readers
from electra_tf import cli, files
from electra_tf.tokenization import BERT_SPECIAL_IDS

NUM_UNUSED = 99  # [unused0] .. [unused98] before [UNK], as in BERT uncased


def reserved_tokens(num_unused: int = NUM_UNUSED) -> list[str]:
    """BERT's reserved block; with the default, ids match BERT uncased's exactly."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(num_unused)]
    return tokens + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_vocab(sentences, vocab_size: int, do_lower_case: bool = True,
                strip_accents: bool | None = None, num_unused: int = NUM_UNUSED) -> list[str]:
    """Learn a vocab (about `vocab_size` tokens) from an iterable of sentences."""
    import keras_hub
    import tensorflow as tf

    strip_accents = do_lower_case if strip_accents is None else strip_accents
    reserved = reserved_tokens(num_unused)
    if vocab_size <= len(reserved):
        raise ValueError(f"vocab_size={vocab_size} leaves no room after the {len(reserved)} "
                         f"reserved tokens")
    sentences = list(sentences)
    if not sentences:
        raise readers.CorpusError("the corpus has no sentences to learn a vocab from")
    dataset = tf.data.Dataset.from_tensor_slices(sentences).batch(1024)
    learned = keras_hub.tokenizers.compute_word_piece_vocabulary(
        dataset, vocabulary_size=vocab_size, lowercase=do_lower_case,
        strip_accents=strip_accents, reserved_tokens=reserved)
    vocab = list(dict.fromkeys(learned))  # the learner keeps reserved tokens first
    if num_unused == NUM_UNUSED:
        assert all(vocab[i] == t for t, i in BERT_SPECIAL_IDS.items())
    return vocab


def write_vocab(vocab: list[str], path: str) -> None:
    """Write atomically: a temporary file renamed when complete."""
    files.atomic_write(path, "\n".join(vocab) + "\n")


def build_vocab_file(corpora: list[str], output: str, vocab_size: int,
                     do_lower_case: bool = True, strip_accents: bool | None = None,
                     max_sentences: int = 2_000_000, progress: bool = True
                     ) -> tuple[list[str], readers.ReadStats]:
    """Learn a vocab from the first `max_sentences` sentences of `corpora` (FORMAT:PATH
    specs) and write it to `output`; returns the vocab and what was read."""
    from tqdm import tqdm

    stats = readers.ReadStats()

    def sentences():
        with tqdm(total=max_sentences, unit="sent", desc="reading",
                  disable=not progress) as bar:
            count = 0
            for document in readers.read_corpora(corpora, stats):
                for sentence in document.sentences:
                    yield sentence
                    count += 1
                    bar.update()
                    if count >= max_sentences:
                        return

    read = list(sentences())
    if not read:
        raise readers.CorpusError(f"no sentences in {', '.join(corpora)} "
                                  f"({stats.dropped_empty} empty documents dropped)")
    vocab = build_vocab(read, vocab_size, do_lower_case, strip_accents)
    write_vocab(vocab, output)
    return vocab, stats


FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_multi_string("corpus", None, "FORMAT:PATH of a corpus (FORMAT one of "
                              f"{', '.join(readers.FORMATS)}); repeatable.", required=True, **fv)
    flags.DEFINE_string("output", None, "Where to write vocab.txt.", required=True, **fv)
    flags.DEFINE_integer("vocab_size", 30522, "Target vocab size (reserved tokens included).",
                         lower_bound=200, **fv)
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the text.", **fv)
    flags.DEFINE_bool("strip_accents", None, "Strip accents (NFD, drop combining marks; "
                      "default: as --do_lower_case).", **fv)
    flags.DEFINE_integer("max_sentences", 2_000_000, "Read at most this many sentences.",
                         lower_bound=1, **fv)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **fv)
    return flag_values


def _run() -> str:
    vocab, stats = build_vocab_file(FLAGS.corpus, FLAGS.output, FLAGS.vocab_size,
                                    FLAGS.do_lower_case, FLAGS.strip_accents,
                                    FLAGS.max_sentences, FLAGS.progress)
    return (f"wrote {FLAGS.output}: {len(vocab)} tokens from {stats.documents} documents, "
            f"{stats.sentences} sentences ({stats.dropped_empty} empty documents dropped)")


def main():
    define_flags()
    cli.run_command("build_vocab", _run)


if __name__ == "__main__":
    main()
