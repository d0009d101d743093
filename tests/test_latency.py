"""The parameter and latency table ("To Pretrain or Not to Pretrain", Table 3): model names,
parameter counts without the token table, the compiled timing, the markdown layout, bad
input; the bfloat16 copy of a model and how far its outputs are from float32's."""

import json
import math
import os
import subprocess
import sys

import benchmark_scripts
import numpy as np
import pytest

from data_prep import samples
from electra_tf.baselines import latency
from electra_tf.baselines.latency import (
    format_table,
    inference_function,
    latency_ratio,
    latency_table,
    parse_model_name,
    random_inputs,
    time_inference,
)
from electra_tf.configs import get_config
from electra_tf.modeling import build_pretrainer
from electra_tf.tokenization import SpecialIds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def own_count_without_token_table(model):
    """The built Keras model's count minus its token table, read off the model itself."""
    table = (model.embeddings.word_embeddings if hasattr(model, "model_config")
             else model.word_embeddings).embeddings
    return model.count_params() - int(np.prod(table.shape))


def test_parameter_counts_by_hand():
    # ELECTRA-Small (hidden 256, 12 layers, FFN 1024, embedding 128): a layer has
    # attention 4 * (256 * 256 + 256) = 263,168, two LayerNorms 2 * 512, FFN
    # 256 * 1024 + 1024 + 1024 * 256 + 256 = 525,568: 789,760, times 12 = 9,477,120;
    # the 128 -> 256 projection 33,024; position and segment tables (512 + 2) * 128 and
    # the embedding LayerNorm 256 = 66,048. Token table 30,522 * 128.
    small = parse_model_name("ELECTRA-Small").parameter_counts()
    assert small["without_embeddings"] == 9_477_120 + 33_024 + 66_048 == 9_576_192
    assert small["position_segment_embeddings"] == 66_048
    assert small["token_embeddings"] == 30_522 * 128
    # ELECTRA-Base: 12 layers of 7,087,872 (hidden 768, FFN 3072), no projection,
    # (512 + 2) * 768 + 2 * 768 = 396,288 of position/segment tables and LayerNorm.
    base = parse_model_name("ELECTRA-Base").parameter_counts()
    assert base["without_embeddings"] == 12 * 7_087_872 + 396_288 == 85_450_752
    # The frozen 768-wide table feeds the first LSTM instead of a 128-wide one: its input
    # kernels grow by 2 directions x 4 gates x k units x (768 - 128), on top of
    # tests/test_lstm.py's counts: 1,310,720 for k = 256, 2,621,440 for k = 512 (LSTM-4-256
    # and LSTM-4-512 then have the paper's 6.8M and 24M).
    for name, scratch, wider in (("LSTM-2-256", 2_364_418, 1_310_720),
                                 ("LSTM-4-256", 5_514_242, 1_310_720),
                                 ("LSTM-4-512", 21_514_242, 2_621_440)):
        assert parse_model_name(name).parameter_counts()["without_embeddings"] == scratch
        pretrained = parse_model_name(name + "+emb768").parameter_counts()
        assert pretrained["without_embeddings"] == scratch + wider
        assert pretrained["token_embeddings"] == 30_522 * 768
        # A table as wide as the scratch one: the same count.
        same = parse_model_name(name + "+emb128").parameter_counts()
        assert same["without_embeddings"] == scratch


@pytest.mark.parametrize("name", ["ELECTRA-Debug"]
                         + [n for n in latency.DEFAULT_MODELS if n.startswith("LSTM")]
                         + ["LSTM-1-8+emb128"])
def test_parameter_counts_equal_the_built_models(name, zero_initialized):
    spec = parse_model_name(name)
    model = spec.build()
    counts = spec.parameter_counts()
    assert counts["without_embeddings"] == own_count_without_token_table(model)
    assert counts["total"] == model.count_params()
    assert latency.keras_parameter_counts(model)["without_embeddings"] == \
        counts["without_embeddings"]
    if spec.pretrained_width:  # the pretrained table is frozen and feeds the LSTM straight
        assert not model.word_embeddings.trainable and model.embeddings_project is None


