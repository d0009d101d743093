"""The docs' flag tables (electra_tf.flag_docs, ``make docs``): one per console script,
each current with the command's flags."""

import os

from electra_tf import flag_docs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOME = {name: target for name, target in flag_docs.console_scripts().items()
        if name in ("electra-pretrain", "electra-convert", "electra-build-vocab")}


def test_the_docs_hold_a_current_flag_table_of_every_console_script():
    problems = flag_docs.update(os.path.join(ROOT, "docs"), write=False)
    assert not problems, "\n".join(problems) + "\nrun `make docs` to rewrite the tables"


def test_tables_are_written_between_the_marks_and_checked(tmp_path):
    page = tmp_path / "pretraining.md"
    page.write_text("# Pretraining\n\nBefore.\n\n<!-- flags:electra-pretrain -->\n"
                    "<!-- /flags -->\n\nAfter.\n")
    (tmp_path / "checkpoints.md").write_text("<!-- flags:electra-convert -->\nold table\n"
                                             "<!-- /flags -->\n")
    missing = (f"electra-build-vocab has no flag table: add the lines "
               f"'<!-- flags:electra-build-vocab -->' and '<!-- /flags -->' to a page of "
               f"{tmp_path}")
    assert flag_docs.update(str(tmp_path), write=False, scripts=SOME) == [
        "checkpoints.md: the flag table of electra-convert is out of date",
        "pretraining.md: the flag table of electra-pretrain is out of date", missing]

    assert flag_docs.update(str(tmp_path), scripts=SOME) == [missing]
    assert flag_docs.update(str(tmp_path), write=False, scripts=SOME) == [missing]
    text = page.read_text()
    assert text.startswith("# Pretraining\n\nBefore.\n\n<!-- flags:electra-pretrain -->\n\n"
                           "| flag | type | default | help |\n")
    assert text.endswith("|\n\n<!-- /flags -->\n\nAfter.\n")
    # a config field's flag: the config's default, the help without it; markdown escaped
    assert "| `--learning_rate` | float | 5e-4 | Peak learning rate. |\n" in text
    assert ("| `--vocab_file` | string | \\<data_dir>/vocab.txt | WordPiece vocab. |\n"
            in text)
    assert "| `--data_dir` | string | required | Holds vocab.txt" in text
    assert "| `--strategy` | string | default | default (CPU / one GPU)" in text
    checkpoints = (tmp_path / "checkpoints.md").read_text()
    assert "| `--target` | one of pretrainer, encoder | pretrainer | Convert the whole" in (
        checkpoints)

    page.write_text(text.replace("| 5e-4 |", "| 1e-3 |"))
    assert flag_docs.update(str(tmp_path), write=False, scripts=SOME)[0] == (
        "pretraining.md: the flag table of electra-pretrain is out of date")


def test_a_table_twice_or_of_no_script_is_reported(tmp_path):
    (tmp_path / "data.md").write_text(
        "<!-- flags:electra-build-vocab --><!-- /flags -->\n"
        "<!-- flags:electra-build-vocab --><!-- /flags -->\n"
        "<!-- flags:electra-pretrain --><!-- /flags -->\n"
        "<!-- flags:electra-convert --><!-- /flags -->\n"
        "<!-- flags:electra-nothing --><!-- /flags -->\n")
    problems = flag_docs.update(str(tmp_path), scripts=SOME)
    assert problems == ["data.md: a flag table of electra-nothing, which is no console script",
                        "electra-build-vocab has a flag table in each of data.md, data.md: "
                        "keep one"]
    # every table written: a repeatable, required flag of a data_prep command
    assert ("| `--corpus` | string, repeatable | required | FORMAT:PATH of a corpus"
            in (tmp_path / "data.md").read_text())
