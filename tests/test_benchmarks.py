"""The speed benchmarks' own logic: ratios and tables from given numbers, the GPU benchmark
without a GPU (one line, the JSON) and its whole code path forced onto the CPU at tiny
sizes, and bad flags. Nothing here asserts a timing."""

import json
import math
import os
import subprocess
import sys

import pytest
from benchmark_scripts import ROOT, load

gpu, inference_latency, matmul_floor, peer_process, train = load(
    "gpu", "inference_latency", "matmul_floor", "peer_process", "pretrain_throughput")

NAN = float("nan")


def run_script(name, *args, timeout=240, **env):
    return subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", name), *args],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env), cwd=ROOT)


# --------------------------------------------------------------- helpers, given numbers


def test_loading_the_scripts_leaves_no_folder_on_the_path_that_shadows_a_package():
    # benchmarks/data_prep.py on sys.path makes every process spawned later import it as
    # the data_prep package (a spawned pool's workers then die as they start).
    assert os.path.join(ROOT, "benchmarks") not in sys.path
    assert sys.modules["data_prep"].__file__.endswith(os.path.join("data_prep", "__init__.py"))


def test_ratio_best_and_formatting_of_given_numbers():
    assert peer_process.ratio(3, 2) == 1.5
    for missing in ((None, 2), (3, None), (3, 0), (NAN, 2)):
        assert math.isnan(peer_process.ratio(*missing))
    rates = {"fp32": 100.0, "bf16": 150.0, "fp16": None}
    assert peer_process.best_of(rates) == ("bf16", 150.0)
    assert peer_process.best_of({"fp32": 2000.0, "bf16": 1000.0},
                                lower_is_better=True) == ("bf16", 1000.0)
    name, value = peer_process.best_of({"fp32": None, "bf16": NAN})
    assert name is None and math.isnan(value)
    assert peer_process.format_ratio(1.234) == "1.23x"
    assert peer_process.format_ratio(NAN) == peer_process.format_ratio(None) == "-"
    assert peer_process.format_share(0.4871) == "48.7%"
    assert peer_process.format_share(NAN) == "-"
    assert peer_process.verdict(2.0, 2.0) == "MET"
    assert peer_process.verdict(1.99, 2.0) == "NOT met"
    assert peer_process.verdict(NAN, 2.0) == "not measured"
    assert [train.precision_of(v) for v in train.VARIANTS] == [
        "fp32", "fp32", "bf16", "bf16", "fp16", "fp16"]
    assert train.mfu(1000.0, 2000.0, 4e6) == 0.5
    assert math.isnan(train.mfu(1000.0, None, 4e6))
    assert train.best_peaks({"tensorflow fp32": 210e9, "numpy fp32": 200e9,
                             "torch fp32": 214e9, "tensorflow bf16": 557e9}) == {
        "fp32": ("torch fp32", 214e9), "bf16": ("tensorflow bf16", 557e9)}


def rows_of_given_numbers():
    """Two ELECTRA rows at 4,096 tokens per step: fp32 2.048 s (2,000 tokens/s), the
    peer 4.096 s in fp32 and 2.048 s in bf16 meanwhile; bf16 1.024 s (4,000 tokens/s),
    the peer 4.096 s and 2.56 s (1,600 tokens/s)."""
    return [
        {"model": "electra", "variant": "fp32", "precision": "fp32", "warmup_s": 12.0,
         "step_s": 2.048, "hf_step_s": {"fp32": 4.096, "bf16": 2.048}, "busy": 0.01,
         "flops_per_token": 100.0},
        {"model": "electra", "variant": "bf16", "precision": "bf16", "warmup_s": 20.0,
         "step_s": 1.024, "hf_step_s": {"fp32": 4.096, "bf16": 2.56}, "busy": 0.02,
         "flops_per_token": 100.0},
        {"model": "electra", "variant": "xla", "precision": "fp32", "warmup_s": None,
         "step_s": None, "hf_step_s": {}, "busy": None, "flops_per_token": 100.0},
    ]


