"""build_tlm_index: a Whoosh BM25 index over a general corpus, for TLM retrieval.

Example::

  python -m data_prep.build_tlm_index --corpus=text:data/samples/wiki_leads/wiki_leads.txt \\
      --index_dir=data/tlm_index --procs=2

Documents come from the corpus readers (any ``FORMAT:PATH`` the other data_prep tools
take), whole or cut into passages of ``--passage_words`` words. Stored fields: id and
text. Analyzer: lower-cased standard tokens, no stopwords, no stemming (``--stem`` adds
Porter stemming). The index is built in ``<index_dir>.partial`` and renamed into place
when complete; ``tlm_index.json`` records the inputs (sizes, mtimes), the analyzer, the
passage length and the BM25 k1/b to search with, so a re-run with the same inputs does
nothing and other inputs are an error (or a rebuild with ``--overwrite``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator

from absl import app, flags, logging

from data_prep import readers
from data_prep.build_pretraining_dataset import _fingerprint, _read_json, _write_json
from electra_tf.tlm.retrieval import ID_FIELD, SETTINGS_FILE, TEXT_FIELD, make_analyzer

PARTIAL_SUFFIX = ".partial"
FORMAT_VERSION = 1


def passages(documents: Iterable[readers.Document], passage_words: int = 0
             ) -> Iterator[tuple[str, str]]:
    """(id, text): each document whole (id "<n>"), or cut into passages of
    `passage_words` words (ids "<n>-<part>"); n counts documents from 0."""
    for n, document in enumerate(documents):
        text = " ".join(document.sentences)
        if passage_words <= 0:
            yield str(n), text
            continue
        words = text.split()
        for part, start in enumerate(range(0, len(words), passage_words)):
            yield f"{n}-{part}", " ".join(words[start:start + passage_words])


def index_settings(corpora: list[str], passage_words: int, stem: bool) -> dict:
    """What identifies an index's contents."""
    return {"format_version": FORMAT_VERSION,
            "corpora": [_fingerprint(c) for c in corpora],
            "passage_words": passage_words, "stem": stem,
            "analyzer": "RegexTokenizer|LowercaseFilter" + ("|StemFilter" if stem else "")}


def build_index(corpora: list[str], index_dir: str, passage_words: int = 0,
                stem: bool = False, procs: int = 1, limitmb: int = 256, k1: float = 1.2,
                b: float = 0.75, overwrite: bool = False, progress: bool = True) -> dict:
    """Build the index unless it exists with the same inputs; returns its settings
    (with counts). A leftover ``<index_dir>.partial`` (an interrupted build) is removed
    and the build starts over."""
    from tqdm import tqdm
    from whoosh import fields, index

    if passage_words < 0:
        raise ValueError(f"passage_words={passage_words}: 0 (whole documents) or more")
    for spec in corpora:
        readers.parse_spec(spec)
    index_dir = os.path.normpath(index_dir)
    settings = index_settings(corpora, passage_words, stem)
    settings_path = os.path.join(index_dir, SETTINGS_FILE)
    if os.path.exists(settings_path):
        recorded = _read_json(settings_path)
        if recorded.get("inputs") == settings and index.exists_in(index_dir):
            if (recorded.get("k1"), recorded.get("b")) != (k1, b):
                recorded.update(k1=k1, b=b)
                _write_json(settings_path, recorded)
            return recorded
        if not overwrite:
            raise ValueError(f"{index_dir} holds an index built from other inputs or "
                             f"settings ({settings_path}); use another --index_dir or "
                             f"--overwrite")
    elif os.path.exists(index_dir) and os.listdir(index_dir) and not overwrite:
        raise ValueError(f"{index_dir} exists and is not a TLM index; use another "
                         f"--index_dir or --overwrite")

    partial = index_dir + PARTIAL_SUFFIX
    if os.path.exists(partial):
        logging.warning("removing %s, left by an interrupted build", partial)
        shutil.rmtree(partial)
    os.makedirs(partial)
    schema = fields.Schema(**{
        ID_FIELD: fields.ID(stored=True, unique=True),
        TEXT_FIELD: fields.TEXT(stored=True, analyzer=make_analyzer(stem))})
    stats = readers.ReadStats()
    count = 0
    started = time.time()
    try:
        ix = index.create_in(partial, schema)
        if procs > 1:
            writer = ix.writer(procs=procs, limitmb=limitmb, multisegment=True)
        else:
            writer = ix.writer(limitmb=limitmb)
        try:
            with tqdm(unit="doc", desc="indexing", disable=not progress) as bar:
                for doc_id, text in passages(readers.read_corpora(corpora, stats),
                                             passage_words):
                    writer.add_document(**{ID_FIELD: doc_id, TEXT_FIELD: text})
                    count += 1
                    bar.update()
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        seconds = time.time() - started
        summary = {"inputs": settings, "k1": k1, "b": b, "documents": stats.documents,
                   "indexed": count, "dropped_empty": stats.dropped_empty,
                   "build_seconds": round(seconds, 3), "procs": procs, "limitmb": limitmb}
        _write_json(os.path.join(partial, SETTINGS_FILE), summary)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if os.path.exists(index_dir):
        shutil.rmtree(index_dir)
    os.replace(partial, index_dir)
    return summary


FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_multi_string("corpus", None, "FORMAT:PATH of a corpus (FORMAT one of "
                              f"{', '.join(readers.FORMATS)}); repeatable.", required=True)
    flags.DEFINE_string("index_dir", None, "Where the Whoosh index goes.", required=True)
    flags.DEFINE_integer("passage_words", 0, "Cut documents into passages of this many "
                         "words (0: index whole documents).", lower_bound=0)
    flags.DEFINE_bool("stem", False, "Porter-stem terms (the reference used no stemming).")
    flags.DEFINE_integer("procs", 1, "Whoosh writer processes (multisegment).", lower_bound=1)
    flags.DEFINE_integer("limitmb", 256, "Whoosh writer memory per process, MB.",
                         lower_bound=16)
    flags.DEFINE_float("k1", 1.2, "BM25 k1 recorded for searching.", lower_bound=0.0)
    flags.DEFINE_float("b", 0.75, "BM25 b recorded for searching.", lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_bool("overwrite", False, "Rebuild an index built from other inputs.")
    flags.DEFINE_bool("progress", True, "Show a progress bar.")


def _main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        summary = build_index(FLAGS.corpus, FLAGS.index_dir, FLAGS.passage_words, FLAGS.stem,
                              FLAGS.procs, FLAGS.limitmb, FLAGS.k1, FLAGS.b, FLAGS.overwrite,
                              FLAGS.progress)
    except (readers.CorpusError, ValueError, OSError) as e:
        print(f"build_tlm_index: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{FLAGS.index_dir}: {summary['indexed']:,} "
          f"{'passages' if summary['inputs']['passage_words'] else 'documents'} from "
          f"{summary['documents']:,} documents (built in {summary['build_seconds']:.1f} s)")


def main():
    define_flags()
    app.run(_main)


if __name__ == "__main__":
    main()
