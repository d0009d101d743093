"""Finetuning as the original ELECTRA code does it (google-research/electra, finetune/,
model/optimization.py, configure_finetuning.py), and the flags that differ: the summed
loss, the layer-wise rates, the heads' initialization, the epoch and large-model
defaults, RACE's second segment, POS accuracy over every word, and the trials' summary."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from recipes import finetune_recipe

from electra_tf.configs import get_config
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.model import FinetuningModel
from electra_tf.finetuning.trainer import (
    large_encoder,
    lr_multipliers,
    markdown_table,
    summarize_trials,
)
from electra_tf.modeling import Encoder
from electra_tf.optimization import AdamWeightDecay
from electra_tf.tasks import readers, scorers
from electra_tf.tasks.specs import RaceTask, TaggingTask, get_task
from electra_tf.tokenization import WordPieceTokenizer

SEP = 102


@pytest.fixture(scope="module")
def tokenizer(sample_paths):
    return WordPieceTokenizer(sample_paths["vocab"])


# ----------------------------------------------------------------------------- the loss

def ce(logits, label):
    """Softmax cross entropy written out: log(sum exp) - logit of the label."""
    return math.log(sum(math.exp(x) for x in logits)) - logits[label]


# Two examples per task, by hand.
SST2_LOGITS, SST2_LABELS = [[2.0, 0.0], [0.0, 1.0]], [0, 0]
SST2_SUM = math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))  # 0.12693 + 1.31326
# Sentence 0 has two words (tags A, B), sentence 1 one word (tag B); its second slot is
# padding whose logits must not count.
POS_LOGITS = [[[1.0, 0.0], [0.0, 0.0]], [[0.0, 3.0], [5.0, 5.0]]]
POS_SUM = math.log1p(math.exp(-1.0)) + math.log(2.0) + math.log1p(math.exp(-3.0))
STSB_OUT, STSB_LABELS = [0.5, 0.2], [0.0, 1.0]
STSB_SUM = 0.5 ** 2 + 0.8 ** 2


def tagging_task():
    task = TaggingTask("pos")
    task.set_tags([readers.TaggedSentence("s", ["x", "y"], ["A", "B"])])
    return task


def batch(task_id):
    """Inputs, labels and outputs of a 2-example batch of task `task_id` (the others'
    labels are placeholders the task ids mask)."""
    inputs = {"task_id": tf.constant([task_id, task_id]),
              "word_positions": tf.constant([[1, 2], [1, 0]]),
              "word_mask": tf.constant([[1, 1], [1, 0]])}
    labels = {"sst2": tf.constant(SST2_LABELS),
              # token-level tags: -1 at [CLS], [SEP] and padding; words at positions 1, 2
              "pos": tf.constant([[-1, 0, 1, -1], [-1, 1, -1, -1]]),
              "stsb": tf.constant(STSB_LABELS)}
    outputs = {"sst2": tf.constant(SST2_LOGITS), "pos": tf.constant(POS_LOGITS),
               "stsb": tf.constant(STSB_OUT)}
    return inputs, labels, outputs


def model_for(use_crf=False, mean_loss=False):
    model = FinetuningModel(Encoder(get_config("electra", "debug")),
                            [get_task("sst2"), tagging_task(), get_task("stsb")],
                            use_crf=use_crf, mean_loss=mean_loss, name="finetuning_model")
    model.build_heads()
    return model


def test_hand_written_cross_entropies():
    assert ce([2.0, 0.0], 0) == pytest.approx(0.1269280110)
    assert ce([0.0, 1.0], 0) == pytest.approx(1.3132616875)
    assert SST2_SUM == pytest.approx(ce(SST2_LOGITS[0], 0) + ce(SST2_LOGITS[1], 0))
    assert POS_SUM == pytest.approx(ce([1, 0], 0) + ce([0, 0], 1) + ce([0, 3], 1))


@pytest.mark.parametrize("use_crf", [False, True])
def test_the_loss_is_summed_over_the_batch_as_the_original(use_crf):
    model = model_for(use_crf)
    if use_crf:
        # Zero transitions (the CRF's initial ones): a sentence's negative log-likelihood
        # is then the sum of its words' softmax cross entropies.
        crf = model.crfs["pos"]
        assert not np.any(crf.transitions.numpy()) and not np.any(crf.end_transitions.numpy())
    for task_id, name, expected in ((0, "sst2", SST2_SUM), (1, "pos", POS_SUM),
                                    (2, "stsb", STSB_SUM)):
        losses = {k: float(v) for k, v in model.task_losses(*batch(task_id)).items()}
        assert losses[name] == pytest.approx(expected, rel=1e-5), name
        # the other tasks' heads see no example of theirs in this batch
        assert all(v == 0.0 for k, v in losses.items() if k != name)


@pytest.mark.parametrize("use_crf", [False, True])
def test_mean_loss_divides_by_the_examples_or_the_words(use_crf):
    model = model_for(use_crf, mean_loss=True)
    losses = {name: float(model.task_losses(*batch(task_id))[name])
              for task_id, name in enumerate(("sst2", "pos", "stsb"))}
    assert losses["sst2"] == pytest.approx(SST2_SUM / 2, rel=1e-5)
    assert losses["stsb"] == pytest.approx(STSB_SUM / 2, rel=1e-5)
    # a softmax head averages over the batch's 3 words, a CRF over its 2 sentences
    assert losses["pos"] == pytest.approx(POS_SUM / (2 if use_crf else 3), rel=1e-5)


@pytest.mark.parametrize("mean_loss", [False, True])
def test_two_replicas_shares_add_up_to_the_global_batch_loss(mirrored_strategy, mean_loss):
    with mirrored_strategy.scope():
        model = model_for(mean_loss=mean_loss)
    inputs, labels, outputs = batch(0)
    data = tf.data.Dataset.from_tensor_slices((inputs, labels, outputs)).batch(2)
    shares = mirrored_strategy.run(
        lambda i, y, o: model.task_losses(i, y, o)["sst2"],
        args=next(iter(mirrored_strategy.experimental_distribute_dataset(data))))
    shares = [float(v) for v in mirrored_strategy.experimental_local_results(shares)]
    assert len(shares) == 2  # one example each
    assert shares[0] == pytest.approx(
        math.log1p(math.exp(-2.0)) / (2 if mean_loss else 1), rel=1e-5)
    assert sum(shares) == pytest.approx(SST2_SUM / (2 if mean_loss else 1), rel=1e-5)


def test_a_train_step_applies_the_gradient_of_the_summed_loss():
    """train_step differentiates the summed loss per example and multiplies back (so fp16
    loss scaling sees a mean-sized loss): the update is still the summed loss's gradient."""
    import keras

    model = FinetuningModel(Encoder(get_config("electra", "debug", {"dropout_rate": 0.0})),
                            [get_task("sst2")], dropout_rate=0.0)
    model.build_heads()
    ids = np.array([[2, 5, 7, 3], [2, 9, 3, 0]], np.int32)
    inputs = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32),
              "segment_ids": np.zeros_like(ids)}
    labels = {"sst2": np.array([0, 1])}
    with tf.GradientTape() as tape:
        outputs = model(inputs, training=False)
        loss = tf.add_n(list(model.task_losses(inputs, labels, outputs).values()))
    variables = model.trainable_variables
    expected = [v.numpy() - tf.convert_to_tensor(g).numpy()
                for v, g in zip(variables, tape.gradient(loss, variables), strict=True)]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    model.train_step((inputs, labels))
    for variable, value in zip(variables, expected, strict=True):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-4, atol=1e-6)


