"""A small learnable movie-review task in the sample tasks' layout (``sst2_mr``: TSVs with
a header, test labels apart in ``test_labels.tsv``), shared by the TLM and sweep tests."""

GOOD = ["great", "wonderful", "charming", "superb"]
BAD = ["awful", "boring", "tedious", "dull"]


def reviews(rng, n):
    """n (sentence, label) pairs: the label is in the adjective."""
    rows = []
    for _ in range(n):
        label = int(rng.integers(2))
        rows.append((f"the film was {rng.choice(GOOD if label else BAD)} and "
                     f"{rng.choice(['long', 'short'])}", label))
    return rows


def write_review_task(root, rng, train=64, dev=24, test=12):
    """``<root>/finetuning_data/sst2_mr/`` with train, dev, test and test_labels TSVs."""
    task = root / "finetuning_data" / "sst2_mr"
    task.mkdir(parents=True)
    for split, n in (("train", train), ("dev", dev)):
        (task / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(
            f"{s}\t{y}\n" for s, y in reviews(rng, n)))
    rows = reviews(rng, test)
    (task / "test.tsv").write_text("index\tsentence\n" + "".join(
        f"{i}\t{s}\n" for i, (s, _) in enumerate(rows)))
    (task / "test_labels.tsv").write_text("index\tlabel\n" + "".join(
        f"{i}\t{y}\n" for i, (_, y) in enumerate(rows)))
