"""The BiLSTM classifier ("To Pretrain or Not to Pretrain"): masked max-pooling, frozen
pretrained embeddings, parameter counts, save/load, embeddings from an exported encoder."""

import keras
import numpy as np
import pytest

from electra_tf.configs import get_config
from electra_tf.modeling import (
    BiLstmClassifier,
    Encoder,
    MaskedMaxPooling,
    embeddings_from_encoder,
    lstm_parameter_count,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(25)]


def batch(rng, lengths, seq_len):
    """Right-padded rows of random ids (pad id 0), segment_ids as the featurizers give."""
    ids = rng.integers(5, len(VOCAB), (len(lengths), seq_len)).astype("int32")
    mask = (np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]).astype("int32")
    return {"input_ids": ids * mask, "input_mask": mask,
            "segment_ids": np.zeros_like(ids)}


def logits(model, inputs):
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def compiled(model, learning_rate=1e-2):
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    return model


def test_max_pooling_ignores_padding():
    rng = np.random.default_rng(0)
    model = BiLstmClassifier(len(VOCAB), 3, num_layers=2, units=8, embedding_size=6)
    inputs = batch(rng, [7, 4, 1], 7)
    reference = logits(model, inputs)
    # Other token ids at the padded positions: other embeddings and LSTM inputs there.
    noisy = dict(inputs, input_ids=np.where(inputs["input_mask"] > 0, inputs["input_ids"],
                                            rng.integers(5, len(VOCAB), (3, 7))))
    np.testing.assert_array_equal(logits(model, noisy), reference)
    # The same sequences with 5 more padding positions.
    padded = {k: np.pad(v, [(0, 0), (0, 5)]) for k, v in inputs.items()}
    np.testing.assert_allclose(logits(model, padded), reference, rtol=0, atol=1e-6)
    # A row alone gives what it gives in the batch.
    alone = {k: v[1:2, :4] for k, v in inputs.items()}
    np.testing.assert_allclose(logits(model, alone), reference[1:2], rtol=0, atol=1e-6)

    # The pooling itself: huge states at padded positions never win; no real token -> 0.
    states = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], "int32")
    states[mask == 0] = 1e6
    pooled = keras.ops.convert_to_numpy(MaskedMaxPooling()(states, mask))
    np.testing.assert_array_equal(pooled[0], states[0, :3].max(axis=0))
    np.testing.assert_array_equal(pooled[1], states[1, 0])
    np.testing.assert_array_equal(pooled[2], np.zeros(4, "float32"))


def test_a_pretrained_table_feeds_the_lstm_straight_unless_projection_is_asked():
    table = np.ones((len(VOCAB), 6), "float32")
    wide = np.ones((len(VOCAB), 10), "float32")
    scratch = BiLstmClassifier(len(VOCAB), 2, 1, 4, embedding_size=6)
    same = BiLstmClassifier(len(VOCAB), 2, 1, 4, embedding_size=6,
                            pretrained_embeddings=table)
    wider = BiLstmClassifier(len(VOCAB), 2, 1, 4, embedding_size=6,
                             pretrained_embeddings=wide)
    projected = BiLstmClassifier(len(VOCAB), 2, 1, 4, embedding_size=6,
                                 pretrained_embeddings=wide, project_pretrained=True)
    same_projected = BiLstmClassifier(len(VOCAB), 2, 1, 4, embedding_size=6,
                                      pretrained_embeddings=table, project_pretrained=True)
    assert scratch.embeddings_project is None and scratch.word_embeddings.trainable
    assert same.embeddings_project is None and not same.word_embeddings.trainable
    # The paper's +emb: the first LSTM reads the frozen table's 10 features (4 gates x 4).
    assert wider.embeddings_project is None and not wider.word_embeddings.trainable
    assert wider.lstm_layers[0].forward_layer.cell.kernel.shape == (10, 16)
    assert projected.embeddings_project.kernel.shape == (10, 6)
    assert projected.lstm_layers[0].forward_layer.cell.kernel.shape == (6, 16)
    for model in (scratch, same, wider, same_projected):
        assert not any(w.path.startswith("embeddings_project") for w in model.weights)
    assert scratch.name == "LSTM-1-4"
    with pytest.raises(ValueError, match=r"shape \(29, 6\).*vocab_size=30"):
        BiLstmClassifier(len(VOCAB), 2, 1, 4, pretrained_embeddings=table[1:])