def test_names_are_case_insensitive_and_canonical():
    assert parse_model_name(" electra-small ").name == "ELECTRA-Small"
    spec = parse_model_name("lstm-4-512+EMB768")
    assert (spec.name, spec.num_layers, spec.units, spec.pretrained_width) == (
        "LSTM-4-512+emb768", 4, 512, 768)
    assert not spec.is_encoder and spec.max_seq_len is None
    assert parse_model_name("ELECTRA-Base").max_seq_len == 512


def test_inference_function_is_the_deterministic_forward_pass_at_fixed_shapes():
    spec = parse_model_name("LSTM-1-8")
    model = spec.build()
    inputs = random_inputs(spec.input_names, 3, 5, seed=1)
    assert inputs["input_ids"].shape == (3, 5) and inputs["input_mask"].all()
    infer = inference_function(model, spec.input_names, 3, 5)
    first, second = np.asarray(infer(inputs)), np.asarray(infer(inputs))
    np.testing.assert_array_equal(first, second)  # training=False: no dropout
    np.testing.assert_allclose(first, np.asarray(model(inputs, training=False)), atol=1e-6)
    with pytest.raises((TypeError, ValueError)):  # the signature is fixed
        infer(random_inputs(spec.input_names, 4, 5))


def test_time_inference_reports_the_runs():
    result = time_inference("ELECTRA-Debug", batch_size=2, seq_len=8, num_runs=2, warmup=1)
    assert set(result) == {"batch_size", "seq_len", "mean_ms", "std_ms", "runs_ms",
                           "trace_s", "warmup_s"}
    assert (result["batch_size"], result["seq_len"], len(result["runs_ms"])) == (2, 8, 2)
    assert all(ms > 0 for ms in result["runs_ms"])
    assert result["mean_ms"] == pytest.approx(np.mean(result["runs_ms"]))
    assert result["std_ms"] == pytest.approx(np.std(result["runs_ms"]))
    assert result["trace_s"] > 0 and result["warmup_s"] > 0
    # A built model works too, and no warm-up means nothing untimed but the trace.
    built = time_inference(parse_model_name("LSTM-1-4+emb6").build(), 3, 4, num_runs=1,
                           warmup=0)
    assert built["warmup_s"] == 0 and built["std_ms"] == 0 and built["mean_ms"] > 0


def test_table_has_the_paper_layout_and_is_json():
    lines_seen = []
    table = latency_table(["ELECTRA-Debug", "lstm-1-4"], batch_sizes=[2, 3], seq_len=6,
                          num_runs=1, warmup=0, progress=lines_seen.append)
    json.loads(json.dumps(table))
    assert [row["model"] for row in table["rows"]] == ["ELECTRA-Debug", "LSTM-1-4"]
    assert table["rows"][0]["params_without_embeddings"] == 34_208  # by hand: test above
    assert set(table["rows"][1]["latency"]) == {"2", "3"}
    assert len(lines_seen) == 4 and lines_seen[0].startswith("ELECTRA-Debug batch 2 seq 6:")
    lines = format_table(table).splitlines()
    assert lines[0].startswith("Inference latency on CPU") and "sequence length 6" in lines[0]
    assert lines[2] == "| Model | Params w/o embeddings | batch 2 (ms) | batch 3 (ms) |"
    assert lines[3] == "|---|---:|---:|---:|"
    assert lines[4].startswith("| ELECTRA-Debug | 0.03M | ") and len(lines) == 6