def test_two_replicas_apply_the_gradient_of_the_global_batchs_summed_loss(mirrored_strategy):
    """Each replica sums its examples' losses and the replicas' gradients are summed: the
    update equals one device's on the whole batch (a per-replica mean would halve it)."""
    import keras

    def build():
        keras.utils.set_random_seed(5)
        model = FinetuningModel(
            Encoder(get_config("electra", "debug", {"dropout_rate": 0.0})),
            [get_task("sst2")], dropout_rate=0.0)
        model.build_heads()
        return model

    ids = np.array([[2, 5, 7, 3], [2, 9, 3, 0]], np.int32)
    inputs = {"input_ids": ids, "input_mask": (ids > 0).astype(np.int32),
              "segment_ids": np.zeros_like(ids)}
    labels = {"sst2": np.array([0, 1])}
    single = build()
    single.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    single.train_step((inputs, labels))
    with mirrored_strategy.scope():
        replicated = build()
        replicated.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    data = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(2)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(data)))
    mirrored_strategy.run(replicated.train_step, args=(batch,))
    for one, two in zip(single.trainable_variables, replicated.trainable_variables,
                        strict=True):
        np.testing.assert_allclose(two.numpy(), one.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=one.path)


# ----------------------------------------------------------------------------- rates

@pytest.fixture(scope="module")
def small_model():
    encoder = Encoder(get_config("electra", "small"))  # 12 layers
    model = FinetuningModel(encoder, [get_task("sst2")], name="finetuning_model")
    model.build_heads()
    return model