@pytest.mark.parametrize("project", [False, True])
def test_frozen_pretrained_embeddings_stay_while_the_rest_trains(project):
    rng = np.random.default_rng(1)
    table = rng.normal(size=(len(VOCAB), 10)).astype("float32")
    model = compiled(BiLstmClassifier(len(VOCAB), 2, 1, 8, embedding_size=6,
                                      pretrained_embeddings=table, project_pretrained=project))
    assert all(w is not model.word_embeddings.embeddings for w in model.trainable_weights)
    np.testing.assert_array_equal(model.word_embeddings.embeddings.numpy(), table)
    before = {w.path: w.numpy().copy() for w in model.weights}
    inputs = batch(rng, [8, 5, 3, 6], 8)
    model.fit(inputs, np.array([0, 1, 1, 0]), epochs=3, batch_size=4, verbose=0)
    after = {w.path: w.numpy() for w in model.weights}
    np.testing.assert_array_equal(after["word_embeddings/embeddings"], table)
    trained = ["bilstm_0/forward_lstm/lstm_cell/kernel",
               "bilstm_0/backward_lstm/lstm_cell/recurrent_kernel", "classifier/kernel"]
    for path in trained + ["embeddings_project/kernel"] * project:
        assert not np.array_equal(after[path], before[path]), f"{path} did not train"


@pytest.mark.parametrize("num_layers,units,by_hand", [
    # Per direction, a Keras LSTM of k units on width d has 4k(d + k) + 4k parameters;
    # Bidirectional doubles it; the output layer is 2k * 2 + 2.
    # LSTM-2-256: 2(4*256*(128+256) + 1024) = 2 * 394,240 = 788,480 (layer 0, input 128)
    #           + 2(4*256*(512+256) + 1024) = 2 * 787,456 = 1,574,912 (layer 1, input 2k)
    #           + 512*2 + 2 = 1,026
    (2, 256, 788_480 + 1_574_912 + 1_026),  # 2,364,418
    # LSTM-4-256: layer 0 as above, layers 1-3 as layer 1 above.
    (4, 256, 788_480 + 3 * 1_574_912 + 1_026),  # 5,514,242
    # LSTM-4-512: 2(4*512*(128+512) + 2048) = 2 * 1,312,768 = 2,625,536
    #           + 3 * 2(4*512*(1024+512) + 2048) = 3 * 2 * 3,147,776 = 18,886,656
    #           + 1024*2 + 2 = 2,050
    (4, 512, 2_625_536 + 18_886_656 + 2_050),  # 21,514,242
])
def test_parameter_counts_of_the_papers_sizes(num_layers, units, by_hand, zero_initialized):
    vocab_size = len(VOCAB)
    counts = lstm_parameter_count(num_layers, units, 128, 2, vocab_size=vocab_size)
    assert counts["without_embeddings"] == by_hand
    assert counts["embeddings"] == vocab_size * 128
    assert counts["total"] == by_hand + vocab_size * 128
    model = BiLstmClassifier(vocab_size, 2, num_layers, units)
    table = model.word_embeddings.embeddings
    non_embedding = sum(int(np.prod(w.shape)) for w in model.trainable_weights
                        if w is not table)
    assert non_embedding == by_hand
    assert model.count_params() == counts["total"]


@pytest.mark.parametrize("units,by_hand,published", [
    # "To Pretrain or Not to Pretrain", Table 2: the BiLSTMs on RoBERTa-Base's frozen
    # 768-wide table count their trainable parameters. Per layer, 2 directions x 4 gates
    # x units x (input + units + 1 bias); 4 layers; the classifier 2 * units * 2 + 2.
    # LSTM-4-512+Base: layer 0 reads 768: 2*4*512*(768+512+1) = 4,096 * 1,281 = 5,246,976;
    # layers 1-3 read 1,024: 3 * 4,096 * (1,024+512+1) = 3 * 6,295,552 = 18,886,656;
    # classifier 1,024*2 + 2 = 2,050. Sum 24,135,682: the paper's 24M.
    (512, 5_246_976 + 18_886_656 + 2_050, "24"),
    # LSTM-4-256+Base: layer 0 2*4*256*(768+256+1) = 2,048 * 1,025 = 2,099,200;
    # layers 1-3 3 * 2,048 * (512+256+1) = 3 * 1,574,912 = 4,724,736;
    # classifier 512*2 + 2 = 1,026. Sum 6,824,962: the paper's 6.8M.
    (256, 2_099_200 + 4_724_736 + 1_026, "6.8"),
])
def test_trainable_parameters_on_a_frozen_base_table_are_the_papers(units, by_hand,
                                                                    published,
                                                                    zero_initialized):
    vocab_size = len(VOCAB)
    model = BiLstmClassifier(vocab_size, 2, 4, units,
                             pretrained_embeddings=np.zeros((vocab_size, 768), "float32"))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == by_hand
    assert f"{trainable / 1e6:.2g}" == published
    assert model.count_params() == by_hand + vocab_size * 768  # the frozen table
    counts = lstm_parameter_count(4, units, 128, 2, vocab_size=vocab_size,
                                  pretrained_width=768)
    assert (counts["without_embeddings"], counts["projection"]) == (by_hand, 0)
    assert counts["total"] == model.count_params()