def test_training_ratios_per_precision_pair_and_best_of_given_numbers():
    rows = rows_of_given_numbers()
    assert train.rates_of_row(rows[1], 4096) == (4000.0, {"fp32": 1000.0, "bf16": 1600.0})
    assert train.row_ratios("bf16", 4000.0, {"fp32": 1000.0, "bf16": 1600.0}) == {
        "same": 2.5, "best": 2.5, "peer_best": "bf16"}
    assert train.row_ratios("fp32", 2000.0, {"fp32": 1000.0, "bf16": 2000.0}) == {
        "same": 2.0, "best": 1.0, "peer_best": "bf16"}
    summary = train.model_summary(rows, 4096)
    assert summary["fp32"] == {"ours_variant": "fp32", "ours": 2000.0, "peer_precision": "fp32",
                               "peer": 1000.0, "ratio": 2.0}
    assert summary["bf16"]["ratio"] == 2.5
    assert summary["best"] == {"ours_variant": "bf16", "ours": 4000.0,
                               "peer_precision": "bf16", "peer": 1600.0, "ratio": 2.5}
    assert train.format_summary("ELECTRA-Small", summary) == (
        "ELECTRA-Small, ours / HF tokens/s: fp32 vs HF fp32 2.00x; bf16 vs HF bf16 2.50x; "
        "best vs best 2.50x (ours bf16 4,000 vs HF bf16 1,600 tokens/s)")
    # No peer measured: the ratios are not numbers, and say so.
    alone = [dict(rows[1], hf_step_s={})]
    assert train.format_summary("ELECTRA-Small", train.model_summary(alone, 4096)) == (
        "ELECTRA-Small, ours / HF tokens/s: best vs best - (ours bf16 4,000 vs HF not "
        "measured tokens/s)")


def test_training_notes_name_the_peer_only_when_it_ran(monkeypatch):
    rows = rows_of_given_numbers()
    with_peer = train.notes(rows)
    assert with_peer[0].startswith("HF: transformers ") and "masked positions" in with_peer[0]
    assert with_peer[1].endswith("busy = cores used by other processes meanwhile.")

    def absent(name):
        raise train.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(train.metadata, "version", absent)  # a machine without the peer
    alone = [dict(row, hf_step_s={}, busy=0.5 if i == 0 else row["busy"])
             for i, row in enumerate(rows)]
    assert train.notes(alone) == [
        "HF: not measured (--hf_precisions=none).",
        "MFU: train FLOPs per token (electra_tf.flops) x tokens/s / the fp32 and the bf16 "
        "matmul rate. busy = cores used by other processes meanwhile (max 0.50: timings "
        "perturbed)."]


def test_training_table_of_given_numbers():
    peaks = {"fp32": ("torch fp32", 400e3), "bf16": ("tensorflow bf16", 800e3)}
    lines = train.format_rows(rows_of_given_numbers(), peaks, 4096)
    assert lines[0].split() == ["model", "variant", "tokens/s", "HF", "fp32", "HF", "bf16",
                                "vs", "same", "vs", "best", "MFU", "fp32", "MFU", "bf16",
                                "step", "s", "warm-up", "s", "busy"]
    # MFU: 100 FLOPs per token x 2,000 tokens/s over 400 kFLOP/s, and over 800 kFLOP/s.
    assert lines[2].split() == ["ELECTRA-Small", "fp32", "2,000", "1,000", "2,000", "2.00x",
                                "1.00x", "50.0%", "25.0%", "2.05", "12.0", "0.01"]
    assert lines[3].split() == ["ELECTRA-Small", "bf16", "4,000", "1,000", "1,600", "2.50x",
                                "2.50x", "100.0%", "50.0%", "1.02", "20.0", "0.02"]
    assert lines[4].split() == ["ELECTRA-Small", "xla", "failed"]
    half = train.format_rows(rows_of_given_numbers()[:1], {}, 4096, "fp16", {"electra": "E"})
    assert "HF fp16" in half[0] and "MFU fp16" in half[0]
    assert half[2].split()[:7] == ["E", "fp32", "2,000", "1,000", "-", "2.00x", "1.00x"]


