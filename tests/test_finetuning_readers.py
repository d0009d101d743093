"""Finetuning readers on files in the real GLUE, RACE and treebank layouts, and the samples."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from data_prep import samples
from electra_tf.tasks import readers
from electra_tf.tasks import specs as tasks
from electra_tf.tasks.readers import MultipleChoiceExample, PairExample, TaggedSentence


def write_task(root, folder, files):
    """Write ``finetuning_data/<folder>/<name>`` files from lists of rows (lists of fields)."""
    base = root / "finetuning_data" / folder
    base.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        (base / name).write_text("".join("\t".join(row) + "\n" for row in rows),
                                 encoding="utf-8")
    return base


MNLI_TRAIN_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                     "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
                     "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5",
                                            "gold_label"]
MNLI_TEST_HEADER = MNLI_TRAIN_HEADER[:10]


def mnli_row(i, a, b, *labels):
    return [str(i), "31193", "31193n", "government", f"( ( {a} ) )", f"( ( {b} ) )",
            f"(ROOT (S {a}))", f"(ROOT (S {b}))", a, b, *labels]


# Each task: (folder, files, expected examples per split). Folders mix the GLUE download's
# names and the original ELECTRA code's lower-case ones.
GLUE_CASES = {
    "cola": ("CoLA", {
        "train.tsv": [["gj04", "1", "", "Our friends won't buy this analysis."],
                      ["gj04", "0", "*", 'They drank the pub "dry.']],
        "dev.tsv": [["bc01", "1", "", "The sailors rode the breeze clear of the rocks."]],
        "test.tsv": [["index", "sentence"], ["0", "Bill whistled past the house."],
                     ["1", "The car honked its way down the road."]],
    }, {
        "train": [PairExample("train-0", "Our friends won't buy this analysis.", None, "1"),
                  PairExample("train-1", 'They drank the pub "dry.', None, "0")],
        "dev": [PairExample("dev-0", "The sailors rode the breeze clear of the rocks.", None,
                            "1")],
        "test": [PairExample("test-0", "Bill whistled past the house.", None, None),
                 PairExample("test-1", "The car honked its way down the road.", None, None)],
    }),
    "sst2": ("SST-2", {
        "train.tsv": [["sentence", "label"], ["hide new secretions from the parental units ",
                                              "0"],
                      ["that loves its characters ", "1"]],
        "dev.tsv": [["sentence", "label"], ["it 's a charming and often affecting journey . ",
                                            "1"]],
        "test.tsv": [["index", "sentence"], ["0", "uneasy mishmash of styles and genres ."]],
    }, {
        "train": [PairExample("train-0", "hide new secretions from the parental units ", None,
                              "0"),
                  PairExample("train-1", "that loves its characters ", None, "1")],
        "dev": [PairExample("dev-0", "it 's a charming and often affecting journey . ", None,
                            "1")],
        "test": [PairExample("test-0", "uneasy mishmash of styles and genres .", None, None)],
    }),
    "mrpc": ("mrpc", {
        "train.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                      ["1", "702876", "702977", 'Amrozi accused his brother , whom he called '
                       '" the witness " , of deliberately distorting his evidence .',
                       'Referring to him as only " the witness " , Amrozi accused his '
                       'brother of deliberately distorting his evidence .'],
                      ["0", "2108705", "2108831", "Yucaipa owned Dominick 's .",
                       "Yucaipa bought Dominick 's in 1995 ."]],
        "dev.tsv": [["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                    ["1", "1355540", "1355592", "He said the foodservice pie business .",
                     "The foodservice pie business did not fit ."]],
        "test.tsv": [["index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
                     ["0", "1089874", "1089925", "PCCW 's chief operating officer .",
                      "Current Chief Operating Officer Mike Butcher ."]],
    }, {
        "train": [PairExample("train-0", 'Amrozi accused his brother , whom he called " the '
                              'witness " , of deliberately distorting his evidence .',
                              'Referring to him as only " the witness " , Amrozi accused his '
                              'brother of deliberately distorting his evidence .', "1"),
                  PairExample("train-1", "Yucaipa owned Dominick 's .",
                              "Yucaipa bought Dominick 's in 1995 .", "0")],
        "dev": [PairExample("dev-0", "He said the foodservice pie business .",
                            "The foodservice pie business did not fit .", "1")],
        "test": [PairExample("test-0", "PCCW 's chief operating officer .",
                             "Current Chief Operating Officer Mike Butcher .", None)],
    }),
    "stsb": ("STS-B", {
        "train.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                       "sentence1", "sentence2", "score"],
                      ["0", "main-captions", "MSRvid", "2012test", "0001", "none", "none",
                       "A plane is taking off.", "An air plane is taking off.", "5.000"],
                      ["1", "main-captions", "MSRvid", "2012test", "0004", "none", "none",
                       "A man is playing a large flute.", "A man is playing a flute.",
                       "3.800"]],
        "dev.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                     "sentence1", "sentence2", "score"],
                    ["0", "main-captions", "MSRvid", "2012test", "0000", "none", "none",
                     "A man with a hard hat is dancing.", "A man wearing a hard hat is "
                     "dancing.", "5.000"]],
        "test.tsv": [["index", "genre", "filename", "year", "old_index", "source1", "source2",
                      "sentence1", "sentence2"],
                     ["0", "main-captions", "MSRvid", "2012test", "0024", "none", "none",
                      "A girl is styling her hair.", "A girl is brushing her hair."]],
    }, {
        "train": [PairExample("train-0", "A plane is taking off.", "An air plane is taking "
                              "off.", 5.0),
                  PairExample("train-1", "A man is playing a large flute.",
                              "A man is playing a flute.", 3.8)],
        "dev": [PairExample("dev-0", "A man with a hard hat is dancing.",
                            "A man wearing a hard hat is dancing.", 5.0)],
        "test": [PairExample("test-0", "A girl is styling her hair.",
                             "A girl is brushing her hair.", None)],
    }),
    "qqp": ("QQP", {
        "train.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                      ["133273", "213221", "213222", "How is the life of a math student?",
                       "Which level of prepration is enough for the exam jlpt5?", "0"],
                      # a question broken over two lines, as in the real file: skipped
                      ["201841", "303345", "303346", 'Why do "people'],
                      ['" ask questions?', "1"],
                      ["402555", "536040", "536041", "How do I control my horny emotions?",
                       "How do you control your horniness?", "1"]],
        "dev.tsv": [["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
                    ["40066", "67410", "67411", "What is the best self help book?",
                     "What are the best self help books?", "1"]],
        "test.tsv": [["id", "question1", "question2"],
                     ["0", "Why am I mentally very lonely?", "How can I solve it?"]],
    }, {
        "train": [PairExample("train-0", "How is the life of a math student?",
                              "Which level of prepration is enough for the exam jlpt5?", "0"),
                  PairExample("train-3", "How do I control my horny emotions?",
                              "How do you control your horniness?", "1")],
        "dev": [PairExample("dev-0", "What is the best self help book?",
                            "What are the best self help books?", "1")],
        "test": [PairExample("test-0", "Why am I mentally very lonely?",
                             "How can I solve it?", None)],
    }),
    "mnli": ("mnli", {
        "train.tsv": [MNLI_TRAIN_HEADER,
                      mnli_row(0, "Conceptually cream skimming has two basic dimensions.",
                               "Product and geography are what make cream skimming work. ",
                               "neutral", "neutral")],
        "dev_matched.tsv": [MNLI_DEV_HEADER,
                            mnli_row(0, "The new rights are nice enough",
                                     "Everyone really likes the newest benefits ", "neutral",
                                     "entailment", "neutral", "neutral", "neutral",
                                     "neutral")],
        "dev_mismatched.tsv": [MNLI_DEV_HEADER,
                               mnli_row(0, "Your contribution helped make it possible.",
                                        "Your contributions were of no help.", "contradiction",
                                        "contradiction", "contradiction", "contradiction",
                                        "contradiction", "contradiction")],
        "test_matched.tsv": [MNLI_TEST_HEADER, mnli_row(7, "Hierbas, ans seco.",
                                                        "Hierbas is a name.")],
        "test_mismatched.tsv": [MNLI_TEST_HEADER, mnli_row(3, "What have you decided?",
                                                           "What are you doing?")],
        "diagnostic.tsv": [["index", "sentence1", "sentence2"],
                           ["0", "The cat sat on the mat.", "The cat did not sit."]],
    }, {
        "train": [PairExample("train-0", "Conceptually cream skimming has two basic "
                              "dimensions.", "Product and geography are what make cream "
                              "skimming work. ", "neutral")],
        "dev": [PairExample("dev_matched-0", "The new rights are nice enough",
                            "Everyone really likes the newest benefits ", "neutral")],
        "dev_mismatched": [PairExample("dev_mismatched-0",
                                       "Your contribution helped make it possible.",
                                       "Your contributions were of no help.",
                                       "contradiction")],
        "test": [PairExample("test_matched-7", "Hierbas, ans seco.", "Hierbas is a name.",
                             None)],
        "test_mismatched": [PairExample("test_mismatched-3", "What have you decided?",
                                        "What are you doing?", None)],
        "diagnostic": [PairExample("diagnostic-0", "The cat sat on the mat.",
                                   "The cat did not sit.", None)],
    }),
    "qnli": ("QNLI", {
        "train.tsv": [["index", "question", "sentence", "label"],
                      ["0", "When did the third Digimon series begin?",
                       "Unlike the two seasons before it, Digimon Tamers takes a darker "
                       "approach.", "not_entailment"]],
        "dev.tsv": [["index", "question", "sentence", "label"],
                    ["0", "What came into force after the new constitution?",
                     "As of that day, the new constitution heralding the Second Republic "
                     "came into force.", "entailment"]],
        "test.tsv": [["index", "question", "sentence"],
                     ["0", "What organization is devoted to Jihad?",
                      "For some decades prior, the Muslim Brotherhood was devoted to it."]],
    }, {
        "train": [PairExample("train-0", "When did the third Digimon series begin?",
                              "Unlike the two seasons before it, Digimon Tamers takes a "
                              "darker approach.", "not_entailment")],
        "dev": [PairExample("dev-0", "What came into force after the new constitution?",
                            "As of that day, the new constitution heralding the Second "
                            "Republic came into force.", "entailment")],
        "test": [PairExample("test-0", "What organization is devoted to Jihad?",
                             "For some decades prior, the Muslim Brotherhood was devoted to "
                             "it.", None)],
    }),
    "rte": ("rte", {
        "train.tsv": [["index", "sentence1", "sentence2", "label"],
                      ["0", "No Weapons of Mass Destruction Found in Iraq Yet.",
                       "Weapons of Mass Destruction Found in Iraq.", "not_entailment"],
                      ["1", 'A place of sorrow, after Pope John Paul II died, became a place '
                       'of celebration, as Roman Catholic faithful gathered "in downtown '
                       'Chicago.', "Pope Benedict XVI is the new leader.", "entailment"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"],
                    ["0", "Dana Reeve died of lung cancer.", "Christopher Reeve had an "
                     "accident.", "not_entailment"]],
        "test.tsv": [["index", "sentence1", "sentence2"],
                     ["0", "Mangla was summoned after Madhumita's sister told police.",
                      "Shukla is accused of murder."]],
    }, {
        "train": [PairExample("train-0", "No Weapons of Mass Destruction Found in Iraq Yet.",
                              "Weapons of Mass Destruction Found in Iraq.", "not_entailment"),
                  PairExample("train-1", 'A place of sorrow, after Pope John Paul II died, '
                              'became a place of celebration, as Roman Catholic faithful '
                              'gathered "in downtown Chicago.',
                              "Pope Benedict XVI is the new leader.", "entailment")],
        "dev": [PairExample("dev-0", "Dana Reeve died of lung cancer.",
                            "Christopher Reeve had an accident.", "not_entailment")],
        "test": [PairExample("test-0", "Mangla was summoned after Madhumita's sister told "
                             "police.", "Shukla is accused of murder.", None)],
    }),
    "wnli": ("WNLI", {
        "train.tsv": [["index", "sentence1", "sentence2", "label"],
                      ["0", "I stuck a pin through a carrot. When I pulled the pin out, it "
                       "had a hole.", "The carrot had a hole.", "1"]],
        "dev.tsv": [["index", "sentence1", "sentence2", "label"],
                    ["0", "The drain is clogged with hair. It has to be cleaned.",
                     "The hair has to be cleaned.", "0"]],
        "test.tsv": [["index", "sentence1", "sentence2"],
                     ["0", "Maude and Dora had seen the trains rushing across the prairie.",
                      "Horses ran away when the trains came."]],
    }, {
        "train": [PairExample("train-0", "I stuck a pin through a carrot. When I pulled the "
                              "pin out, it had a hole.", "The carrot had a hole.", "1")],
        "dev": [PairExample("dev-0", "The drain is clogged with hair. It has to be cleaned.",
                            "The hair has to be cleaned.", "0")],
        "test": [PairExample("test-0", "Maude and Dora had seen the trains rushing across "
                             "the prairie.", "Horses ran away when the trains came.", None)],
    }),
}


@pytest.mark.parametrize("task", sorted(GLUE_CASES))
def test_glue_readers_parse_the_real_layouts(task, tmp_path):
    folder, files, expected = GLUE_CASES[task]
    write_task(tmp_path, folder, files)
    for split, examples in expected.items():
        assert readers.read_glue(task, str(tmp_path), split) == examples, split


def test_task_names_and_folder_names_of_both_conventions(tmp_path):
    assert readers.get_task("SST-2").name == readers.get_task("sst").name == "sst2"
    assert readers.get_task("STS-B").name == readers.get_task("sts").name == "stsb"
    rows = {"train.tsv": [["sentence", "label"], ["good", "1"]]}
    write_task(tmp_path, "sst", rows)  # the original ELECTRA code's folder name
    assert readers.read_glue("sst2", str(tmp_path), "train")[0].label == "1"
    write_task(tmp_path / "other", "sst-2", rows)
    assert readers.read_glue("SST-2", str(tmp_path / "other"), "train")[0].text_a == "good"
    assert readers.GLUE_TASKS["mnli"].resolve_split("dev") == "dev_matched"
    with pytest.raises(ValueError, match="unknown task 'sst3'"):
        readers.get_task("sst3")
    with pytest.raises(ValueError, match="unknown split 'validation' for task rte"):
        readers.read_glue("rte", str(tmp_path), "validation")
    with pytest.raises(FileNotFoundError, match="no data folder for task rte"):
        readers.read_glue("rte", str(tmp_path), "train")


def test_mnli_diagnostic_in_the_glue_download_folder(tmp_path):
    write_task(tmp_path, "MNLI", {"train.tsv": [MNLI_TRAIN_HEADER]})
    write_task(tmp_path, "diagnostic", {"diagnostic.tsv": [["index", "sentence1", "sentence2"],
                                                           ["4", "A", "B"]]})
    assert readers.read_glue("mnli", str(tmp_path), "diagnostic") == [
        PairExample("diagnostic-4", "A", "B", None)]


def test_qqp_train_skips_malformed_rows_counts_and_logs_them(tmp_path, caplog):
    folder, files, _ = GLUE_CASES["qqp"]
    write_task(tmp_path, folder, files)
    stats = {}
    with caplog.at_level(logging.WARNING):
        examples = readers.read_glue("qqp", str(tmp_path), "train", stats=stats)
    assert len(examples) == 2
    assert stats == {"skipped": 2, "skipped_lines": [3, 4]}
    assert "skipped 2 malformed row(s)" in caplog.text and "lines 3, 4" in caplog.text
    # Elsewhere a malformed row is an error, not a silent skip.
    write_task(tmp_path, folder, {"dev.tsv": files["train.tsv"]})
    with pytest.raises(ValueError, match=r"QQP/dev.tsv:3: expected 6 tab-separated fields "
                                         r"\(as the header\), got 4"):
        readers.read_glue("qqp", str(tmp_path), "dev")


def test_sample_tasks_from_the_movie_review_snippets():
    data_dir = os.path.dirname(samples.path("movie_reviews"))
    counts = {}
    for task in ("sst2_mr", "stsb_mr"):
        for split in ("train", "dev", "test"):
            counts[task, split] = len(readers.read_glue(task, data_dir, split))
    assert counts == {("sst2_mr", "train"): 8454, ("sst2_mr", "dev"): 1056,
                      ("sst2_mr", "test"): 1058, ("stsb_mr", "train"): 8484,
                      ("stsb_mr", "dev"): 1060, ("stsb_mr", "test"): 1061}
    train = readers.read_glue("sst2_mr", data_dir, "train")
    assert {e.label for e in train} == {"0", "1"} and train[0].text_b is None
    test = readers.read_glue("sst2_mr", data_dir, "test")
    assert test[5].guid == "test-5" and test[5].label is None  # unlabelled, index column
    assert test[0].text_a.startswith("The draw (for ''Big Bad Love'')")
    scores = [e.label for e in readers.read_glue("stsb_mr", data_dir, "test")]
    assert all(isinstance(s, float) for s in scores) and min(scores) < 0 < max(scores)
    # sst5_mr: every snippet (zeros are neutral), SST-5's classes from the valence
    rating = {split: readers.read_glue("sst5_mr", data_dir, split)
              for split in ("train", "dev", "test")}
    assert [len(rows) for rows in rating.values()] == [8484, 1060, 1061]
    valence = readers.read_glue("stsb_mr", data_dir, "train")  # same rows, same shuffle
    assert {e.label for e in rating["train"]} == {"0", "1", "2", "3", "4"}
    assert all(a.text_a == b.text_a and int(a.label) == samples.five_class_rating(b.label)
               for a, b in zip(rating["train"][:500], valence, strict=False))
    labelled = tasks.get_task("sst5_mr").read_labelled_test(data_dir)
    assert len(labelled) == 1061 and all(e.label in "01234" for e in labelled)


def test_wiki_topics_sample_task():
    # the leads' extractor writes the task: <samples_dir>/finetuning_data/wiki_topics
    data_dir = os.path.dirname(os.path.dirname(samples.path("wiki_leads")))
    split = {s: readers.read_glue("wiki_topics", data_dir, s) for s in ("train", "dev")}
    assert [len(rows) for rows in split.values()] == [7226, 903]  # 9,033 leads, 80/10/10
    assert {e.label for e in split["train"]} == set(readers.WIKI_TOPICS)
    assert split["train"][0].text_a.startswith("Nineteen Eighty-Four is a dystopian")
    labelled = tasks.get_task("wiki_topics").read_labelled_test(data_dir)
    assert len(labelled) == 904 and {e.label for e in labelled} <= set(readers.WIKI_TOPICS)
    assert tasks.get_task("wiki_topics").num_outputs == 11


# ----------------------------------------------------------------------------- tfds


def test_tfds_without_prepared_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"tfds dataset glue/cola \(split train\) is "
                                                r"not prepared in .*tfds build glue/cola"):
        readers.read_tfds_glue("cola", "train", data_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"race/high \(split dev\) is not prepared"):
        readers.read_tfds_race("dev", "high", data_dir=str(tmp_path))


def fake_tfds_load(records, calls):
    def load(name, split, data_dir=None, download=True):
        calls.append((name, split, data_dir, download))
        return tf.data.Dataset.from_tensor_slices(records)
    return load


def test_tfds_glue_fields_and_label_names(monkeypatch):
    import tensorflow_datasets as tfds

    calls = []
    monkeypatch.setattr(tfds, "load", fake_tfds_load(
        {"premise": [b"p0", b"p1", b"p2", b"p3"], "hypothesis": [b"h0", b"h1", b"h2", b"h3"],
         "label": np.array([0, 1, 2, -1]), "idx": np.array([0, 1, 2, 3], np.int32)}, calls))
    examples = readers.read_tfds_glue("mnli", "dev_mismatched", data_dir="/data/tfds")
    assert calls == [("glue/mnli", "validation_mismatched", "/data/tfds", False)]
    # tfds' MNLI ids are entailment, neutral, contradiction; the TSV label strings are used
    assert examples == [PairExample("dev_mismatched-0", "p0", "h0", "entailment"),
                        PairExample("dev_mismatched-1", "p1", "h1", "neutral"),
                        PairExample("dev_mismatched-2", "p2", "h2", "contradiction"),
                        PairExample("dev_mismatched-3", "p3", "h3", None)]

    monkeypatch.setattr(tfds, "load", fake_tfds_load(
        {"sentence": [b"a", b"b", "caf\u00e9".encode()], "label": np.array([1, 0, -1]),
         "idx": np.array([0, 1, 2], np.int32)}, calls))
    assert readers.read_tfds_glue("CoLA", "test") == [
        PairExample("test-0", "a", None, "1"), PairExample("test-1", "b", None, "0"),
        PairExample("test-2", "caf\u00e9", None, None)]
    assert calls[-1][:2] == ("glue/cola", "test")

    monkeypatch.setattr(tfds, "load", fake_tfds_load(
        {"sentence1": [b"a", b"c"], "sentence2": [b"b", b"d"],
         "label": np.array([3.8, -1.0], np.float32), "idx": np.array([5, 6], np.int32)}, calls))
    assert readers.read_tfds_glue("stsb", "dev") == [
        PairExample("dev-5", "a", "b", pytest.approx(3.8)), PairExample("dev-6", "c", "d", None)]
    assert calls[-1][:2] == ("glue/stsb", "validation")


def test_tfds_race_records(monkeypatch):
    import tensorflow_datasets as tfds

    calls = []
    monkeypatch.setattr(tfds, "load", fake_tfds_load({
        "article": [b"Tom has a cat."], "questions": [[b"Who has a cat?", b"What pet?"]],
        "options": [[[b"Tom", b"Ann", b"Bob", b"Sue"], [b"dog", b"cat", b"cow", b"pig"]]],
        "answers": [[b"A", b"B"]], "example_id": [b"middle7.txt"]}, calls))
    assert readers.read_tfds_race("train", "middle") == [
        MultipleChoiceExample("middle7.txt-0", "Tom has a cat.", "Who has a cat?",
                              ["Tom", "Ann", "Bob", "Sue"], 0, "middle"),
        MultipleChoiceExample("middle7.txt-1", "Tom has a cat.", "What pet?",
                              ["dog", "cat", "cow", "pig"], 1, "middle")]
    assert calls == [("race/middle", "train", None, False)]


# ----------------------------------------------------------------------------- RACE


def write_race(root, split, level, name, record):
    folder = root / split / level
    folder.mkdir(parents=True, exist_ok=True)
    text = record if isinstance(record, str) else json.dumps(record)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def test_race_reader(tmp_path):
    write_race(tmp_path, "dev", "middle", "2.txt", {
        "answers": ["C", "A"], "options": [["red", "blue", "green", "black"],
                                           ["yes", "no", "maybe", "never"]],
        "questions": ["The car is _ .", "Is it new?"], "article": "The green car is new.",
        "id": "middle2.txt"})
    write_race(tmp_path, "dev", "middle", "10.txt", {
        "answers": ["D"], "options": [["1", "2", "3", "4"]], "questions": ["How many?"],
        "article": "Four birds.", "id": "middle10.txt"})
    write_race(tmp_path, "dev", "high", "5.txt", {
        "answers": ["B"], "options": [["a", "b", "c", "d"]], "questions": ["Which?"],
        "article": "B it is.", "id": "high5.txt"})
    write_race(tmp_path, "test", "high", "1.txt", {  # unlabelled: no "answers"
        "options": [["a", "b", "c", "d"]], "questions": ["Which?"], "article": "?",
        "id": "high1.txt"})
    examples = readers.read_race(str(tmp_path), "dev")
    assert examples == [
        MultipleChoiceExample("middle10.txt-0", "Four birds.", "How many?",
                              ["1", "2", "3", "4"], 3, "middle"),
        MultipleChoiceExample("middle2.txt-0", "The green car is new.", "The car is _ .",
                              ["red", "blue", "green", "black"], 2, "middle"),
        MultipleChoiceExample("middle2.txt-1", "The green car is new.", "Is it new?",
                              ["yes", "no", "maybe", "never"], 0, "middle"),
        MultipleChoiceExample("high5.txt-0", "B it is.", "Which?", ["a", "b", "c", "d"], 1,
                              "high")]
    assert [e.level for e in readers.read_race(str(tmp_path), "dev", "high")] == ["high"]
    assert readers.read_race(str(tmp_path), "test", ("high",))[0].label is None
    with pytest.raises(FileNotFoundError, match="no RACE folder"):
        readers.read_race(str(tmp_path), "test")  # test/middle missing


# ----------------------------------------------------------------------------- POS

SLASH_TEXT = """Pierre/NNP Vinken/NNP ,/, 61/CD years/NNS old/JJ ./.