def test_format_and_ratio_of_given_numbers():
    def cell(mean, std):
        return {"mean_ms": mean, "std_ms": std}

    table = {"device": "CPU", "threads": 2, "seq_len": 128, "batch_sizes": [128, 256],
             "num_runs": 3, "warmup": 1, "xla": True, "rows": [
                 {"model": "ELECTRA-Base", "params_without_embeddings": 85_450_752,
                  "latency": {"128": cell(33_012.4, 250.6), "256": cell(66_000, 10)}},
                 {"model": "LSTM-2-256", "params_without_embeddings": 2_364_418,
                  "latency": {"128": cell(12.34, 0.56)}}]}
    lines = format_table(table).splitlines()
    assert "CPU, 2 threads" in lines[0] and "3 runs after 1 warm-up" in lines[0]
    assert "tf.function + XLA" in lines[0]
    assert lines[4] == "| ELECTRA-Base | 85.45M | 33,012 ± 251 | 66,000 ± 10 |"
    assert lines[5] == "| LSTM-2-256 | 2.36M | 12.3 ± 0.6 | - |"
    assert latency_ratio(table, "electra-base", "lstm-2-256") == pytest.approx(33_012.4 / 12.34)
    assert math.isnan(latency_ratio(table, "ELECTRA-Base", "LSTM-2-256", 256))
    assert math.isnan(latency_ratio(table, "ELECTRA-Small", "LSTM-2-256"))


@pytest.mark.parametrize("name", ["GPT-2", "ELECTRA-Huge", "LSTM-0-256", "LSTM-2-0",
                                  "LSTM-2-256+emb0", "LSTM-2", ""])
def test_unknown_model_names_are_clear_errors(name):
    with pytest.raises(ValueError, match=r"unknown model .*allowed: ELECTRA-<Debug/Tiny/"):
        parse_model_name(name)


def test_bad_shapes_and_counts_are_clear_errors():
    with pytest.raises(ValueError, match="batch size must be an integer >= 1, got 0"):
        time_inference("LSTM-1-4", batch_size=0, seq_len=4)
    with pytest.raises(ValueError, match="sequence length must be an integer >= 1, got -1"):
        time_inference("LSTM-1-4", batch_size=1, seq_len=-1)
    with pytest.raises(ValueError, match="num_runs must be an integer >= 1, got 0"):
        time_inference("LSTM-1-4", 1, 4, num_runs=0)
    with pytest.raises(ValueError, match="warmup must be an integer >= 0, got -1"):
        time_inference("LSTM-1-4", 1, 4, warmup=-1)
    with pytest.raises(ValueError, match="sequence length 513 is longer than the encoder's 512"):
        latency_table(["LSTM-1-4", "ELECTRA-Debug"], [1], seq_len=513)
    # Checked before anything is built or timed.
    with pytest.raises(ValueError, match="batch size must be an integer >= 1, got 0"):
        latency_table(["ELECTRA-Base"], [128, 0], seq_len=4)
    with pytest.raises(ValueError, match="unknown model 'BERT-Base'"):
        latency_table(["ELECTRA-Base", "BERT-Base"], [1], seq_len=4)
    with pytest.raises(ValueError, match="device must be 'CPU' or 'GPU', got 'TPU'"):
        latency_table(["LSTM-1-4"], [1], seq_len=4, device="TPU")


def test_benchmark_rejects_bad_flags_in_one_line():
    env = dict(os.environ, PYTHONPATH=ROOT)
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "inference_latency.py"),
         "--models=ELECTRA-Small,GPT-2"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert errors[0].startswith("inference_latency.py: error: --models: unknown model "
                                "'GPT-2'; allowed: ELECTRA-<")
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ lower precision

SPECIAL = SpecialIds(pad=0, unk=100, cls=101, sep=102, mask=103)


def tiny_electra():
    return build_pretrainer(get_config("electra", "debug", {"vocab_size": 200}), seed=3)


def tiny_features(seq_len=16):
    rng = np.random.default_rng(0)
    sentences = [rng.integers(104, 200, n).tolist() for n in (5, 9, 14, 3, 20, 7)]
    return sentences, latency.masked_sentences(sentences, SPECIAL, 200, seq_len, seed=0)