def test_inference_speedups_and_table_of_given_numbers():
    up = inference_latency.speedups({"fp32": 2000.0, "bf16": 1000.0},
                                    {"fp32": 3000.0, "bf16": 2500.0})
    assert up == {"fp32": 1.5, "bf16": 2.5, "best": 2.5, "ours_best": "bf16",
                  "hf_best": "bf16", "bf16_vs_hf_best": 2.5}
    # The peer faster in fp32 than in bf16: best against best crosses precisions.
    up = inference_latency.speedups({"fp32": 2000.0, "bf16": 1000.0},
                                    {"fp32": 1500.0, "bf16": 2500.0})
    assert (up["best"], up["hf_best"], up["bf16_vs_hf_best"]) == (1.5, "fp32", 1.5)
    assert math.isnan(inference_latency.speedups({"fp32": 2.0}, {"fp32": 3.0})[
        "bf16_vs_hf_best"])

    def side(ms):
        return {"runs_ms": [ms], "mean_ms": ms, "tokens_per_s": 16384 / ms * 1000}

    result = {"model": "ELECTRA-Small", "device": "CPU", "batch_size": 128, "seq_len": 128,
              "num_runs": 3, "warmup": 1, "busy": 0.02, "precisions": ["fp32", "bf16"],
              "ours": {"fp32": side(2048.0), "bf16": side(1024.0)},
              "hf": {"fp32": side(3072.0), "bf16": side(2048.0)},
              "speedup": inference_latency.speedups({"fp32": 2048.0, "bf16": 1024.0},
                                                    {"fp32": 3072.0, "bf16": 2048.0})}
    lines = inference_latency.format_comparison(result)
    assert lines[0] == ("ELECTRA-Small inference on CPU, batch 128 x seq 128, mean of 3 runs "
                        "after 1 warm-up, ours and transformers alternating (other processes "
                        "meanwhile: 0.02 cores):")
    assert lines[2].split() == ["fp32", "2,048.0", "3,072.0", "8,000", "5,333", "1.50x"]
    assert lines[3].split() == ["bf16", "1,024.0", "2,048.0", "16,000", "8,000", "2.00x"]
    assert lines[4].split() == ["best", "1,024.0", "(bf16)", "2,048.0", "(bf16)", "16,000",
                                "8,000", "2.00x"]
    assert len(lines) == 5  # no matmuls measured, no lines for them
    result["matmuls"] = {"ours": {"fp32": 1536.0, "bf16": 256.0},
                         "hf": {"fp32": 1024.0, "bf16": 512.0}}
    lines = inference_latency.format_comparison(result)
    assert lines[5:] == [
        "matmuls alone, fp32: ours 1,536.0 ms (75.0% of the pass), HF 1,024.0 ms (33.3%)",
        "matmuls alone, bf16: ours 256.0 ms (25.0% of the pass), HF 512.0 ms (25.0%)"]
    # 2x the peer's best (bf16, 2,048 ms) allows 1,024 ms; our bf16 matmuls take 25% of it.
    assert inference_latency.target_bound(result) == (1024.0, 0.25)


def test_training_matmul_lines_of_given_numbers():
    rows = rows_of_given_numbers()
    rows[0].update(matmul_s=1.024, hf_matmul_s={"fp32": 2.048, "bf16": 0.512})
    rows[1].update(matmul_s=0.256, hf_matmul_s={"fp32": 2.048, "bf16": 0.512},
                   matmul_flops_per_token=120e6, flops_per_token=100e6)
    peaks = {"fp32": ("torch fp32", 400e3), "bf16": ("torch bf16", 1600e9)}
    # At most: 100 FLOPs per token x 4,096 tokens / 1.024 s over 400 kFLOP/s = 100%, and
    # 100 MFLOP x 4,096 / 0.256 s over 1,600 GFLOP/s = 100%; the products, 120 MFLOP per
    # token x 4,000 tokens/s over 1,600 GFLOP/s: 30%.
    assert train.matmul_lines(rows, 4096, peaks) == [
        "ELECTRA-Small fp32: ours 1,024 ms (50.0% of our step; MFU fp32 at most 100.0%); "
        "HF fp32 2,048 ms (50.0% of its step); HF bf16 512 ms (25.0% of its step)",
        "ELECTRA-Small bf16: ours 256 ms (25.0% of our step; MFU bf16 at most 100.0%); "
        "HF fp32 2,048 ms (50.0% of its step); HF bf16 512 ms (20.0% of its step)",
        "  its products 120.0 MFLOP per token (the original's accounting 100.0), run at "
        "30.0% of the bf16 rate"]


