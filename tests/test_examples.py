"""The ``Example::`` blocks in the public entry points' docstrings run as written: the
model-building ones for real, the ones that train with the training call replaced, so
the configs they build are checked (field names, values)."""

import inspect
import textwrap
from unittest import mock

import numpy as np
import pytest

from electra_tf.baselines import sweep
from electra_tf.baselines.config import BaselinesConfig
from electra_tf.configs import get_config
from electra_tf.finetuning import trainer as finetuning
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.modeling import models
from electra_tf.modeling.models import Encoder, build_pretrainer, encoder_of
from electra_tf.optimization import WarmupPolynomialDecay, make_optimizer
from electra_tf.pretraining import trainer as pretraining
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.study import runner
from electra_tf.study.config import StudyConfig
from electra_tf.tlm import trainer as tlm
from electra_tf.tlm.config import TlmConfig
from electra_tf.training.precision import dtype_policy


def example(function) -> str:
    doc = inspect.getdoc(function)
    assert "Example::" in doc, f"{function.__qualname__} has no example"
    block = doc.split("Example::", 1)[1]
    lines = []
    for line in block.splitlines()[1:]:
        if line and not line.startswith(" "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines)).strip()


def run(function, **names) -> dict:
    namespace = {"np": np, "get_config": get_config, **names}
    exec(compile(example(function), function.__qualname__, "exec"), namespace)
    return namespace


def test_encoder_example():
    namespace = run(Encoder, Encoder=Encoder)
    assert namespace["outputs"]["sequence_output"].shape == (1, 4, 256)


def test_build_pretrainer_example():
    namespace = run(build_pretrainer, build_pretrainer=build_pretrainer,
                    encoder_of=encoder_of)
    assert namespace["pretrainer"].model_config.model_type == "ale"
    assert isinstance(encoder_of(namespace["pretrainer"]), models.Encoder)


def test_make_optimizer_and_dtype_policy_examples():
    namespace = run(make_optimizer, make_optimizer=make_optimizer,
                    WarmupPolynomialDecay=WarmupPolynomialDecay)
    assert namespace["optimizer"].global_clipnorm == 1.0
    namespace = run(dtype_policy, dtype_policy=dtype_policy, Encoder=Encoder)
    assert namespace["encoder"].dtype_policy.name == "mixed_bfloat16"


@pytest.mark.parametrize("function, config_class, module", [
    (pretraining.pretrain, PretrainingConfig, pretraining),
    (finetuning.finetune, FinetuningConfig, finetuning),
    (tlm.run_tlm, TlmConfig, tlm),
    (sweep.run_sweep, BaselinesConfig, sweep),
    (runner.run_study, StudyConfig, runner),
], ids=lambda value: getattr(value, "__name__", ""))
def test_stage_examples_build_valid_configs(function, config_class, module):
    called = mock.MagicMock()
    names = {function.__name__: called, config_class.__name__: config_class,
             "print": lambda *args: None, "markdown_table": lambda results: ""}
    run(function, **names)
    (config,), _ = called.call_args
    assert isinstance(config, config_class)