def rates_of(model, fix_off_by_one):
    """{variable path: learning-rate factor} as the trainer's optimizer applies them."""
    optimizer = AdamWeightDecay(1.0, lr_multipliers=lr_multipliers(model.encoder, 0.8,
                                                                   fix_off_by_one))
    optimizer.build(model.trainable_variables)
    return {v.path: optimizer._lr_multiplier(v) for v in model.trainable_variables}


def test_layerwise_rates_are_the_originals_get_layer_lrs_by_default(small_model):
    # _get_layer_lrs: depth 0 embeddings, layer i at depth i + 1, the head at n + 2 = 14;
    # a variable's rate is 0.8 ** (14 - depth).
    rates = rates_of(small_model, fix_off_by_one=False)
    assert rates["finetuning_model/sst2_head/kernel"] == 1.0
    assert rates["finetuning_model/sst2_head/bias"] == 1.0
    expected = {"electra/encoder/layer_11/feedforward_output_dense/kernel": 0.8 ** 2,
                "electra/encoder/layer_10/self_attention_layer/key/bias": 0.8 ** 3,
                "electra/encoder/layer_1/feedforward_intermediate_dense/kernel": 0.8 ** 12,
                "electra/encoder/layer_0/self_attention_layer/query/kernel": 0.8 ** 13,
                "electra/embeddings/word_embeddings/embeddings": 0.8 ** 14,
                "electra/encoder/embeddings_project/kernel": 0.8 ** 14}
    for path, rate in expected.items():
        assert rates[path] == pytest.approx(rate), path
    # every variable got a rate: none between the head and the embeddings is left at 1
    powers = [0.8 ** k for k in range(2, 15)]
    assert all(min(abs(r - x) for x in powers) < 1e-9
               for p, r in rates.items() if "_head/" not in p)


def test_fix_layerwise_lr_decay_puts_the_top_layer_one_factor_below_the_head(small_model):
    rates = rates_of(small_model, fix_off_by_one=True)
    assert rates["finetuning_model/sst2_head/kernel"] == 1.0
    assert rates["electra/encoder/layer_11/feedforward_output_dense/kernel"] == \
        pytest.approx(0.8)
    assert rates["electra/encoder/layer_0/self_attention_layer/query/kernel"] == \
        pytest.approx(0.8 ** 12)
    assert rates["electra/embeddings/word_embeddings/embeddings"] == pytest.approx(0.8 ** 13)


def test_no_layerwise_rates_without_decay():
    assert lr_multipliers(Encoder(get_config("electra", "debug")), 1.0) is None


# ----------------------------------------------------------------------------- heads

def test_task_heads_start_glorot_uniform_with_zero_bias():
    tags = TaggingTask("pos")
    tags.set_tags([readers.TaggedSentence("s", [f"w{i}" for i in range(96)],
                                          [f"T{i}" for i in range(96)])])
    model = FinetuningModel(Encoder(get_config("electra", "debug")), [tags],
                            name="finetuning_model")
    model.build_heads()
    kernel = model.heads["pos"].kernel.numpy()
    assert kernel.shape == (32, 96)  # debug encoder: hidden size 32
    bound = math.sqrt(6.0 / (32 + 96))  # Glorot uniform: U(-bound, bound)
    assert np.abs(kernel).max() <= bound
    assert np.abs(kernel).max() > 0.95 * bound  # spread to the bound, unlike N(0, 0.02)
    # a uniform's std is bound / sqrt(3) = sqrt(2 / (fan_in + fan_out)) = 0.125
    assert kernel.std() == pytest.approx(math.sqrt(2.0 / (32 + 96)), rel=0.05)
    assert not np.any(model.heads["pos"].bias.numpy())


