"""What pretraining puts at the masked positions, objective by objective: the ELECTRA
code's 85% [MASK] / 15% kept for every objective (its BERT baseline too), the BERT paper's
80/10/10 for objective=bert with --bert_random_tokens."""

import json

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from electra_tf import run_pretraining
from electra_tf.masking import MaskingConfig, mask_batch, max_predictions_per_seq
from electra_tf.pretraining.config import PretrainingConfig
from electra_tf.tokenization import SpecialIds

SPECIAL = SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)
VOCAB = 30522
BATCH, SEQ, SEEDS = 1024, 128, 8


def replacement_fractions(config: PretrainingConfig):
    """Fractions of the chosen positions that hold [MASK], the original token, or another
    token, over SEEDS batches of BATCH x SEQ tokens masked as `config` trains."""
    masking = MaskingConfig(SPECIAL, VOCAB, max_predictions_per_seq(config.mask_prob, SEQ),
                            config.mask_prob, config.masking_style)
    rng = np.random.default_rng(0)
    counts = {"mask": 0, "kept": 0, "random": 0}
    for seed in range(SEEDS):
        ids = rng.integers(1000, VOCAB, (BATCH, SEQ))
        ids[:, 0], ids[:, -1] = SPECIAL.cls, SPECIAL.sep
        batch = mask_batch({"input_ids": tf.constant(ids, tf.int32),
                            "input_mask": tf.ones((BATCH, SEQ), tf.int32),
                            "segment_ids": tf.zeros((BATCH, SEQ), tf.int32)},
                           masking, tf.constant([seed, 7]))
        chosen = batch["masked_lm_weights"].numpy() > 0
        at = np.take_along_axis(batch["input_ids"].numpy(),
                                batch["masked_lm_positions"].numpy(), axis=1)[chosen]
        original = batch["masked_lm_ids"].numpy()[chosen]
        counts["mask"] += int(np.sum(at == SPECIAL.mask))
        counts["kept"] += int(np.sum(at == original))
        counts["random"] += int(np.sum((at != SPECIAL.mask) & (at != original)))
    total = sum(counts.values())
    # every row has 128 real tokens: round(0.15 * 128) = 19 chosen, the original's cap
    assert total == SEEDS * BATCH * 19
    return {k: v / total for k, v in counts.items()}


def config(**overrides):
    return PretrainingConfig(**{"num_train_steps": 1, **overrides})


# 155,648 chosen positions: a measured fraction's standard deviation is at most
# sqrt(0.85 * 0.15 / 155648) = 0.0009, so 0.005 is over 5 deviations (a correct masking
# fails with probability < 1e-7; the draws are seeded, so the outcome is fixed), while
# the two schemes differ by 5 points, over 50 deviations. A random token equal to the
# original counts as kept: 0.1 / 30,522 of the positions, far inside the tolerance.
TOLERANCE = 0.005


@pytest.mark.parametrize("objective", ["bert", "electra", "ale"])
def test_every_objective_masks_as_the_electra_code_by_default(objective):
    fractions = replacement_fractions(config(objective=objective))
    assert fractions["mask"] == pytest.approx(0.85, abs=TOLERANCE)
    assert fractions["kept"] == pytest.approx(0.15, abs=TOLERANCE)
    assert fractions["random"] == 0.0  # the ELECTRA code never puts in a random token


def test_bert_random_tokens_gives_the_bert_papers_80_10_10():
    fractions = replacement_fractions(config(objective="bert", bert_random_tokens=True))
    assert fractions["mask"] == pytest.approx(0.80, abs=TOLERANCE)
    assert fractions["random"] == pytest.approx(0.10, abs=TOLERANCE)
    assert fractions["kept"] == pytest.approx(0.10, abs=TOLERANCE)


@pytest.mark.parametrize("objective", ["electra", "ale"])
def test_bert_random_tokens_is_refused_for_electra_and_ale(objective):
    with pytest.raises(ValueError, match=f"bert_random_tokens is for objective=bert, not "
                                         f"objective={objective}"):
        config(objective=objective, bert_random_tokens=True)


def test_the_flag_reaches_the_run_settings():
    values = run_pretraining.define_flags(flags.FlagValues())
    values(["electra-pretrain", "--data_dir=d", "--model_name=m", "--objective=bert",
            "--bert_random_tokens", "--num_train_steps=10"])
    built = run_pretraining.build_config(values)
    assert built.bert_random_tokens and built.masking_style == "bert"
    # pretraining_config.json, what a run records, holds it
    assert json.loads(built.to_json())["bert_random_tokens"] is True
    assert json.loads(config(objective="bert").to_json())["bert_random_tokens"] is False
