"""electra-convert: move models between original TF1 checkpoints, Hugging Face and .keras.

Examples::

  # a released ELECTRA checkpoint -> this package (the whole pretrainer; sizes are read
  # from the checkpoint: the released ELECTRA-Small has a full-width generator)
  electra-convert --input=electra_small/model.ckpt-1000000 \\
      --output=models/electra_small/pretrainer.keras
  # only the discriminator encoder, for finetuning
  electra-convert --input=electra_small --target=encoder --output=electra_small.keras
  # this package -> Hugging Face (discriminator/ + generator/ for a pretrainer)
  electra-convert --input=pretrainer.keras --output=hf/electra_small
  # Hugging Face -> this package
  electra-convert --input=hf/electra_small --output=pretrainer.keras
  # a pretraining run of this package (its model dir holds pretrainer.keras,
  # encoder.keras and vocab.txt) -> Hugging Face discriminator/ and generator/ folders,
  # each with the tokenizer (ElectraForPreTraining / ElectraForMaskedLM load them)
  electra-convert --input=data/models/electra_small --output=hf/electra_small
  # only its encoder -> one folder that AutoTokenizer/AutoModel load
  electra-convert --input=data/models/electra_small --target=encoder \\
      --output=hf/electra_small_encoder

Every path may be local or remote (gs://...). A Hugging Face export carries the tokenizer
(vocab.txt, tokenizer_config.json, special_tokens_map.json) when a vocab is known:
--vocab_file, else a vocab.txt beside the input.
"""

from __future__ import annotations

from absl import app, flags

from electra_tf import cli

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("input", None, "TF1 checkpoint prefix or directory, Hugging Face "
                        "folder, .keras file, or an electra-pretrain model dir (its "
                        "pretrainer.keras, or encoder.keras with --target=encoder; a "
                        "snapshot holds only encoder.keras).", required=True, **fv)
    flags.DEFINE_string("output", None, "Where to write: a .keras file, a Hugging Face "
                        "folder, or a TF1 checkpoint prefix (with --output_format=tf1).",
                        required=True, **fv)
    flags.DEFINE_enum("input_format", "auto", ["auto", "tf1", "hf", "keras"],
                      "Format of --input; auto: .keras file, folder with config.json (or "
                      "discriminator/config.json) = hf, anything else tf1.", **fv)
    flags.DEFINE_enum("output_format", "auto", ["auto", "keras", "hf", "tf1"],
                      "Format of --output; auto: .keras if it ends so, else hf.", **fv)
    flags.DEFINE_enum("target", "pretrainer", ["pretrainer", "encoder"],
                      "Convert the whole pretrainer, or only the (discriminator) encoder that "
                      "finetuning starts from.", **fv)
    flags.DEFINE_enum("model_type", None, ["bert", "electra", "ale"],
                      "For TF1 input: the model type (default: from the checkpoint's "
                      "scopes).", **fv)
    flags.DEFINE_enum("model_size", None, ["debug", "tiny", "small", "base", "large"],
                      "For TF1 input: the size table entry (default: inferred from the "
                      "checkpoint's shapes, heads = hidden // 64).", **fv)
    flags.DEFINE_string("model_hparam_overrides", None,
                        "For TF1 input: JSON dict of config overrides, as in the original.",
                        **fv)
    flags.DEFINE_bool("allow_missing", False, "Let head variables missing from the input keep "
                      "their initialization.", **fv)
    flags.DEFINE_string("vocab_file", None, "For Hugging Face output: the WordPiece vocab the "
                        "export's tokenizer uses (default: a vocab.txt beside the input, if "
                        "there is one; without a vocab the export has no tokenizer).", **fv)
    flags.DEFINE_bool("do_lower_case", None, "For Hugging Face output: whether the exported "
                      "tokenizer lower-cases (and strips accents). Default: the input's "
                      "tokenizer_config.json, else uncased when the vocab has no upper-case "
                      "token.", **fv)
    return flag_values


# On import, as always: convert() reads the global FLAGS, which callers (and the tests)
# parse after importing this module.
define_flags()

def _input_format(path: str) -> str:
    from electra_tf import files

    if FLAGS.input_format != "auto":
        return FLAGS.input_format
    if path.endswith(".keras") or _exported_model(path):
        return "keras"
    if files.isdir(path) and (files.isfile(files.join(path, "config.json"))
                              or files.isfile(files.join(path, "discriminator",
                                                         "config.json"))):
        return "hf"
    return "tf1"


def _exported_model(path: str) -> str | None:
    """The ``.keras`` file an electra-pretrain model dir (or snapshot) at `path` holds
    for ``--target``: ``pretrainer.keras`` for the pretrainer, ``encoder.keras`` for the
    encoder (either one, when the other is missing; None when `path` holds neither)."""
    from electra_tf import files
    from electra_tf.training.export import ENCODER_FILE, PRETRAINER_FILE

    if path.endswith(".keras") or not files.isdir(path):
        return None
    names = ((PRETRAINER_FILE, ENCODER_FILE) if FLAGS.target == "pretrainer"
             else (ENCODER_FILE, PRETRAINER_FILE))
    found = [files.join(path, name) for name in names if files.isfile(files.join(path, name))]
    return found[0] if found else None