The/DT 1\\/2/CD point/NN rise/NN ./.
"""

CONLL_TEXT = """-DOCSTART- -X- O

Pierre\tNNP
Vinken\tNNP
,\t,

The\tDT
1/2\tCD


point\tNN
"""

# The treebank .pos layout (trailing spaces included, as in wsj_*.pos).
POS_TEXT = "\n".join([
    "",
    "[ Pierre/NNP Vinken/NNP ]",
    ",/, ",
    "[ 61/CD years/NNS ]",
    "old/JJ ./. ",
    "======================================",
    "",
    "[ Mr./NNP Vinken/NNP ]",
    "is/VBZ ",
    "[ chairman/NN ]",
    "./. It/PRP works/VBZ ?/. ",
    "[ 3\\/4/CD ]",
    "======================================",
    "[ Elsevier/NNP N.V./NNP ]",
    "said/VBD ",
    "[ the/DT end/NN ./. ]",
    "of/IN ",
    "[ it/PRP ]",
    "",
    "======================================",
]) + "\n"


def test_word_slash_tag_lines(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text(SLASH_TEXT)
    sentences = readers.read_tagged(str(path))
    assert sentences == [
        TaggedSentence("train-0", ["Pierre", "Vinken", ",", "61", "years", "old", "."],
                       ["NNP", "NNP", ",", "CD", "NNS", "JJ", "."]),
        TaggedSentence("train-1", ["The", "1/2", "point", "rise", "."],
                       ["DT", "CD", "NN", "NN", "."])]


def test_conll_columns(tmp_path):
    path = tmp_path / "dev.conll"
    path.write_text(CONLL_TEXT)
    assert readers.read_tagged(str(path)) == [
        TaggedSentence("dev-0", ["Pierre", "Vinken", ","], ["NNP", "NNP", ","]),
        TaggedSentence("dev-1", ["The", "1/2"], ["DT", "CD"]),
        TaggedSentence("dev-2", ["point"], ["NN"])]
    # CoNLL-2000 style: word, POS, chunk separated by spaces; the tag in column 1
    path.write_text("Confidence NN B-NP\nin IN B-PP\n\nthe DT B-NP\n")
    assert readers.read_tagged(str(path), fmt="conll", tag_column=1) == [
        TaggedSentence("dev-0", ["Confidence", "in"], ["NN", "IN"]),
        TaggedSentence("dev-1", ["the"], ["DT"])]
    assert readers.read_tagged(str(path), fmt="conll", tag_column=None)[1].tags is None


def test_nltk_treebank_pos_files(tmp_path):
    path = tmp_path / "wsj_0001.pos"
    path.write_text(POS_TEXT)
    sentences = readers.read_tagged(str(path))
    # Sentences end after a '.'-tagged token outside chunks and at each separator line.
    assert [(s.words, s.tags) for s in sentences] == [
        (["Pierre", "Vinken", ",", "61", "years", "old", "."],
         ["NNP", "NNP", ",", "CD", "NNS", "JJ", "."]),
        (["Mr.", "Vinken", "is", "chairman", "."], ["NNP", "NNP", "VBZ", "NN", "."]),
        (["It", "works", "?"], ["PRP", "VBZ", "."]),
        (["3/4"], ["CD"]),
        (["Elsevier", "N.V.", "said", "the", "end", ".", "of", "it"],
         ["NNP", "NNP", "VBD", "DT", "NN", ".", "IN", "PRP"])]
    assert sentences[0].guid == "wsj_0001-0"
    # The same content in a .txt file is recognised by its separators and chunks.
    other = tmp_path / "test.txt"
    other.write_text(POS_TEXT)
    assert [s.words for s in readers.read_tagged(str(other))] == [s.words for s in sentences]


def test_read_pos_picks_the_split_file(tmp_path):
    (tmp_path / "train.pos").write_text(POS_TEXT)
    (tmp_path / "dev.txt").write_text(SLASH_TEXT)
    assert len(readers.read_pos(str(tmp_path), "train")) == 5
    assert readers.read_pos(str(tmp_path), "dev")[1].words[1] == "1/2"
    with pytest.raises(FileNotFoundError, match=r"no test file in"):
        readers.read_pos(str(tmp_path), "test")
    (tmp_path / "dev.conll").write_text(CONLL_TEXT)
    with pytest.raises(ValueError, match=r"several dev files"):
        readers.read_pos(str(tmp_path), "dev")


def test_the_real_wsj_sample():
    folder = samples.path("wsj_pos")
    splits = {split: readers.read_pos(folder, split) for split in ("train", "dev", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 800, "dev": 100, "test": 101}
    assert {k: sum(len(s.words) for s in v) for k, v in splits.items()} == {
        "train": 19915, "dev": 2607, "test": 2504}
    assert splits["train"][0].words[:4] == ["Pierre", "Vinken", ",", "61"]
    assert splits["train"][0].tags[:4] == ["NNP", "NNP", ",", "CD"]
    # The split files are the raw word/TAG lines of the WSJ sample, in order.
    raw = readers.read_tagged(os.path.join(os.path.dirname(os.path.dirname(folder)),
                                           "wsj_pos", "tagged-en-wsj.txt"))
    assert len(raw) == 1001 and sum(len(s.words) for s in raw) == 25026
    assert len({tag for s in raw for tag in s.tags}) == 44
    joined = [(s.words, s.tags) for v in splits.values() for s in v]
    assert joined == [(s.words, s.tags) for s in raw]


def test_readers_read_remote_folders_as_local_ones(tmp_path):
    """GLUE (MNLI's diagnostic in the download's ../diagnostic/), RACE and POS folders on a
    non-local file system (ram://, as gs:// on a TPU) read exactly as the same local
    folders; a BOM and CRLF line endings are handled the same, errors name the ram:// file
    and line."""
    import uuid

    from electra_tf import files

    local = tmp_path / "data"
    for task in ("sst2", "qqp", "stsb"):
        folder, task_files, _ = GLUE_CASES[task]
        write_task(local, folder, task_files)
    write_task(local, "MNLI", {"train.tsv": [MNLI_TRAIN_HEADER]})
    write_task(local, "diagnostic", {"diagnostic.tsv": [["index", "sentence1", "sentence2"],
                                                        ["4", "A", "B"]]})
    rte = local / "finetuning_data" / "RTE"
    rte.mkdir()
    (rte / "train.tsv").write_bytes("\ufeffindex\tsentence1\tsentence2\tlabel\r\n"
                                    "0\tA dog.\tAn animal.\tentailment\r\n".encode())
    (rte / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tA\tB\tmaybe\n")
    race = local / "finetuning_data" / "race"
    write_race(race, "dev", "middle", "2.txt", {
        "answers": ["C"], "options": [["red", "blue", "green", "black"]],
        "questions": ["The car is _ ."], "article": "The green car.", "id": "m2"})
    write_race(race, "dev", "high", "5.txt", {
        "answers": ["B"], "options": [["a", "b", "c", "d"]], "questions": ["Which?"],
        "article": "B it is.", "id": "h5"})
    pos = local / "finetuning_data" / "pos"
    pos.mkdir()
    (pos / "train.pos").write_text(POS_TEXT)
    (pos / "dev.txt").write_bytes(SLASH_TEXT.replace("\n", "\r\n").encode())

    remote = f"ram://readers-{uuid.uuid4().hex}"
    files.copy_tree(str(local), remote)
    for root in (str(local), remote):
        assert files.isfile(files.join(root, "finetuning_data", "pos", "train.pos"))
    for task, split in [("sst2", "train"), ("sst2", "test"), ("qqp", "dev"), ("stsb", "dev"),
                        ("mnli", "diagnostic"), ("rte", "train")]:
        assert readers.read_glue(task, remote, split) == \
            readers.read_glue(task, str(local), split), (task, split)
    assert readers.read_glue("rte", remote, "train") == [
        PairExample("train-0", "A dog.", "An animal.", "entailment")]
    assert readers.glue_file("mnli", remote, "diagnostic") == \
        f"{remote}/finetuning_data/diagnostic/diagnostic.tsv"
    with pytest.raises(ValueError, match=rf"{remote}/finetuning_data/RTE/dev.tsv:2: label "
                                         r"'maybe'"):
        readers.read_glue("rte", remote, "dev")

    race_dir = files.join(remote, "finetuning_data", "race")
    assert readers.read_race(race_dir, "dev") == readers.read_race(str(race), "dev")
    assert [e.guid for e in readers.read_race(race_dir, "dev")] == ["m2-0", "h5-0"]
    with pytest.raises(FileNotFoundError, match=rf"no RACE folder {race_dir}/test/middle"):
        readers.read_race(race_dir, "test")

    pos_dir = files.join(remote, "finetuning_data", "pos")
    for split in ("train", "dev"):
        assert readers.read_pos(pos_dir, split) == readers.read_pos(str(pos), split)
    assert len(readers.read_pos(pos_dir, "train")) == 5
    assert readers.read_pos(pos_dir, "dev")[1].words == ["The", "1/2", "point", "rise", "."]
    with pytest.raises(FileNotFoundError, match=r"no test file in ram://"):
        readers.read_pos(pos_dir, "test")
