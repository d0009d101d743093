"""Real crashes: each stage's command SIGKILLed the moment a file of its work appears
(tests/crash.py), then run again to the end and compared with an uninterrupted run:
the same bytes where the stage is deterministic (pretraining TFRecords with one and two
workers, vocab.txt, the TLM index's manifest and documents, the retrieved set), the same
steps, FLOPs and settings where it is not (TLM stage 1, finetuning). Right after a kill
only files named as a write in progress may be there besides whole ones; after the
re-run none is left.

A kill lands some milliseconds after its trigger, or later on a loaded machine, so the
checks hold wherever the command then was: they ask what was on disk, not how far the
command had got. Inputs are the real samples; models are debug-sized and run a few
dozen steps. A command's start (TensorFlow's import) costs seconds, so the re-runs and
the reference runs are the library calls the commands make, in this process."""

import filecmp
import json
import os
import re

import numpy as np
import pytest
from crash import cut_json, final_files, kill_when, temporaries
from review_task import write_review_task

from data_prep import build_pretraining_dataset as bpd
from data_prep import samples
from data_prep.build_vocab import build_vocab_file
from electra_tf.finetuning.config import FinetuningConfig
from electra_tf.finetuning.trainer import finetune
from electra_tf.study.config import StudyConfig
from electra_tf.study.runner import run_study
from electra_tf.tlm import retrieval
from electra_tf.tlm.config import TlmConfig
from electra_tf.tlm.data import is_task_step
from electra_tf.tlm.trainer import run_tlm
from electra_tf.tokenization import load_vocab

SEED = 3
SHARDS = 6
SEQ = 128


def _flag(name, value):
    if isinstance(value, list):
        value = ",".join(map(str, value))
    return f"--{name}={value}"


def _checkpoint_steps(folder):
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(int(m.group(1)) for m in (re.fullmatch(r"model\.ckpt-(\d+)\.index", n)
                                            for n in names) if m)


# ----------------------------------------------------------------------------- data prep

@pytest.fixture(scope="module")
def shard_reference(sample_paths, tmp_path_factory):
    """The uninterrupted build the killed ones are compared with: all 42 plays, so that
    writing the shards lasts long enough to be killed in."""
    corpus = f"books:{sample_paths['shakespeare']}"
    out = str(tmp_path_factory.mktemp("reference_shards"))
    summary = bpd.build_dataset([corpus], sample_paths["vocab"], out, SEQ, SHARDS, seed=SEED,
                                progress=False)
    return corpus, out, summary


def _builder_args(corpus, vocab, out, processes):
    return [f"--corpus={corpus}", f"--vocab_file={vocab}", f"--output_dir={out}",
            f"--max_seq_length={SEQ}", f"--num_shards={SHARDS}",
            f"--num_processes={processes}", f"--seed={SEED}"]


def _shards(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("pretrain_data.tfrecord-"))


def _differing(out, reference, names):
    return [n for n in names
            if not filecmp.cmp(os.path.join(out, n), os.path.join(reference, n), False)]


def _check_killed_build(out, reference, expected):
    """Right after the kill: each shard under its final name is whole (the reference's
    bytes), a summary only beside all shards; the rest is named as work in progress
    (the ".work" folder's JSON whole). Returns the shards kept and their mtimes."""
    kept = _shards(out)
    assert _differing(out, reference, kept) == [], "a shard under its final name is cut"
    finished = os.path.exists(os.path.join(out, "summary.json"))
    assert set(final_files(out)) == set(kept) | ({"summary.json"} if finished else set())
    if finished:
        assert len(kept) == SHARDS and bpd.read_state(os.path.join(out, "summary.json")) \
            == expected
    for name in temporaries(out):  # the build's own records, read by the re-run
        if name.startswith(".work/") and name.endswith(".json"):
            bpd.read_state(os.path.join(out, name))
    return {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in kept}


def _check_resumed_build(out, reference, kept):
    assert _shards(out) == [bpd.shard_name(k, SHARDS) for k in range(SHARDS)]
    assert _differing(out, reference, _shards(out)) == []
    assert {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in kept} == kept
    assert temporaries(out) == [] and final_files(out) == [*_shards(out), "summary.json"]


