"""Test helpers: checkpoints in the original TF1 layout and the same weights in HF layout.

Written from the original code's variable names, independently of electra_tf's name
table, so the converter is checked against the layout rather than against itself.
"""

import numpy as np
import tensorflow as tf
import torch

LAYER_PARTS = {  # original suffix inside layer_<i> -> (rows, cols) as functions of h, i
    "attention/self/query": lambda h, i: (h, h),
    "attention/self/key": lambda h, i: (h, h),
    "attention/self/value": lambda h, i: (h, h),
    "attention/output/dense": lambda h, i: (h, h),
    "intermediate/dense": lambda h, i: (h, i),
    "output/dense": lambda h, i: (i, h),
}
LAYER_NORMS = ("attention/output/LayerNorm", "output/LayerNorm")


def _dense(out, name, rows, cols, rng):
    out[f"{name}/kernel"] = rng.normal(0, 0.2, (rows, cols)).astype("float32")
    out[f"{name}/bias"] = rng.normal(0, 0.2, (cols,)).astype("float32")


def _norm(out, name, width, rng):
    out[f"{name}/gamma"] = (1 + rng.normal(0, 0.1, (width,))).astype("float32")
    out[f"{name}/beta"] = rng.normal(0, 0.1, (width,)).astype("float32")


def _encoder(out, scope, hidden, layers, inter, embedding, rng):
    if embedding != hidden:
        _dense(out, f"{scope}/embeddings_project", embedding, hidden, rng)
    for layer in range(layers):
        prefix = f"{scope}/encoder/layer_{layer}"
        for part, shape in LAYER_PARTS.items():
            _dense(out, f"{prefix}/{part}", *shape(hidden, inter), rng)
        for part in LAYER_NORMS:
            _norm(out, f"{prefix}/{part}", hidden, rng)


def _embeddings(out, scope, vocab, embedding, positions, rng):
    out[f"{scope}/embeddings/word_embeddings"] = rng.normal(0, 0.2, (vocab, embedding)).astype(
        "float32")
    out[f"{scope}/embeddings/position_embeddings"] = rng.normal(
        0, 0.2, (positions, embedding)).astype("float32")
    out[f"{scope}/embeddings/token_type_embeddings"] = rng.normal(
        0, 0.2, (2, embedding)).astype("float32")
    _norm(out, f"{scope}/embeddings/LayerNorm", embedding, rng)


def electra_variables(vocab=1000, embedding=16, hidden=32, layers=2, inter=128,
                      gen_hidden=8, gen_inter=32, positions=64, seed=0):
    """Every variable of an original ELECTRA pretraining checkpoint (tied embeddings)."""
    rng = np.random.default_rng(seed)
    out = {}
    _embeddings(out, "electra", vocab, embedding, positions, rng)
    _encoder(out, "electra", hidden, layers, inter, embedding, rng)
    _encoder(out, "generator", gen_hidden, layers, gen_inter, embedding, rng)
    _dense(out, "generator_predictions/dense", gen_hidden, embedding, rng)
    _norm(out, "generator_predictions/LayerNorm", embedding, rng)
    out["generator_predictions/output_bias"] = rng.normal(0, 0.2, (vocab,)).astype("float32")
    _dense(out, "discriminator_predictions/dense", hidden, hidden, rng)
    _dense(out, "discriminator_predictions/dense_1", hidden, 1, rng)
    return out


def bert_variables(vocab=1000, hidden=32, layers=2, inter=128, positions=64, seed=0):
    """Every variable of an original BERT checkpoint, pooler and NSP head included."""
    rng = np.random.default_rng(seed)
    out = {}
    _embeddings(out, "bert", vocab, hidden, positions, rng)
    _encoder(out, "bert", hidden, layers, inter, hidden, rng)
    _dense(out, "bert/pooler/dense", hidden, hidden, rng)
    _dense(out, "cls/predictions/transform/dense", hidden, hidden, rng)
    _norm(out, "cls/predictions/transform/LayerNorm", hidden, rng)
    out["cls/predictions/output_bias"] = rng.normal(0, 0.2, (vocab,)).astype("float32")
    _dense(out, "cls/seq_relationship/output_weights", 2, hidden, rng)
    return out


def write_tf1_checkpoint(variables, prefix, optimizer_state=True):
    """Save `variables` as the original code did: tf.compat.v1 variables and a Saver."""
    with tf.Graph().as_default():
        created = []
        for name, value in variables.items():
            created.append(tf.compat.v1.get_variable(name, initializer=tf.constant(value)))
            if optimizer_state:
                created.append(tf.compat.v1.get_variable(
                    f"{name}/adam_m", initializer=tf.zeros_like(value)))
                created.append(tf.compat.v1.get_variable(
                    f"{name}/adam_v", initializer=tf.zeros_like(value)))
        if optimizer_state:
            created.append(tf.compat.v1.train.get_or_create_global_step())
        saver = tf.compat.v1.train.Saver(created)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix)


def to_hf_state(variables, scope, base_prefix):
    """The same weights under Hugging Face names (kernels transposed), for one HF model.

    scope: the original scope of the encoder ("electra", "generator", "bert");
    base_prefix: "electra." / "bert." for *For... models, "" for a bare model. The
    shared embeddings (electra/embeddings) are included for the generator too.
    """
    state = {}
    for name, value in variables.items():
        top, _, rest = name.partition("/")
        if top == scope or (top == "electra" and rest.startswith("embeddings/")
                            and scope == "generator"):
            hf = base_prefix + rest
        elif top == {"electra": "discriminator_predictions", "bert": "cls",
                     "generator": "generator_predictions"}[scope]:
            hf = name
        else:
            continue
        hf = (hf.replace("/", ".").replace("dense_1.", "dense_prediction.")
              .replace("generator_predictions.output_bias", "generator_lm_head.bias")
              .replace("cls.predictions.output_bias", "cls.predictions.bias"))
        hf = ".".join(f"layer.{p[6:]}" if p.startswith("layer_") else p for p in hf.split("."))
        if hf.endswith(".kernel"):
            hf, value = hf[:-7] + ".weight", value.T
        elif hf.endswith(".gamma"):
            hf = hf[:-6] + ".weight"
        elif hf.endswith(".beta"):
            hf = hf[:-5] + ".bias"
        elif hf.endswith("_embeddings"):
            hf += ".weight"
        state[hf] = torch.tensor(np.ascontiguousarray(value))
    return state


def torch_inputs(batch):
    return dict(input_ids=torch.tensor(batch["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(batch["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(batch["segment_ids"], dtype=torch.long))