def _default_vocab(source: str, source_format: str) -> str | None:
    """A vocab.txt beside the input: in an HF folder (or its discriminator/), in an
    encoder's folder, in a TF1 checkpoint's directory."""
    from electra_tf import files

    if source_format == "hf":
        candidates = [files.join(source, "vocab.txt"),
                      files.join(source, "discriminator", "vocab.txt")]
    elif source_format == "tf1" and not source.endswith(".index") and files.isdir(source) \
            and not files.exists(source + ".index"):
        candidates = [files.join(source, "vocab.txt")]
    else:  # a .keras file or a TF1 prefix: the folder holding it
        candidates = [files.join(files.parent(source), "vocab.txt")]
    return next((c for c in candidates if files.isfile(c)), None)


def _output_format(path: str) -> str:
    if FLAGS.output_format != "auto":
        return FLAGS.output_format
    return "keras" if path.endswith(".keras") else "hf"


def convert() -> str:
    """Run the conversion the flags describe; returns the summary printed."""
    from electra_tf import checkpoints
    from electra_tf.configs import get_config, parse_overrides
    from electra_tf.modeling import (
        BertPretrainer,
        ElectraPretrainer,
        Encoder,
        build_pretrainer,
        encoder_of,
    )

    source, source_format = FLAGS.input, _input_format(FLAGS.input)
    if source_format == "keras":
        source = _exported_model(source) or source
    model_flags = [f"--{n}" for n in ("model_type", "model_size", "model_hparam_overrides")
                   if getattr(FLAGS, n) is not None]
    if model_flags and source_format != "tf1":
        raise ValueError(f"{', '.join(model_flags)} only apply to TF1 input; {source_format} "
                         f"input carries its own config")
    destination, destination_format = FLAGS.output, _output_format(FLAGS.output)
    tokenizer_flags = [f"--{n}" for n in ("vocab_file", "do_lower_case")
                       if getattr(FLAGS, n) is not None]
    if tokenizer_flags and destination_format != "hf":
        raise ValueError(f"{', '.join(tokenizer_flags)} only apply to Hugging Face output; "
                         f"{destination_format} output carries no tokenizer")
    print(f"reading {source} ({source_format})", flush=True)
    notes = []
    if source_format == "keras":
        model = checkpoints.load_keras(source)
        if not isinstance(model, (Encoder, ElectraPretrainer, BertPretrainer)):
            raise ValueError(f"{source}: a {type(model).__name__}, not an electra-tf model")
        if FLAGS.target == "encoder" and not isinstance(model, Encoder):
            model = encoder_of(model)
        elif FLAGS.target == "pretrainer" and isinstance(model, Encoder):
            raise ValueError(f"{source} holds only an encoder (a snapshot, or a run that "
                             f"exported no pretrainer.keras); use --target=encoder")
        report = checkpoints.ConversionReport()
    elif source_format == "hf":
        model, report = checkpoints.model_from_hf(source, FLAGS.target, FLAGS.allow_missing,
                                                  quiet=False)
    else:
        inferred = checkpoints.config_from_tf1(source, FLAGS.model_type)
        if FLAGS.model_size:
            config = get_config(FLAGS.model_type or inferred.model_type, FLAGS.model_size,
                                FLAGS.model_hparam_overrides)
        else:
            config = inferred
            if FLAGS.model_hparam_overrides:
                config = config.replace(**parse_overrides(FLAGS.model_hparam_overrides))
            if config.size == "from-checkpoint":
                notes.append(f"config inferred from the checkpoint's shapes "
                             f"(heads = hidden // 64; pass --model_size/overrides otherwise): "
                             f"{config.model_type}, {config.num_hidden_layers} layers, hidden "
                             f"{config.hidden_size}, {config.num_attention_heads} heads, "
                             f"embedding {config.embedding_size}")
        model = Encoder(config) if FLAGS.target == "encoder" else build_pretrainer(config)
        report = checkpoints.load_tf1_checkpoint(model, source, FLAGS.allow_missing,
                                                 quiet=False)
    lines = notes + ([f"read: {report.summary()}"] if report.assigned else [])

    if destination_format == "keras":
        checkpoints.save_keras(model, destination)
        lines.append(f"wrote {destination} ({type(model).__name__}, "
                     f"{model.count_params():,} parameters)")
    elif destination_format == "hf":
        vocab_file = FLAGS.vocab_file or _default_vocab(source, source_format)
        written = checkpoints.save_hf(model, destination, quiet=False, vocab_file=vocab_file,
                                      do_lower_case=FLAGS.do_lower_case)
        if vocab_file is None:
            written.notes.append(f"note: no vocab.txt beside {source}: the export has no "
                                 f"tokenizer (pass --vocab_file)")
        lines.append(f"wrote Hugging Face folder {destination}: {written.summary()}")
    else:
        written = checkpoints.save_tf1_checkpoint(model, destination, quiet=False)
        lines.append(f"wrote TF1 checkpoint {destination}: {written.summary()}")
    return "\n".join(lines)


def _main(argv):
    from safetensors import SafetensorError

    return cli.run_main("electra-convert", convert,
                        expected=(ImportError, TypeError, SafetensorError))(argv)


def main():
    app.run(_main)


if __name__ == "__main__":
    main()
