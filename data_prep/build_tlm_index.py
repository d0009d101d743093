"""build_tlm_index: a Whoosh BM25 index over a general corpus, for TLM retrieval.

Example::

  python -m data_prep.build_tlm_index --corpus=text:data/samples/wiki_leads/wiki_leads.txt \\
      --index_dir=data/tlm_index --procs=2

The index and its rules (what a re-run does, where partial builds go) are
:mod:`electra_tf.tlm.index`'s.
"""

from __future__ import annotations

from absl import app, flags

from data_prep import readers
from electra_tf import cli
from electra_tf.tlm.index import build_index

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
    app.run(cli.run_main("build_tlm_index", _run))


if __name__ == "__main__":
    main()
