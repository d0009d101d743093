"""electra-convert: move models between original TF1 checkpoints, Hugging Face, .keras and
keras-hub presets.

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
  # its encoder -> a keras-hub preset (keras_hub.models.ElectraBackbone.from_preset); an
  # encoder with exact GELU needs --allow_tanh_gelu (keras-hub runs the tanh form)
  electra-convert --input=data/models/electra_small --output_format=keras_hub \\
      --allow_tanh_gelu --output=presets/electra_small
  # a keras-hub ElectraBackbone preset -> this package's encoder
  electra-convert --input=presets/electra_small --target=encoder --output=encoder.keras

Every path may be local or remote (gs://...). A Hugging Face export carries the tokenizer
(vocab.txt, tokenizer_config.json, special_tokens_map.json) when a vocab is known:
--vocab_file, else a vocab.txt beside the input; a keras-hub preset likewise carries an
ElectraTokenizer. A keras-hub preset holds one encoder: the export writes the
(discriminator) encoder, whatever --target says.
"""

from __future__ import annotations

from absl import flags

from electra_tf import cli

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("input", None, "TF1 checkpoint prefix or directory, Hugging Face "
                        "folder, .keras file, keras-hub ElectraBackbone preset folder, or an "
                        "electra-pretrain model dir (its pretrainer.keras, or encoder.keras "
                        "with --target=encoder; a snapshot holds only encoder.keras; an "
                        "unfinished run: its newest checkpoint) or one of its model.ckpt-N.",
                        required=True, **fv)
    flags.DEFINE_string("output", None, "Where to write: a .keras file, a Hugging Face "
                        "folder, a TF1 checkpoint prefix (with --output_format=tf1), or a "
                        "keras-hub preset folder (with --output_format=keras_hub).",
                        required=True, **fv)
    flags.DEFINE_enum("input_format", "auto",
                      ["auto", "tf1", "hf", "keras", "keras_hub", "run"],
                      "Format of --input; auto: .keras file (or a model dir holding one), "
                      "folder with metadata.json and a keras_hub config.json = keras_hub, "
                      "an electra-pretrain model dir with checkpoints only or one of its "
                      "model.ckpt-N = run, folder with config.json (or "
                      "discriminator/config.json) = hf, anything else tf1.", **fv)
    flags.DEFINE_enum("output_format", "auto", ["auto", "keras", "hf", "tf1", "keras_hub"],
                      "Format of --output; auto: .keras if it ends so, else hf. keras_hub "
                      "writes the (discriminator) encoder as a keras-hub ElectraBackbone "
                      "preset.", **fv)
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
    flags.DEFINE_string("vocab_file", None, "For Hugging Face and keras_hub output: the "
                        "WordPiece vocab the export's tokenizer uses (default: a vocab.txt "
                        "beside the input, or a keras-hub input's vocabulary, if there is one; "
                        "without a vocab the export has no tokenizer).", **fv)
    flags.DEFINE_bool("do_lower_case", None, "For Hugging Face and keras_hub output: whether "
                      "the exported tokenizer lower-cases (and strips accents). Default: the "
                      "input's tokenizer_config.json (or keras-hub tokenizer.json), else "
                      "uncased when the vocab has no upper-case token.", **fv)
    flags.DEFINE_bool("allow_tanh_gelu", False, "For keras_hub output: export an encoder with "
                      "exact GELU (hidden_act gelu) although keras-hub's ElectraBackbone "
                      "always runs the tanh GELU, so its outputs differ slightly; without it "
                      "such an encoder is refused.", **fv)
    return flag_values


# On import, as always: convert() reads the global FLAGS, which callers (and the tests)
# parse after importing this module.
define_flags()

def _input_format(path: str) -> str:
    from electra_tf import files, presets

    if FLAGS.input_format != "auto":
        return FLAGS.input_format
    if path.endswith(".keras") or _exported_model(path):
        return "keras"
    if presets.is_keras_hub_preset(path):
        return "keras_hub"
    from electra_tf.pretraining.warm_start import run_checkpoint

    if run_checkpoint(path):
        return "run"
    if files.isdir(path) and (files.isfile(files.join(path, "config.json"))
                              or files.isfile(files.join(path, "discriminator",
                                                         "config.json"))):
        return "hf"
    return "tf1"


def _exported_model(path: str, target: str | None = None) -> str | None:
    """The ``.keras`` file an electra-pretrain model dir (or snapshot) at `path` holds
    for `target` (default ``--target``): ``pretrainer.keras`` for the pretrainer,
    ``encoder.keras`` for the encoder (either one, when the other is missing; None when
    `path` holds neither)."""
    from electra_tf import files
    from electra_tf.training.export import ENCODER_FILE, PRETRAINER_FILE

    if path.endswith(".keras") or not files.isdir(path):
        return None
    names = ((PRETRAINER_FILE, ENCODER_FILE) if (target or FLAGS.target) == "pretrainer"
             else (ENCODER_FILE, PRETRAINER_FILE))
    found = [files.join(path, name) for name in names if files.isfile(files.join(path, name))]
    return found[0] if found else None