# ------------------------------------------------------------------- the matmuls alone


def test_matmul_products_are_the_encoders_and_the_pretraining_steps():
    from electra_tf.configs import get_config

    small = get_config("electra", "small")
    products = matmul_floor.inference_products(small, batch=128, seq=128)
    # Per token: the 128 -> 256 embedding projection, then per layer q/k/v (3 x 256 x
    # 256), scores and weighted values (2 x 128 positions x 256), the attention output
    # (256 x 256) and the feed-forward denses (2 x 256 x 1024); 2 FLOPs per multiply-add.
    per_token = 2 * (128 * 256 + 12 * (3 * 256 * 256 + 2 * 128 * 256 + 256 * 256
                                       + 2 * 256 * 1024))
    assert matmul_floor.flops(products) == per_token * 128 * 128 == 336_081_190_912
    product = matmul_floor.Product
    assert products == [
        product(0, 16384, 128, 256), product(0, 16384, 256, 768, count=12),
        product(512, 128, 64, 128, transpose_b=True, count=12),  # 128 x 4 heads of 64
        product(512, 128, 128, 64, count=12), product(0, 16384, 256, 256, count=12),
        product(0, 16384, 256, 1024, count=12), product(0, 16384, 1024, 256, count=12)]
    # A step: forward + both backward products, generator (64 wide, 1 head, its MLM head
    # on the 608 masked positions against the 30,522 x 128 table) and discriminator
    # (with its per-token head: a 256 x 256 dense and one logit).
    step = matmul_floor.pretraining_products(small, batch=32, seq=128, predictions=608)
    generator = 2 * (128 * 64 + 12 * (3 * 64 * 64 + 2 * 128 * 64 + 64 * 64 + 2 * 64 * 256))
    discriminator = per_token + 2 * (256 * 256 + 256)
    head = 2 * 608 * (64 * 128 + 128 * 30522)
    assert matmul_floor.flops(step) == 3 * ((generator + discriminator) * 32 * 128 + head)
    bert = matmul_floor.pretraining_products(get_config("bert", "small"), 32, 128, 608)
    assert matmul_floor.flops(bert) == 3 * (per_token * 32 * 128
                                            + 2 * 608 * (256 * 128 + 128 * 30522))
    assert sum(matmul_floor.merged(step).values()) == sum(p.count for p in step)
    # Ours computes the MLM logits in float32, their two gradients in the pass's precision.
    ours = matmul_floor.pretraining_products(small, 32, 128, 608, logits_fp32=True)
    assert [p for p in ours if p.fp32] == [
        product(0, 608, 128, 30522, transpose_b=True, fp32=True)]
    assert [p._replace(fp32=False) for p in ours] == step


@pytest.mark.parametrize("product", [
    matmul_floor.Product(0, 4, 3, 5), matmul_floor.Product(0, 4, 3, 5, transpose_b=True),
    matmul_floor.Product(2, 4, 3, 5, transpose_b=True), matmul_floor.Product(2, 4, 3, 5)])
def test_backward_products_are_the_gradients_of_the_product(product):
    import numpy as np
    import tensorflow as tf

    shape = matmul_floor._shape
    rng = np.random.default_rng(0)
    left, right = (tf.constant(rng.standard_normal(shape(product, side)), tf.float64)
                   for side in (True, False))

    def run(p, a, b):
        return tf.linalg.matmul(a, b, transpose_a=p.transpose_a, transpose_b=p.transpose_b)

    with tf.GradientTape() as tape:
        tape.watch([left, right])
        out = run(product, left, right)
        upstream = tf.constant(rng.standard_normal(out.shape), tf.float64)
        loss = tf.reduce_sum(out * upstream)
    d_left, d_right = tape.gradient(loss, [left, right])
    back_left, back_right = matmul_floor.backward(product)
    assert shape(back_left, True) == upstream.shape and shape(back_left, False) == right.shape
    np.testing.assert_allclose(run(back_left, upstream, right), d_left, rtol=1e-12)
    # d(right) in its stored layout: left^T @ d(out), or d(out)^T @ left when transposed.
    a, b = (upstream, left) if product.transpose_b else (left, upstream)
    assert (shape(back_right, True), shape(back_right, False)) == (a.shape, b.shape)
    np.testing.assert_allclose(run(back_right, a, b), d_right, rtol=1e-12)
    assert matmul_floor.flops(matmul_floor.training([product])) == 3 * matmul_floor.flops(
        [product])
    with pytest.raises(ValueError, match="transposed left operand"):
        matmul_floor.backward(product._replace(transpose_a=True))


