"""The finetuning config a recipe under flags/finetune/ gives, as the command parses it."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def finetune_recipe(name: str):
    """The FinetuningConfig of ``flags/finetune/<name>.flags`` (data_dir and model_name
    filled in)."""
    from absl import flags

    from electra_tf import run_finetuning

    values = run_finetuning.define_flags(flags.FlagValues())
    values(["prog", f"--flagfile={ROOT}/flags/finetune/{name}.flags", "--data_dir=d",
            "--model_name=m"])
    return run_finetuning.build_config(values)
