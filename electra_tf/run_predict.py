"""electra-predict: label a TSV or JSONL file with a finetuned model, one JSON object per row.

Examples::

  # a finetuning run's model (its run dir holds finetuned.keras) on GLUE-style TSV
  electra-predict --model=data/models/electra_small/finetuning/sst2_mr \\
      --input=data/finetuning_data/sst2_mr/test.tsv --output=predictions.jsonl
  # a SavedModel of electra-export, one head of a multi-task model, JSONL input
  electra-predict --model=exports/glue/1 --task=stsb --input=pairs.jsonl \\
      --text_columns=premise,hypothesis --output=gs://bucket/stsb.jsonl

The input is TSV with a header row, or JSONL (one object per line). The text columns are
found by name (``sentence``, ``sentence1``/``sentence2``, ``question``/``sentence``,
``text``/``text_b``, ...; tagging reads ``words`` (a list) or ``text``; multiple choice
``article``, ``question``, ``options`` (a list of 4)), or named with --text_columns.
Each output line holds the task and its prediction (``label`` and ``probabilities``,
``score``, ``words`` and ``tags``, or ``label`` and ``scores``), and the row's ``id``
when it has one. Every path may be local or remote (gs://...).
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("model", None, "A finetuned model: a finetuned.keras file, a "
                        "finetuning run dir holding one, or a SavedModel folder of "
                        "electra-export.", required=True, **fv)
    flags.DEFINE_string("input", None, "TSV file with a header row, or JSONL (one JSON "
                        "object per line; a .jsonl/.json name or a first line starting "
                        "with '{').", required=True, **fv)
    flags.DEFINE_string("output", None, "JSONL file of the predictions, one object per "
                        "input row (written whole, under a temporary name first).",
                        required=True, **fv)
    flags.DEFINE_string("task", None, "Which task head predicts. (default: the model's only "
                        "one)", **fv)
    flags.DEFINE_list("text_columns", None, "The input's text columns: one or two for "
                      "classification and regression (a pair), one for tagging (text, or a "
                      "list of words), article,question,options for multiple choice. "
                      "(default: found by name)", **fv)
    flags.DEFINE_integer("batch_size", 32, "Rows per model call.", lower_bound=1, **fv)
    return flag_values


def predict(flag_values: flags.FlagValues = FLAGS) -> str:
    """Run the prediction the flags describe; returns the summary printed."""
    import json

    from electra_tf import files
    from electra_tf.finetuning import serving

    servable = serving.load_servable(flag_values.model)
    head = servable.head(flag_values.task)
    rows = serving.read_rows(flag_values.input, head["kind"], flag_values.text_columns)
    predictions = serving.predict_rows(servable, rows, head["name"], flag_values.batch_size,
                                       progress=True)
    files.atomic_write(flag_values.output, "".join(
        json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    return f"wrote {len(predictions)} {head['name']} predictions to {flag_values.output}"


def main():
    define_flags()
    cli.run_command("electra-predict", predict)


if __name__ == "__main__":
    main()