def test_masked_sentences_are_cls_sentence_sep_padded_and_masked():
    sentences, features = tiny_features()
    assert set(features) == {"input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                             "masked_lm_ids", "masked_lm_weights"}
    lengths = [min(len(s), 14) + 2 for s in sentences]  # 20 tokens are cut to 14 + 2
    np.testing.assert_array_equal(features["input_mask"].sum(1), lengths)
    assert (features["input_ids"][:, 0] == SPECIAL.cls).all()
    assert features["masked_lm_positions"].shape == (6, 2)  # int((0.15 + 0.005) * 16)
    original = features["input_ids"].copy()
    np.put_along_axis(original, features["masked_lm_positions"],
                      features["masked_lm_ids"], 1)
    for row, (sentence, length) in enumerate(zip(sentences, lengths, strict=True)):
        assert original[row, 1:length - 1].tolist() == sentence[:14]
        assert original[row, length - 1] == SPECIAL.sep and not original[row, length:].any()
        chosen = features["masked_lm_positions"][row][features["masked_lm_weights"][row] > 0]
        assert len(chosen) >= 1 and ((chosen > 0) & (chosen < length - 1)).all()
    with pytest.raises(ValueError, match="sequence length must be >= 3"):
        latency.masked_sentences([[5]], SPECIAL, 200, 2)


def test_with_policy_is_the_same_model_in_bfloat16():
    model = tiny_electra()
    twin = latency.with_policy(model, "mixed_bfloat16")
    assert type(twin) is type(model) and twin is not model
    for a, b in zip(model.weights, twin.weights, strict=True):
        assert b.dtype == "float32"  # weights stay float32; the compute is bfloat16
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert twin.discriminator.transformer.dtype_policy.compute_dtype == "bfloat16"


def test_precision_agreement_of_a_tiny_model():
    model = tiny_electra()
    _, features = tiny_features()
    same = latency.precision_agreement(model, features, "float32", batch_size=4)
    assert (same["sentences"], same["tokens"]) == (6, int(features["input_mask"].sum()))
    assert same["masked"] == int(features["masked_lm_weights"].sum())
    for key in ("mlm", "rtd", "hidden"):
        assert same[key]["max_abs_diff"] == 0.0 and same[key]["max_abs"] > 0
    assert same["mlm"]["agreement"] == same["rtd"]["agreement"] == 1.0
    bf16 = latency.precision_agreement(model, features, "mixed_bfloat16", batch_size=4)
    for key in ("mlm", "rtd", "hidden"):
        diff = bf16[key]["max_abs_diff"]
        # bfloat16 keeps 8 bits of mantissa: differences of a few percent of the scale.
        assert 0 < diff < 0.1 * bf16[key]["max_abs"] + 0.05 and math.isfinite(diff)
    for key in ("mlm", "rtd"):
        assert 0.0 <= bf16[key]["agreement"] <= 1.0
        assert set(bf16[key]["accuracy"]) == {"float32", "mixed_bfloat16"}
        assert bf16[key]["accuracy"]["float32"] == same[key]["accuracy"]["float32"]
    json.loads(json.dumps(bf16))
    bert = build_pretrainer(get_config("bert", "debug", {"vocab_size": 200}))
    with pytest.raises(TypeError, match="needs an ELECTRA .* got BertPretrainer"):
        latency.precision_agreement(bert, features)


def test_real_wikipedia_sentences_tokenize_into_masked_rows():
    (inference_latency,) = benchmark_scripts.load("inference_latency")
    from electra_tf.tokenization import WordPieceTokenizer

    sentences = inference_latency.real_sentences(4)
    assert len(sentences) == 4 and all(len(s.split()) >= 5 for s in sentences)
    tokenizer = WordPieceTokenizer(samples.path("vocab"))
    features = latency.masked_sentences(tokenizer.tokenize_each(sentences), tokenizer.special,
                                        len(tokenizer.vocab), 64)
    assert features["input_ids"].shape == (4, 64)
    assert (features["input_mask"].sum(1) > 7).all()


@pytest.mark.parametrize("args, message", [
    (["--precisions=fp32,fp64"], "--precisions=fp32,fp64: allowed: fp32, bf16"),
    (["--check_model=/no/such/model"], "--check_model=/no/such/model: no such file or folder"),
])
def test_benchmark_rejects_bad_precision_and_check_flags_in_one_line(args, message):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "inference_latency.py"), *args],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"inference_latency.py: error: {message}")
    assert "Traceback" not in done.stderr