def test_parameter_counts_of_a_pretrained_table_with_and_without_projection():
    # LSTM-1-4 straight on a 10-wide table: LSTM 2(4*4*(10+4) + 16) = 480; output
    # 8*3 + 3 = 27.
    counts = lstm_parameter_count(1, 4, 6, 3, vocab_size=30, pretrained_width=10)
    assert counts["without_embeddings"] == 480 + 27 and counts["projection"] == 0
    assert counts["embeddings"] == 300 and counts["total"] == 507 + 300
    model = BiLstmClassifier(30, 3, 1, 4, embedding_size=6,
                             pretrained_embeddings=np.zeros((30, 10), "float32"))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 507
    # Projected to 6: projection 10*6 + 6 = 66; LSTM 2(4*4*(6+4) + 16) = 352; output 27.
    counts = lstm_parameter_count(1, 4, 6, 3, vocab_size=30, pretrained_width=10,
                                  project_pretrained=True)
    assert counts["without_embeddings"] == 66 + 352 + 27
    assert counts["embeddings"] == 300 and counts["total"] == 445 + 300
    model = BiLstmClassifier(30, 3, 1, 4, embedding_size=6, project_pretrained=True,
                             pretrained_embeddings=np.zeros((30, 10), "float32"))
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 445
    assert lstm_parameter_count(1, 4, 6, 3)["total"] is None


def test_keras_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    table = rng.normal(size=(len(VOCAB), 10)).astype("float32")
    model = BiLstmClassifier(len(VOCAB), 3, 2, 8, embedding_size=6,
                             pretrained_embeddings=table, project_pretrained=True,
                             dropout_rate=0.2, name="lstm_pair")
    inputs = batch(rng, [6, 2], 6)
    path = str(tmp_path / "lstm.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is BiLstmClassifier and restored.name == "lstm_pair"
    assert restored.get_config() == model.get_config()
    assert not restored.word_embeddings.trainable and restored.project_pretrained
    np.testing.assert_array_equal(restored.word_embeddings.embeddings.numpy(), table)
    np.testing.assert_array_equal(logits(restored, inputs), logits(model, inputs))


def write_vocab(path, tokens):
    path.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    return str(path)


def test_embeddings_from_an_exported_encoder_and_the_vocab_check(tmp_path):
    export = tmp_path / "model"
    export.mkdir()
    encoder = Encoder(get_config("electra", "debug", {"vocab_size": len(VOCAB)}))
    encoder.save(str(export / "encoder.keras"))
    write_vocab(export / "vocab.txt", VOCAB)
    task_vocab = write_vocab(tmp_path / "task_vocab.txt", VOCAB)
    expected = encoder.embeddings.word_embeddings.embeddings.numpy()

    for source in (str(export), str(export / "encoder.keras")):
        np.testing.assert_array_equal(embeddings_from_encoder(source, task_vocab), expected)
    # The table, frozen, straight under the LSTM.
    table = embeddings_from_encoder(str(export), task_vocab)
    model = BiLstmClassifier(len(VOCAB), 2, 1, 4, pretrained_embeddings=table)
    assert model.embeddings_project is None
    assert model.lstm_layers[0].forward_layer.cell.kernel.shape == (table.shape[1], 16)
    np.testing.assert_array_equal(model.word_embeddings.embeddings.numpy(), expected)

    other = write_vocab(tmp_path / "other.txt", VOCAB[:7] + ["w99"] + VOCAB[8:])
    with pytest.raises(ValueError) as error:
        embeddings_from_encoder(str(export), other)
    message = str(error.value)
    assert str(export / "vocab.txt") in message and other in message
    assert "line 8" in message and "'w2'" in message and "'w99'" in message

    longer = write_vocab(tmp_path / "longer.txt", VOCAB + ["w99"])
    with pytest.raises(ValueError, match=r"has 30 lines.*longer\.txt 31"):
        embeddings_from_encoder(str(export), longer)


def test_loss_goes_down_on_a_tiny_learnable_task():
    # Label 1 when token 7 occurs anywhere in the (variable-length) sequence.
    rng = np.random.default_rng(3)
    inputs = batch(rng, rng.integers(3, 12, 64), 12)
    inputs["input_ids"][inputs["input_ids"] == 7] = 8
    labels = rng.integers(0, 2, 64)
    for row in np.flatnonzero(labels):
        inputs["input_ids"][row, rng.integers(0, inputs["input_mask"][row].sum())] = 7
    keras.utils.set_random_seed(0)
    model = compiled(BiLstmClassifier(len(VOCAB), 2, 1, 16, embedding_size=16), 2e-2)
    history = model.fit(inputs, labels, epochs=6, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