@pytest.mark.parametrize("timer", ["time_tensorflow", "time_torch"])
def test_matmuls_alone_are_timed_per_distinct_product_and_counted(timer, monkeypatch):
    products = [matmul_floor.Product(0, 64, 32, 48, count=3),
                matmul_floor.Product(4, 16, 8, 16, transpose_b=True),
                matmul_floor.Product(0, 64, 32, 48, count=2),
                matmul_floor.Product(0, 8, 32, 48, fp32=True)]
    assert matmul_floor.merged(products) == {
        matmul_floor.Product(0, 64, 32, 48): 5,
        matmul_floor.Product(4, 16, 8, 16, False, True): 1,
        matmul_floor.Product(0, 8, 32, 48, fp32=True): 1}
    runs = []

    def seconds(run):  # each round runs its products for real, and "takes" 8 ms
        runs.append(run())
        return 0.008

    monkeypatch.setattr(matmul_floor, "_seconds", seconds)
    for precision in ("fp32", "bf16"):
        runs.clear()
        # 3 distinct products, 2 rounds each; per product 8 ms / 4 in a chain x its count.
        total = getattr(matmul_floor, timer)(products, precision, chain=4, rounds=2)
        assert total == pytest.approx(0.002 * (5 + 1 + 1))
        assert len(runs) == 6 and all(math.isfinite(r) for r in runs)


def test_onednn_version_from_its_banners():
    assert matmul_floor.onednn_version(
        "I0000 port.cc\nonednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)\n") == "3.7.3"
    assert matmul_floor.onednn_version(
        "  - Intel(R) MKL-DNN v3.12.0 (Git Hash 80afa71049cd)") == "3.12.0"
    assert matmul_floor.onednn_version("no oneDNN here") is None


def test_gpu_helpers_of_given_values():
    assert gpu.json_safe({"a": NAN, "b": [1.5, float("inf")], 3: {"c": None}}) == {
        "a": None, "b": [1.5, None], "3": {"c": None}}
    assert gpu.format_flops(2.5e14) == "250.0 TFLOP/s"
    assert gpu.format_flops(5.57e11) == "557.0 GFLOP/s"
    tf_info = {"version": "2.21.0", "built_with_cuda": True, "gpus": []}
    torch_info = {"torch": "2.13.0+cpu", "cuda_available": False, "cuda_version": None}
    assert gpu.no_gpu_reason(tf_info, torch_info) == (
        "no GPU: TensorFlow 2.21.0 sees none (built with CUDA: yes); torch 2.13.0+cpu sees "
        "none (CUDA available: False, a CPU-only build)")
    torch_info = {"torch": "2.13.0", "cuda_available": True, "device": "NVIDIA A100"}
    assert gpu.no_gpu_reason(tf_info, torch_info).endswith("torch 2.13.0 sees NVIDIA A100")
    assert gpu.half_precision({"compute_capability": (8, 0)}, False) == "bf16"
    assert gpu.half_precision({"compute_capability": (7, 5)}, False) == "fp16"
    assert gpu.half_precision({}, True) == "bf16"
    no_gpu, measured = {"gpu": None}, {"gpu": {"name": "NVIDIA A100"}}
    assert [gpu.exit_status(no_gpu, False), gpu.exit_status(no_gpu, True)] == [0, 1]
    assert [gpu.exit_status(measured, False), gpu.exit_status(measured, True)] == [0, 0]


def test_synthetic_batch_at_any_length():
    batch = train.synthetic_batch(3, 30522, seed=0, seq_len=16)
    assert batch["input_ids"].shape == (3, 16) and batch["masked_lm_positions"].shape == (3, 2)
    assert (batch["input_ids"][:, 0] == train.CLS).all()
    assert (batch["input_ids"][:, -1] == train.SEP).all()