# ----------------------------------------------------------------------------- defaults

def test_ten_epochs_only_for_rte_or_stsb_alone():
    assert FinetuningConfig(task_names=["rte"]).epochs == 10
    assert FinetuningConfig(task_names=["stsb"]).epochs == 10
    assert FinetuningConfig(task_names=["rte", "stsb"]).epochs == 3
    assert FinetuningConfig(task_names=["mrpc", "stsb"]).epochs == 3
    assert FinetuningConfig(task_names=["sst2"]).epochs == 3
    assert FinetuningConfig(task_names=["rte"], num_train_epochs=2).epochs == 2


def test_large_encoders_default_to_lr_5e_5_and_decay_0_9():
    assert FinetuningConfig().resolved(False) == {
        "learning_rate": 1e-4, "layerwise_lr_decay": 0.8, "num_train_epochs": 3.0,
        "large_encoder": False}
    assert FinetuningConfig(task_names=["rte"]).resolved(True) == {
        "learning_rate": 5e-5, "layerwise_lr_decay": 0.9, "num_train_epochs": 10.0,
        "large_encoder": True}
    given = FinetuningConfig(learning_rate=3e-4, layerwise_lr_decay=0.7).resolved(True)
    assert (given["learning_rate"], given["layerwise_lr_decay"]) == (3e-4, 0.7)

    def encoder(size, **overrides):
        return SimpleNamespace(model_config=get_config("electra", size, overrides))

    loaded = FinetuningConfig(init_checkpoint="some/encoder.keras")
    assert large_encoder(loaded, encoder("large"))
    assert large_encoder(loaded, encoder("large", num_layer_groups=1))  # shared layers too
    assert not large_encoder(loaded, encoder("base"))
    # --model_size names only a fresh encoder's size
    assert not large_encoder(FinetuningConfig(init_checkpoint="x.keras", model_size="large"),
                             encoder("base"))
    assert not large_encoder(loaded, encoder("large", num_hidden_layers=12))
    # a fresh --model_size=large encoder counts as large whatever its overrides
    scratch = FinetuningConfig(from_scratch=True, model_size="large")
    assert large_encoder(scratch, encoder("large", num_hidden_layers=2))
    assert not large_encoder(FinetuningConfig(from_scratch=True, model_size="base"),
                             encoder("base"))


# ----------------------------------------------------------------------------- RACE

def race_row(tokenizer, question, option):
    task = RaceTask()
    example = readers.MultipleChoiceExample(
        "r-0", " ".join(["word"] * 40), question, [option, "shop", "sea", "park"], 0,
        "middle")
    features = task.featurize([example], tokenizer, 24)
    return (features.inputs["input_ids"][0, 0].tolist(),
            features.inputs["segment_ids"][0, 0].tolist())


def test_race_cloze_question_has_the_option_in_its_blank_only(tokenizer):
    row, segments = race_row(tokenizer, "tom went to the _ .", "moon")
    second = tokenizer.tokenize("tom went to the moon .") + [SEP]
    assert row[-len(second):] == second
    assert row[-len(second) - 1] == SEP  # the article's [SEP] comes right before it
    moon = tokenizer.tokenize("moon")
    assert len(moon) == 1 and row.count(moon[0]) == 1  # not repeated after the question
    assert segments == [0] * (24 - len(second)) + [1] * len(second)


def test_race_plain_question_is_followed_by_the_option(tokenizer):
    row, segments = race_row(tokenizer, "what colour is the ball ?", "red")
    second = tokenizer.tokenize("what colour is the ball ? red") + [SEP]
    assert row[-len(second):] == second
    assert row[-len(second) - 1] == SEP
    assert row.count(SEP) == 2  # [CLS] article [SEP] question option [SEP]
    assert segments == [0] * (24 - len(second)) + [1] * len(second)


# ----------------------------------------------------------------------------- POS