def test_data_prep_one_worker_killed_after_its_first_shard(shard_reference, sample_paths,
                                                          tmp_path, fault_report):
    corpus, reference, expected = shard_reference
    out = str(tmp_path / "shards")
    killed = kill_when("data_prep.build_pretraining_dataset",
                       _builder_args(corpus, sample_paths["vocab"], out, 1), out,
                       appears=f"pretrain_data.tfrecord-*-of-{SHARDS}")
    kept = _check_killed_build(out, reference, expected)
    partial = [n for n in temporaries(out) if n.startswith(".tmp-pretrain_data")]
    assert kept

    summary = bpd.build_dataset([corpus], sample_paths["vocab"], out, SEQ, SHARDS,
                                seed=SEED, progress=False)
    assert summary == expected
    _check_resumed_build(out, reference, kept)
    fault_report("data prep, 1 worker", "SIGKILL when the first shard was renamed into place "
                 f"({killed.seconds:.1f} s in)",
                 f"{len(kept)}/{SHARDS} shards kept, {len(partial)} partial under a temp "
                 f"name; re-run wrote {SHARDS - len(kept)}; bytes identical",
                 "the re-run's normal summary; no leftover files")


def test_data_prep_two_workers_killed_while_writing_shards(shard_reference, sample_paths,
                                                          tmp_path, fault_report):
    """The command alone is killed, as the OOM killer would: its two workers must die
    with it (kill_when fails otherwise), or they would go on writing into the files
    the re-run writes."""
    corpus, reference, expected = shard_reference
    out = str(tmp_path / "shards")
    killed = kill_when("data_prep.build_pretraining_dataset",
                       _builder_args(corpus, sample_paths["vocab"], out, 2), out,
                       appears=".tmp-pretrain_data.tfrecord-*")
    kept = _check_killed_build(out, reference, expected)
    partial = [n for n in temporaries(out) if n.startswith(".tmp-pretrain_data")]

    # One process is enough here: the shards' bytes do not depend on the process count.
    summary = bpd.build_dataset([corpus], sample_paths["vocab"], out, SEQ, SHARDS,
                                seed=SEED, progress=False)
    assert summary == expected
    _check_resumed_build(out, reference, kept)
    fault_report("data prep, 2 workers", "SIGKILL of the command (not its workers) when "
                 f"the first shard's temp file appeared ({killed.seconds:.1f} s in)",
                 f"workers died with it, nothing written after; {len(kept)}/{SHARDS} shards "
                 f"kept, {len(partial)} partial under temp names; re-run wrote "
                 f"{SHARDS - len(kept)}; bytes identical",
                 "the re-run's normal summary; no leftover files")


# ----------------------------------------------------------------------------- vocab

def test_vocab_build_killed_while_learning_leaves_nothing(two_books, tmp_path, fault_report):
    """The vocab is learned in one go, nothing on disk until it is written: the kill
    comes when the command starts reading the corpus (its progress line); the re-run
    starts over."""
    output = tmp_path / "vocab" / "vocab.txt"
    corpus = f"books:{two_books}"
    args = [f"--corpus={corpus}", "--vocab_size=1000", "--max_sentences=1000",
            f"--output={output}"]
    killed = kill_when("data_prep.build_vocab", args, str(tmp_path), printed="reading:")
    reference = tmp_path / "reference.txt"
    build_vocab_file([corpus], str(reference), 1000, max_sentences=1000, progress=False)
    written = output.exists()  # only if the kill came after the whole write
    assert not written or output.read_bytes() == reference.read_bytes()
    assert temporaries(str(tmp_path)) == []

    build_vocab_file([corpus], str(output), 1000, max_sentences=1000, progress=False)
    assert output.read_bytes() == reference.read_bytes()
    assert os.listdir(output.parent) == ["vocab.txt"]
    fault_report("vocab", f"SIGKILL while reading and learning ({killed.seconds:.1f} s in)",
                 f"{'a whole' if written else 'no'} vocab.txt, no temp file; the re-run's "
                 f"{output.stat().st_size:,} bytes identical to an uninterrupted run's",
                 "nothing half-written; the re-run's normal summary")


# ----------------------------------------------------------------------------- TLM

TLM = dict(model_name="crashed", task_name="sst2_mr", runs=["tlm"],
           stages=["index", "retrieve", "stage1"], top_k=5, model_size="debug",
           max_seq_length=32, train_batch_size=8, external_ratio=2, mlm_weight=4.0,
           learning_rate=3e-4, num_train_steps=40, save_checkpoints_steps=5,
           log_every_steps=5, seed=SEED)


def _manifest(index_dir):
    with open(os.path.join(index_dir, "tlm_index.json")) as f:
        manifest = json.load(f)
    manifest.pop("build_seconds")  # the one entry that differs between two builds
    return manifest


def _stored(index_dir):
    with retrieval.WhooshRetriever(index_dir) as retriever:
        return sorted(retriever.documents())