def _default_vocab(source: str, source_format: str) -> str | None:
    """A vocab.txt beside the input: in an HF folder (or its discriminator/), in an
    encoder's folder, in a TF1 checkpoint's directory; a run's (its settings name it)."""
    from electra_tf import files, presets

    if source_format == "keras_hub":
        return presets.preset_vocab(source)
    if source_format == "run":
        from electra_tf.pretraining.warm_start import source_vocab_file

        return source_vocab_file(source)
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
    from electra_tf import checkpoints, presets
    from electra_tf.configs import get_config, parse_overrides
    from electra_tf.modeling import (
        BertPretrainer,
        ElectraPretrainer,
        Encoder,
        build_pretrainer,
        encoder_of,
    )

    source, source_format = FLAGS.input, _input_format(FLAGS.input)
    destination, destination_format = FLAGS.output, _output_format(FLAGS.output)
    # A keras-hub preset holds one encoder: read only the (discriminator) encoder for it.
    target = "encoder" if destination_format == "keras_hub" else FLAGS.target
    if source_format == "keras":
        source = _exported_model(source, target) or source
    model_flags = [f"--{n}" for n in ("model_type", "model_size", "model_hparam_overrides")
                   if getattr(FLAGS, n) is not None]
    if model_flags and source_format != "tf1":
        raise ValueError(f"{', '.join(model_flags)} only apply to TF1 input; {source_format} "
                         f"input carries its own config")
    tokenizer_flags = [f"--{n}" for n in ("vocab_file", "do_lower_case")
                       if getattr(FLAGS, n) is not None]
    if tokenizer_flags and destination_format not in ("hf", "keras_hub"):
        raise ValueError(f"{', '.join(tokenizer_flags)} only apply to Hugging Face output "
                         f"(and keras_hub); {destination_format} output carries no tokenizer")
    if FLAGS.allow_tanh_gelu and destination_format != "keras_hub":
        raise ValueError(f"--allow_tanh_gelu only applies to keras_hub output, not "
                         f"{destination_format}")
    print(f"reading {source} ({source_format})", flush=True)
    notes = []
    if target != FLAGS.target and source_format != "keras_hub":
        notes.append("note: a keras-hub preset holds one encoder: converting only the "
                     "(discriminator) encoder, as with --target=encoder")
    if source_format == "run":
        from electra_tf.pretraining.warm_start import load_source, run_checkpoint

        notes.append(f"read {run_checkpoint(source)}")
        model = load_source(source)
        if target == "encoder":
            model = encoder_of(model)
        report = checkpoints.ConversionReport()
    elif source_format == "keras":
        model = checkpoints.load_keras(source)
        if not isinstance(model, (Encoder, ElectraPretrainer, BertPretrainer)):
            raise ValueError(f"{source}: a {type(model).__name__}, not an electra-tf model")
        if target == "encoder" and not isinstance(model, Encoder):
            model = encoder_of(model)
        elif target == "pretrainer" and isinstance(model, Encoder):
            raise ValueError(f"{source} holds only an encoder (a snapshot, or a run that "
                             f"exported no pretrainer.keras); use --target=encoder")
        report = checkpoints.ConversionReport()
    elif source_format == "keras_hub":
        if target == "pretrainer":
            raise ValueError(f"{source}: a keras-hub preset holds only an encoder; use "
                             f"--target=encoder")
        model, report = presets.read_keras_hub_preset(source)
    elif source_format == "hf":
        model, report = checkpoints.model_from_hf(source, target, FLAGS.allow_missing,
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
        model = Encoder(config) if target == "encoder" else build_pretrainer(config)
        report = checkpoints.load_tf1_checkpoint(model, source, FLAGS.allow_missing,
                                                 quiet=False)
    lines = notes + ([f"read: {report.summary()}"] if report.assigned else [])

    if destination_format == "keras":
        checkpoints.save_keras(model, destination)
        lines.append(f"wrote {destination} ({type(model).__name__}, "
                     f"{model.count_params():,} parameters)")
    elif destination_format in ("hf", "keras_hub"):
        vocab_file = FLAGS.vocab_file or _default_vocab(source, source_format)
        do_lower_case = FLAGS.do_lower_case
        if do_lower_case is None and source_format == "keras_hub" and destination_format == "hf":
            do_lower_case = presets.preset_lowercase(source)
            if do_lower_case is not None:
                lines.append(f"note: the tokenizer's casing comes from {source}'s "
                             f"tokenizer.json (lowercase={do_lower_case})")
        if destination_format == "hf":
            written = checkpoints.save_hf(model, destination, quiet=False,
                                          vocab_file=vocab_file, do_lower_case=do_lower_case)
        else:
            written = presets.save_keras_hub_preset(model, destination, vocab_file=vocab_file,
                                                    do_lower_case=do_lower_case,
                                                    allow_tanh_gelu=FLAGS.allow_tanh_gelu)
        if vocab_file is None:
            written.notes.append(f"note: no vocab.txt beside {source}: the export has no "
                                 f"tokenizer (pass --vocab_file)")
        kind = "Hugging Face folder" if destination_format == "hf" else "keras-hub preset"
        lines.append(f"wrote {kind} {destination}: {written.summary()}")
    else:
        written = checkpoints.save_tf1_checkpoint(model, destination, quiet=False)
        lines.append(f"wrote TF1 checkpoint {destination}: {written.summary()}")
    return "\n".join(lines)


def main():
    from safetensors import SafetensorError

    cli.run_command("electra-convert", convert,
                    expected=(ImportError, TypeError, SafetensorError))


if __name__ == "__main__":
    main()