def test_pos_accuracy_counts_words_beyond_max_seq_length_as_errors(tokenizer):
    task = TaggingTask("pos")
    long = readers.TaggedSentence("s-0", ["cat"] * 20, ["NN", "VB"] * 10)
    short = readers.TaggedSentence("s-1", ["cat", "cat"], ["NN", "NN"])
    task.set_tags([long, short])
    assert len(tokenizer.tokenize("cat")) == 1  # one WordPiece per word here
    features = task.featurize([long, short], tokenizer, 8)
    # [CLS] + 6 words + [SEP] fill 8 tokens: 14 of the long sentence's words are cut off
    assert features.inputs["word_mask"].sum(-1).tolist() == [6, 2]
    assert features.extra["truncated_words"] == [14, 0]  # per sentence
    perfect = task.word_labels(features)
    assert task.score(perfect, features) == {"accuracy": pytest.approx(8 / 22)}
    one_wrong = perfect.copy()
    one_wrong[1, 0] = 1 - one_wrong[1, 0]
    assert task.score(one_wrong, features) == {"accuracy": pytest.approx(7 / 22)}
    # a subset keeps its own sentences' count: the short sentence alone is all tagged
    short_only = features.subset([1])
    assert task.score(task.word_labels(short_only), short_only) == {"accuracy": 1.0}


def test_token_accuracy_with_unpredicted_words():
    assert scorers.token_accuracy([1, 2, -1], [1, 3, -1], unpredicted=2) == 1 / 4
    assert scorers.token_accuracy([[1, 2]], [[1, 2]], unpredicted=0) == 1.0
    assert scorers.token_accuracy([-1], [-1], unpredicted=3) == 0.0  # every word cut off
    with pytest.raises(ValueError, match="unpredicted=-1"):
        scorers.token_accuracy([1], [1], unpredicted=-1)


# ----------------------------------------------------------------------------- trials

def trial(k, best, last, test=None):
    result = {"trial": k, "dev_best": {"rte": {"dev": {"accuracy": best}}},
              "dev_last": {"rte": {"dev": {"accuracy": last}}}}
    if test is not None:
        result["test_at_best_dev"] = {"rte": {"test": {"accuracy": test}}}
    return result


def test_trials_report_their_median_and_their_max():
    trials = [trial(0, 0.5, 0.4, 0.6), trial(1, 0.9, 0.7, 0.5), trial(2, 0.7, 0.6, 0.8)]
    summary = summarize_trials(trials)
    assert summary == {
        "dev_best": {"rte": {"dev": {"accuracy": 0.7}}},
        "dev_best_max": {"rte": {"dev": {"accuracy": 0.9}}},
        "dev_last": {"rte": {"dev": {"accuracy": 0.6}}},
        "dev_last_max": {"rte": {"dev": {"accuracy": 0.7}}},
        "test_at_best_dev": {"rte": {"test": {"accuracy": 0.6}}},
        "test_at_best_dev_max": {"rte": {"test": {"accuracy": 0.8}}}}
    # two trials: the median is their mean
    assert summarize_trials(trials[:2])["dev_best"]["rte"]["dev"]["accuracy"] == \
        pytest.approx(0.7)
    # a summary only of what every trial has
    assert set(summarize_trials([trial(0, 0.5, 0.4), trial(1, 0.6, 0.5, 0.9)])) == {
        "dev_best", "dev_best_max", "dev_last", "dev_last_max"}

    table = markdown_table(dict(summary, trials=trials)).splitlines()
    assert table[0] == ("| task | split | metric | last epoch | best-dev epoch | "
                        "majority baseline | last epoch, max | best-dev epoch, max | "
                        "trial 0 | trial 1 | trial 2 |")
    assert table[2] == ("| rte | dev | accuracy | 0.6000 | 0.7000 |  | 0.7000 | 0.9000 | "
                        "0.5000 | 0.9000 | 0.7000 |")


def test_the_shao_recipe_is_the_papers_small_one_with_ten_trials():
    paper, shao = finetune_recipe("glue_small_paper"), finetune_recipe("glue_small_shao")
    assert shao.num_trials == 10 and paper.num_trials == 1
    assert (shao.learning_rate, shao.layerwise_lr_decay, shao.weight_decay_rate) == \
        (3e-4, 0.8, 0.0)
    shao.num_trials = 1
    assert shao == paper