# ---------------------------------------------------------------- the scripts themselves


def test_gpu_benchmark_without_a_gpu_says_so_in_one_line_and_writes_the_json(tmp_path):
    # With --require_gpu: exit status 1 (without it 0: exit_status, tested above).
    out = tmp_path / "gpu.json"
    hidden = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU for TensorFlow or torch, on any machine
    done = run_script("gpu.py", f"--output_json={out}", "--require_gpu", **hidden)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        f"gpu.py: {json.loads(out.read_text())['reason']}; nothing measured; wrote {out}"]
    result = json.loads(out.read_text())
    assert result["gpu"] is None
    assert result["reason"].startswith("no GPU: TensorFlow ")
    assert "torch " in result["reason"] and "sees none" in result["reason"]
    assert result["tensorflow"]["gpus"] == [] and result["torch"]["cuda_available"] is False
    assert set(result["versions"]) == {"tensorflow", "keras", "torch", "transformers"}
    assert "training" not in result and "inference" not in result


def test_gpu_benchmark_code_path_forced_onto_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = run_script("gpu.py", f"--output_json={out}", "--force_cpu", "--size=debug",
                      "--train_batch_size=2", "--infer_batch_size=2", "--seq_len=16",
                      "--steps=1", "--warmup_steps=1", "--num_runs=1", "--warmup=0",
                      "--matmul_size=32", "--variants=bf16", "--precisions=bf16")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "FAILED" not in done.stdout, done.stdout
    result = json.loads(out.read_text())
    assert result["gpu"]["name"] == "CPU (--force_cpu)" and result["device"] == "CPU"
    assert result["variants"] == ["bf16"] and result["precisions"] == ["bf16"]
    assert set(result["matmul"]["rates"]) == {"tensorflow fp32", "tensorflow bf16",
                                              "torch fp32", "torch bf16"}
    assert all(rate > 0 for rate in result["matmul"]["rates"].values())
    row, = result["training"]["rows"]
    assert (row["variant"], row["precision"]) == ("bf16", "bf16")
    assert row["tokens_per_s"] > 0 and row["hf_tokens_per_s"]["bf16"] > 0
    assert row["ratios"]["same"] > 0 and row["ratios"]["peer_best"] == "bf16"
    assert row["mfu"]["bf16"] > 0 and row["mfu"]["fp32"] > 0
    assert result["training"]["summary"]["best"]["ratio"] == row["ratios"]["best"]
    inference = result["inference"]
    assert inference["model"] == "ELECTRA-Debug" and inference["batch_size"] == 2
    assert inference["ours"]["bf16"]["mean_ms"] > 0 and inference["hf"]["bf16"]["mean_ms"] > 0
    assert inference["speedup"]["best"] > 0 and inference["speedup"]["hf_best"] == "bf16"
    assert inference["max_abs_diff"] < 1e-4  # the same weights on both sides
    assert inference["mfu"]["ours"]["bf16"]["bf16"] > 0
    assert inference["matmuls"]["ours"]["bf16"] > 0 and inference["matmuls"]["hf"]["bf16"] > 0
    assert row["matmul_s"] > 0 and row["hf_matmul_s"]["bf16"] > 0
    assert "matmuls alone, bf16: ours " in done.stdout
    assert "best vs best" in done.stdout and "vs same" in done.stdout


@pytest.mark.parametrize("script, args, message", [
    ("gpu.py", ["--variants=fp32,fp64"], "gpu.py: error: --variants=fp32,fp64: allowed: "),
    ("gpu.py", ["--precisions=int8"], "gpu.py: error: --precisions=int8: allowed: "),
    ("gpu.py", ["--force_cpu", "--precisions=fp16"], "gpu.py: error: --force_cpu: fp16"),
    ("pretrain_throughput.py", ["--variants=fp64"],
     "pretrain_throughput.py: error: unknown or empty --models/--variants/--hf_precisions: "
     "['fp64']"),
])
def test_bad_flags_are_one_line(script, args, message):
    done = run_script(script, *args, timeout=120)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith(message), done.stderr
    assert "Traceback" not in done.stderr
