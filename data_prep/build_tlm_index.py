"""build_tlm_index: a Whoosh BM25 index over a general corpus, for TLM retrieval
(``electra-build-tlm-index``; ``electra-tlm`` builds it when it is missing). This module
owns the index's schema and analyzer, which :mod:`electra_tf.tlm.retrieval` reads.

Example::

  electra-build-tlm-index --corpus=text:data/samples/wiki_leads/wiki_leads.txt \\
      --index_dir=data/tlm_index --procs=2

Documents come from the corpus readers (any ``FORMAT:PATH`` the data_prep tools take),
whole or cut into passages of ``passage_words`` words. Stored fields: id and text.
Analyzer: lower-cased standard tokens, no stopwords, no stemming (``stem`` adds Porter
stemming). ``tlm_index.json`` records the inputs (sizes, mtimes), the analyzer, the
passage length and the BM25 k1/b to search with, so a re-run with the same inputs does
nothing and other inputs are an error (or a rebuild with ``overwrite``); an index written
by an older version of this module is rebuilt.

Passages with no terms are left out (they match no query), and each document's exact
number of terms is kept in a column (``length``): Whoosh's own field lengths are rounded
to one byte, and the Lucene BM25 of :mod:`electra_tf.tlm.retrieval` needs the exact ones
to rank as bm25s does.

Paths go through :mod:`electra_tf.files`, so corpora and the index may live in a bucket
(``gs://...``). Whoosh writes local files only: a local `index_dir` is built in
``<index_dir>.partial`` and renamed into place when complete; any other is built in a
local temporary folder (``$TMPDIR``), copied there, and ``tlm_index.json`` written last.
Either way an index is complete when its ``tlm_index.json`` is there. Whoosh reads local
files only too: search an index that is not local through ``files.local_copy(index_dir)``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator

from absl import flags, logging

from data_prep import readers
from data_prep.build_pretraining_dataset import corpus_fingerprint, read_state
from electra_tf import cli, files

TEXT_FIELD = "text"
ID_FIELD = "id"
LENGTH_FIELD = "length"  # a column: the exact number of terms of the text
SETTINGS_FILE = "tlm_index.json"
# Whoosh's StandardAnalyzer expression (words, with inner dots: "e.g", "3.14").
TOKEN_PATTERN = r"\w+(\.?\w+)*"
PARTIAL_SUFFIX = ".partial"
FORMAT_VERSION = 2  # 2: the length column, passages without terms left out


def make_analyzer(stem: bool = False):
    """Lower-cased standard tokens, no stopwords (and no length filter); Porter stems
    with `stem`."""
    from whoosh.analysis import LowercaseFilter, RegexTokenizer, StemFilter

    chain = RegexTokenizer(expression=TOKEN_PATTERN) | LowercaseFilter()
    if stem:
        chain = chain | StemFilter()
    return chain


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
            "corpora": [corpus_fingerprint(c) for c in corpora],
            "passage_words": passage_words, "stem": stem,
            "analyzer": "RegexTokenizer|LowercaseFilter" + ("|StemFilter" if stem else "")}


def _normalized(index_dir: str) -> str:
    return os.path.normpath(index_dir) if files.is_local(index_dir) else index_dir.rstrip("/")


def _holds_index(index_dir: str) -> bool:
    """Whether folder `index_dir` holds a Whoosh index (its table of contents)."""
    if files.is_local(index_dir):
        from whoosh import index

        return index.exists_in(index_dir)
    return bool(files.glob(files.join(index_dir, "_MAIN_*.toc")))


@contextlib.contextmanager
def _building(index_dir: str) -> Iterator[str]:
    """A local folder to build the index in, put at `index_dir` (replacing what is
    there) on a clean exit; on an error nothing is left and `index_dir` is untouched."""
    if not files.is_local(index_dir):
        with files.staged_output(index_dir) as staged:
            os.makedirs(staged)
            yield staged
        return
    partial = index_dir + PARTIAL_SUFFIX
    files.makedirs(partial)
    try:
        yield partial
    except BaseException:
        files.rmtree(partial)
        raise
    files.replace_tree(partial, index_dir)  # a rename, beside the target
    files.rmtree(partial)


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
    index_dir = _normalized(index_dir)
    settings = index_settings(corpora, passage_words, stem)
    settings_path = files.join(index_dir, SETTINGS_FILE)
    if files.exists(settings_path):
        recorded = read_state(settings_path)
        if recorded.get("inputs") == settings and _holds_index(index_dir):
            if (recorded.get("k1"), recorded.get("b")) != (k1, b):
                recorded.update(k1=k1, b=b)
                files.write_json(settings_path, recorded)
            return recorded
        inputs = recorded.get("inputs") or {}
        version = inputs.get("format_version", 0)
        if dict(inputs, format_version=FORMAT_VERSION) == settings and version < FORMAT_VERSION:
            logging.warning("%s was built by an older version (format %s): rebuilding it",
                            index_dir, version)
        elif inputs == settings:
            logging.warning("%s records these settings but its index files are missing: "
                            "rebuilding it", index_dir)
        elif not overwrite:
            raise ValueError(f"{index_dir} holds an index built from other inputs or "
                             f"settings ({settings_path}); use another --index_dir or "
                             f"--overwrite")
    elif files.exists(index_dir) and files.listdir(index_dir) and not overwrite:
        raise ValueError(f"{index_dir} exists and is not a TLM index; use another "
                         f"--index_dir or --overwrite")

    partial = index_dir + PARTIAL_SUFFIX
    if files.exists(partial):
        logging.warning("removing %s, left by an interrupted build", partial)
        files.rmtree(partial)
    from whoosh import columns

    analyzer = make_analyzer(stem)
    schema = fields.Schema(**{
        ID_FIELD: fields.ID(stored=True, unique=True),
        TEXT_FIELD: fields.TEXT(stored=True, analyzer=analyzer),
        LENGTH_FIELD: fields.COLUMN(columns.NumericColumn("I"))})
    stats = readers.ReadStats()
    count = no_terms = 0
    started = time.time()
    with _building(index_dir) as folder:
        ix = index.create_in(folder, schema)
        if procs > 1:
            writer = ix.writer(procs=procs, limitmb=limitmb, multisegment=True)
        else:
            writer = ix.writer(limitmb=limitmb)
        try:
            with tqdm(unit="doc", desc="indexing", disable=not progress) as bar:
                for doc_id, text in passages(readers.read_corpora(corpora, stats),
                                             passage_words):
                    length = sum(1 for _ in analyzer(text))
                    if length:
                        writer.add_document(**{ID_FIELD: doc_id, TEXT_FIELD: text,
                                               LENGTH_FIELD: length})
                        count += 1
                    else:
                        no_terms += 1
                    bar.update()
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        ix.close()
        summary = {"inputs": settings, "k1": k1, "b": b, "documents": stats.documents,
                   "indexed": count, "dropped_empty": stats.dropped_empty,
                   "dropped_no_terms": no_terms,
                   "build_seconds": round(time.time() - started, 3), "procs": procs,
                   "limitmb": limitmb}
        if files.is_local(index_dir):  # renamed into place with the index, all at once
            files.write_json(os.path.join(folder, SETTINGS_FILE), summary)
    if not files.is_local(index_dir):  # copied file by file: the settings come last
        files.write_json(settings_path, summary)
    return summary


FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_multi_string("corpus", None, "FORMAT:PATH of a corpus (FORMAT one of "
                              f"{', '.join(readers.FORMATS)}); repeatable.", required=True, **fv)
    flags.DEFINE_string("index_dir", None, "Where the Whoosh index goes.", required=True, **fv)
    flags.DEFINE_integer("passage_words", 0, "Cut documents into passages of this many "
                         "words (0: index whole documents).", lower_bound=0, **fv)
    flags.DEFINE_bool("stem", False, "Porter-stem terms (the reference used no stemming).",
                      **fv)
    flags.DEFINE_integer("procs", 1, "Whoosh writer processes (multisegment).", lower_bound=1,
                         **fv)
    flags.DEFINE_integer("limitmb", 256, "Whoosh writer memory per process, MB.",
                         lower_bound=16, **fv)
    flags.DEFINE_float("k1", 1.2, "BM25 k1 recorded for searching.", lower_bound=0.0, **fv)
    flags.DEFINE_float("b", 0.75, "BM25 b recorded for searching.", lower_bound=0.0,
                       upper_bound=1.0, **fv)
    flags.DEFINE_bool("overwrite", False, "Rebuild an index built from other inputs.", **fv)
    flags.DEFINE_bool("progress", True, "Show a progress bar.", **fv)
    return flag_values


def _run() -> str:
    summary = build_index(FLAGS.corpus, FLAGS.index_dir, FLAGS.passage_words, FLAGS.stem,
                          FLAGS.procs, FLAGS.limitmb, FLAGS.k1, FLAGS.b, FLAGS.overwrite,
                          FLAGS.progress)
    return (f"{FLAGS.index_dir}: {summary['indexed']:,} "
            f"{'passages' if summary['inputs']['passage_words'] else 'documents'} from "
            f"{summary['documents']:,} documents (built in {summary['build_seconds']:.1f} s)")


def main():
    define_flags()
    cli.run_command("build_tlm_index", _run)


if __name__ == "__main__":
    main()