def test_tlm_killed_while_indexing_then_in_stage_1(sample_paths, tmp_path, capsys,
                                                   fault_report):
    """One command (index, retrieve, stage 1) killed twice: while the index is built,
    then at stage 1's first checkpoint; the third run finishes. The corpus is the news
    sample three times over, so that indexing lasts long enough to be killed in."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_review_task(data_dir, np.random.default_rng(0))
    (data_dir / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    with open(samples.path("news"), "rb") as f:
        (data_dir / "corpus.txt").write_bytes(f.read() * 3)
    values = dict(TLM, data_dir=str(data_dir), corpus=[f"text:{data_dir / 'corpus.txt'}"])
    config = TlmConfig(**values)
    args = [_flag(k, v) for k, v in values.items()] + ["--noprogress"]
    index, partial = config.index_path, config.index_path + ".partial"
    stage1 = config.stage_dir("tlm", 1)
    retrieved = config.retrieved_path("tlm")

    indexing = kill_when("electra_tf.run_tlm", args, str(data_dir), appears="tlm_index.partial")
    # Either the build was cut (then nothing is under the index's name) or it was done.
    cut = os.path.isdir(partial)
    assert cut != os.path.exists(os.path.join(index, "tlm_index.json"))
    assert cut or not os.path.exists(index)
    assert cut_json(str(data_dir)) == []

    training = kill_when("electra_tf.run_tlm", args, str(data_dir),
                         appears="models/crashed/tlm/stage1/model.ckpt-*.index")
    assert not cut or "left by an interrupted build" in training.output
    reference = TlmConfig(**dict(values, model_name="reference",
                                 index_dir=str(tmp_path / "reference_index"),
                                 stages=["index", "retrieve"]))
    run_tlm(reference, progress=False)
    assert _manifest(index) == _manifest(reference.index_path)
    assert not os.path.exists(partial)
    for suffix in ("", ".stats.json"):  # written whole before stage 1 began
        assert filecmp.cmp(retrieved + suffix, reference.retrieved_path("tlm") + suffix,
                           False)
    killed_at = _checkpoint_steps(stage1)[-1]
    done = os.path.exists(os.path.join(stage1, "summary.json"))  # killed after stage 1
    assert 5 <= killed_at <= 40 and (killed_at == 40 or not done)
    assert cut_json(str(data_dir)) == []
    retrieved_mtime = os.stat(retrieved).st_mtime_ns

    capsys.readouterr()
    results = run_tlm(config, progress=True)
    shown = capsys.readouterr().err
    summary = results["runs"]["tlm"]["stage1"]
    vocab_size = len(load_vocab(sample_paths["vocab"]))
    per_step = config.stage1_flops_per_step(config.model_config(vocab_size))
    external = len(retrieval.read_retrieved(retrieved).entries)
    assert summary["resumed_from_step"] == (0 if done else killed_at)
    assert done or "tlm stage 1:" in shown and f"| {killed_at}/40 [" in shown
    assert summary["steps"] == 40 and summary["flops"] == pytest.approx(40 * per_step)
    assert summary["task_batches"] == sum(is_task_step(s, 2) for s in range(40))
    assert summary["external_documents"] == external
    with open(os.path.join(config.model_dir, "tlm_config.json")) as f:
        assert f.read() == config.to_json() + "\n"
    assert _stored(index) == _stored(reference.index_path)
    assert os.stat(retrieved).st_mtime_ns == retrieved_mtime  # read back, not redone
    assert temporaries(str(data_dir)) == []
    fault_report("TLM index", f"SIGKILL while indexing the corpus ({indexing.seconds:.1f} s "
                 "in)", ("nothing under the index's name, only tlm_index.partial; the re-run "
                         "removed it and rebuilt" if cut else "the kill came after the "
                         "build: index whole") + "; manifest and documents identical",
                 "a warning naming the removed tlm_index.partial" if cut else "nothing")
    fault_report("TLM retrieval + stage 1", "SIGKILL at stage 1's first checkpoint "
                 f"({training.seconds:.1f} s in)",
                 f"retrieved set ({external} documents) byte-identical and reused; stage 1 "
                 f"resumed at step {killed_at}, ended at 40/40 with the uninterrupted FLOPs",
                 f"the re-run's stage-1 bar starting at {killed_at}/40")


# ----------------------------------------------------------------------------- finetuning

def test_finetuning_killed_after_its_first_epoch(sample_paths, tmp_path, capsys,
                                                 fault_report):
    """Six epochs from scratch on the movie-review task, killed at the first epoch's
    checkpoint: the re-run goes on from the newest checkpoint, never an epoch twice."""
    write_review_task(tmp_path, np.random.default_rng(1))
    (tmp_path / "vocab.txt").write_bytes(open(sample_paths["vocab"], "rb").read())
    values = dict(data_dir=str(tmp_path), model_name="crashed", from_scratch=True,
                  model_size="debug", task_names=["sst2_mr"], num_train_epochs=6,
                  train_batch_size=16, max_seq_length=24, learning_rate=2e-3, seed=1)
    config = FinetuningConfig(**values)
    trial = os.path.join(config.run_dir, "trial_0")
    killed = kill_when("electra_tf.run_finetuning",
                       [_flag(k, v) for k, v in values.items()] + ["--noprogress"],
                       str(tmp_path), appears="models/crashed/**/trial_0/model.ckpt-*.index")
    killed_at = _checkpoint_steps(trial)[-1]
    done = os.path.exists(os.path.join(trial, "results.json"))  # killed after the trial
    assert 4 <= killed_at <= 24 and (killed_at == 24 or not done)
    assert cut_json(str(tmp_path)) == []

    capsys.readouterr()
    results = finetune(config, progress=False)
    shown = re.findall(r"^epoch (\d+) \(step", capsys.readouterr().out, re.M)
    history = results["trials"][0]["history"]
    assert results["trials"][0]["steps"] == 24  # 6 epochs of 64 examples in 16s
    assert [(h["epoch"], h["step"]) for h in history] == [(e, 4 * e) for e in range(1, 7)]
    assert sum(h.get("best", False) for h in history) == 1
    assert shown == [str(e) for e in range(killed_at // 4 + 1, 7)]  # no epoch twice
    assert results["config"] == config.to_dict()
    with open(os.path.join(config.run_dir, "finetuning_config.json")) as f:
        assert f.read() == config.to_json() + "\n"
    assert temporaries(str(tmp_path)) == []
    fault_report("finetuning", f"SIGKILL at the first epoch's checkpoint "
                 f"({killed.seconds:.1f} s in)",
                 f"resumed at step {killed_at}; 24/24 steps, epochs 1-6 in the history "
                 "once each, settings unchanged",
                 f"the re-run's dev lines from epoch {killed_at // 4 + 1} on")


# ----------------------------------------------------------------------------- the study

def test_study_killed_in_its_data_stage(shard_reference, sample_paths, tmp_path,
                                        fault_report):
    """The study's data stage (samples, vocab and task folders copied into its data
    dir, then the TFRecords), killed when its first shard is renamed into place: the
    re-run keeps what is done and ends with the shards of an uninterrupted build."""
    _, reference, expected = shard_reference
    samples_dir = os.path.dirname(sample_paths["vocab"])
    output_dir = str(tmp_path / "study")
    values = dict(output_dir=output_dir, samples_dir=samples_dir, corpora=["shakespeare"],
                  max_seq_length=SEQ, num_shards=SHARDS, data_seed=SEED, num_processes=1,
                  objectives=["electra"], model_size="debug", tasks=["sst2_mr"],
                  curve_tasks=[], tlm_task="", lstm_model="")
    config = StudyConfig(**values)
    records = config.tfrecords_dir
    killed = kill_when("electra_tf.run_study", [_flag(k, v) for k, v in values.items()]
                       + ["--stages=data", "--noprogress"], output_dir,
                       appears=f"pretrain_tfrecords/pretrain_data.tfrecord-*-of-{SHARDS}")
    counts = {k: expected[k] for k in ("documents", "sentences", "examples", "tokens",
                                       "shard_counts")}
    kept = _shards(records)
    assert kept and _differing(records, reference, kept) == []
    copied = [n for n in final_files(output_dir) if not n.startswith("pretrain_tfrecords/")]
    task = os.path.join(samples_dir, "finetuning_data", "sst2_mr")
    assert sorted(copied) == sorted(["study_config.json", "vocab.txt"] + [
        f"finetuning_data/sst2_mr/{n}" for n in os.listdir(task)])
    for name in copied:
        if name != "study_config.json":  # copies of the samples, whole
            assert filecmp.cmp(os.path.join(output_dir, name),
                               os.path.join(samples_dir, name), False), name
    assert cut_json(output_dir) == []
    mtimes = {n: os.stat(os.path.join(records, n)).st_mtime_ns for n in kept}

    run_study(config, ["data"], progress=False)
    summary = bpd.read_state(os.path.join(records, "summary.json"))
    assert {k: summary[k] for k in counts} == counts
    _check_resumed_build(records, reference, mtimes)
    with open(os.path.join(output_dir, "study_config.json")) as f:
        assert f.read() == config.to_json() + "\n"
    assert temporaries(output_dir) == []
    fault_report("study, data stage", "SIGKILL when the first shard was renamed into "
                 f"place ({killed.seconds:.1f} s in)",
                 f"vocab and task folders whole; {len(kept)}/{SHARDS} shards kept; re-run "
                 f"wrote {SHARDS - len(kept)}; bytes and counts as uninterrupted",
                 "the study's usual stage lines on the re-run")
