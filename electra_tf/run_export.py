"""electra-export: a finetuned model for serving, as a TensorFlow SavedModel that takes raw
text, or as a Hugging Face folder.

Examples::

  # a finetuning run (its run dir holds finetuned.keras) -> a SavedModel for TF Serving,
  # in a version folder of the model's base path
  electra-export --model=data/models/electra_small/finetuning/sst2_mr \\
      --output=exports/sst2_mr/1
  # the same model as a Hugging Face folder
  electra-export --model=data/models/electra_small/finetuning/sst2_mr/finetuned.keras \\
      --format=hf --output=hf/sst2_mr

The SavedModel's signatures take strings and tokenize inside the graph (tensorflow-text
ops): ``serving_default`` (``text``), ``pairs`` (``text``, ``text_b``) and, for a RACE
model, ``multiple_choice`` (``article``, ``question``, ``options``); see docs/serving.md.
Every path may be local or remote (gs://...).
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("model", None, "A finetuned model: a finetuned.keras file or a "
                        "finetuning run dir holding one.", required=True, **fv)
    flags.DEFINE_string("output", None, "Folder to write (replaced when it exists); for TF "
                        "Serving a version folder such as exports/sst2/1.", required=True,
                        **fv)
    flags.DEFINE_enum("format", "saved_model", ["saved_model", "hf"],
                      "saved_model: a TensorFlow SavedModel taking raw text (WordPiece in "
                      "the graph); hf: a Hugging Face folder.", **fv)
    return flag_values


def export(flag_values: flags.FlagValues = FLAGS) -> str:
    """Run the export the flags describe; returns the summary printed."""
    from electra_tf import checkpoints
    from electra_tf.finetuning import serving

    model = serving.load_finetuned(flag_values.model)
    heads = ", ".join(f"{t.name} ({t.kind})" for t in model.tasks)
    if flag_values.format == "hf":
        written = checkpoints.save_hf_finetuned(model, flag_values.output, quiet=False)
        return f"wrote Hugging Face folder {flag_values.output}: {written.summary()}"
    serving.export_saved_model(model, flag_values.output)
    signatures = ", ".join(serving.signature_info(model))
    return f"wrote SavedModel {flag_values.output}: heads {heads}; signatures {signatures}"


def main():
    define_flags()
    cli.run_command("electra-export", export)


if __name__ == "__main__":
    main()
