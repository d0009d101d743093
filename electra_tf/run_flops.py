"""electra-flops: the FLOP and parameter tables, steps per budget, and what a pretraining
recipe will spend (``--recipe=FLAGFILE``)."""

from __future__ import annotations

import math

from absl import app, flags

from electra_tf.configs import MODEL_TYPES, SIZES, get_config
from electra_tf.flops import format_tables, train_flops_per_step


def recipe_flops(flagfile: str) -> dict:
    """What an ``electra-pretrain`` flagfile will spend: objective, size, batch, steps,
    FLOPs per step and in total (by this module's accounting, the vocab at its default
    30,522 unless the recipe overrides it)."""
    from electra_tf import run_pretraining

    values = run_pretraining.define_flags(flags.FlagValues())
    try:
        values(["electra-pretrain", f"--flagfile={flagfile}", "--data_dir=unused",
                "--model_name=unused"])
    except flags.Error as e:
        raise ValueError(f"{flagfile}: {e}") from None
    config = run_pretraining.build_config(values)
    model_config = config.model_config()
    steps = config.train_steps(model_config)
    per_step = config.flops_per_step(model_config)
    return {"recipe": flagfile, "model": f"{config.objective}-{config.model_size}",
            "batch_size": config.train_batch_size, "steps": steps, "flops_per_step": per_step,
            "flops": steps * per_step}


def format_recipes(paths) -> str:
    rows = [recipe_flops(path) for path in paths]
    width = max([44] + [len(r["recipe"]) + 2 for r in rows])  # absolute paths stay aligned
    lines = [f"  {'recipe':<{width}}{'model':<15}{'batch':>7}{'steps':>12}{'FLOPs/step':>13}"
             f"{'total FLOPs':>13}"]
    for r in rows:
        lines.append(f"  {r['recipe']:<{width}}{r['model']:<15}{r['batch_size']:>7,}"
                     f"{r['steps']:>12,}{r['flops_per_step']:>13.4e}{r['flops']:>13.4e}")
    return "\n".join(lines)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> flags.FlagValues:
    """Define the command's flags on `flag_values`."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_integer("batch_size", 128, "Batch size for the per-step training FLOPs.",
                         lower_bound=1, **fv)
    flags.DEFINE_integer("seq_len", 128, "Sequence length for this package's configs.",
                         lower_bound=1, **fv)
    flags.DEFINE_float("flop_budget", None,
                       "If set, also print how many steps each config gets for it.", **fv)
    flags.register_validator("flop_budget", lambda v: v is None or v > 0,
                             message="--flop_budget must be a positive number of FLOPs", **fv)
    flags.DEFINE_multi_string("recipe", [], "An electra-pretrain flagfile (repeatable): "
                              "print the steps and FLOPs it will spend instead of the tables.",
                              **fv)
    return flag_values


def main(argv=None):
    """absl entry point (``electra-flops``)."""
    define_flags()

    def _run(_):
        FLAGS = flags.FLAGS
        if FLAGS.recipe:
            try:
                print(format_recipes(FLAGS.recipe))
            except (ValueError, OSError) as e:
                raise app.UsageError(str(e)) from None
            return
        print(format_tables(FLAGS.batch_size, FLAGS.seq_len))
        if FLAGS.flop_budget is not None:
            print(f"\nSteps for a budget of {FLAGS.flop_budget:.4e} FLOPs "
                  f"(batch {FLAGS.batch_size}, seq {FLAGS.seq_len}):")
            for model_type in MODEL_TYPES:
                for size in SIZES:
                    config = get_config(model_type, size)
                    per_step = train_flops_per_step(config, FLAGS.batch_size, FLAGS.seq_len)
                    steps = math.floor(FLAGS.flop_budget / per_step)
                    shown = f"{steps:,}" if steps else "< 1 step"
                    print(f"  {model_type:<8}{size:<7}{shown:>14}")

    app.run(_run, argv=argv)


if __name__ == "__main__":
    main()
