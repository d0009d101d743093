"""Serving a finetuned model: a TensorFlow SavedModel that takes raw text, and batch
prediction over rows of text.

:func:`export_saved_model` writes a :class:`~electra_tf.finetuning.model.FinetuningModel`
as a SavedModel whose signatures take strings and run WordPiece inside the graph (the
tensorflow-text op :class:`~electra_tf.tokenization.WordPieceTokenizer` runs), packing
and truncating exactly as the package's featurization does (:mod:`electra_tf.tasks.specs`).
It loads with ``tensorflow`` and ``tensorflow_text`` alone. Its signatures:

* ``serving_default`` (models with classification, regression or tagging heads): input
  ``text`` (batch,). Classification and regression heads read ``[CLS] text [SEP]``;
  tagging heads read the text's whitespace-split words, each word's first WordPiece
  tagged. Every such head answers.
* ``pairs`` (models with classification or regression heads): inputs ``text`` and
  ``text_b``, read as ``[CLS] text [SEP] text_b [SEP]`` (the longer side truncated
  first); the classification and regression heads answer.
* ``multiple_choice`` (a RACE model, also its ``serving_default``): inputs ``article``
  and ``question`` (batch,) and ``options`` (batch, 4); per option ``[CLS] article [SEP]
  question option [SEP]``, or for a question with a ``_`` blank the question with the
  option in the blank.

Outputs, per head ``<task>``: classification ``<task>_label`` (string) and
``<task>_probabilities`` (batch, labels); regression ``<task>_score`` (in the task's own
range, e.g. 0-5 for STS-B); tagging ``<task>_tags`` (batch, words) string tags, "" past
the words and for words beyond ``max_seq_length``, with ``words`` (the split words, ""
padded); multiple choice ``<task>_label`` (A-D) and ``<task>_scores`` (batch, 4). The
SavedModel's ``serving_info`` variable holds a JSON description of heads and signatures.

:class:`Servable` runs the same signatures on a SavedModel or, unsaved, on a model in
memory; :func:`read_rows` and :func:`predict_rows` are what ``electra-predict`` runs.

Example::

    model = load_finetuned("models/electra_small/finetuning/sst2")
    export_saved_model(model, "exports/sst2/1")
    servable = load_servable("exports/sst2/1")
    predict_rows(servable, [{"text": "A gripping, funny film."}])
    # [{"task": "sst2", "label": "1", "probabilities": {"0": 0.03, "1": 0.97}}]
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text
from tqdm.auto import tqdm

from electra_tf import files
from electra_tf.checkpoints import load_keras
from electra_tf.finetuning.model import FinetuningModel, Head
from electra_tf.finetuning.trainer import FINETUNED_FILE
from electra_tf.modeling import fused
from electra_tf.tasks.specs import NUM_CHOICES
from electra_tf.tokenization import special_ids

SIGNATURE_TEXT = "serving_default"
SIGNATURE_PAIRS = "pairs"
SIGNATURE_CHOICES = "multiple_choice"
SENTENCE_KINDS = ("classification", "regression")
SAVED_MODEL_FILE = "saved_model.pb"
# Python's str.split() whitespace (every c with c.isspace()), so the graph splits words
# where the package's readers do (tf-text's WhitespaceTokenizer does not).
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029"
              "\u202f\u205f\u3000")


# ---------------------------------------------------------------------- featurization

def truncated_pair_lengths(len_a, len_b, limit):
    """The lengths :func:`~electra_tf.tasks.specs.truncate_pair` leaves (tensors): the
    longer side shrinks first; once both are as long, they shrink in turn, the second
    first, so the first ends ceil(limit / 2) long."""
    shorter = tf.minimum(len_a, len_b)
    one_side = 2 * shorter <= limit  # only the longer side needs to shrink
    a = tf.where(one_side, tf.where(len_a > len_b, limit - len_b, len_a), (limit + 1) // 2)
    b = tf.where(one_side, tf.where(len_a > len_b, len_b, limit - len_a), limit // 2)
    fits = len_a + len_b <= limit
    return tf.where(fits, len_a, a), tf.where(fits, len_b, b)


def _positions(ragged: tf.RaggedTensor) -> tf.Tensor:
    """Each flat value's position within its row (int64)."""
    return tf.ragged.range(ragged.row_lengths()).flat_values


def _keep_first(ragged: tf.RaggedTensor, counts) -> tf.RaggedTensor:
    """The first `counts[i]` values of each row i (counts <= the row lengths)."""
    keep = _positions(ragged) < tf.gather(tf.cast(counts, tf.int64), ragged.value_rowids())
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(ragged.flat_values, keep),
                                            tf.cast(counts, tf.int64))


def _column(value, batch) -> tf.RaggedTensor:
    """A (batch, 1) ragged column of `value`."""
    return tf.RaggedTensor.from_tensor(tf.fill([batch, 1], value))


class TextFeatures(tf.Module):
    """Strings to the model's inputs in TensorFlow ops, as the package featurizes them
    (:mod:`electra_tf.tasks.specs`): the tokenizer of
    :class:`~electra_tf.tokenization.WordPieceTokenizer`, then packing and truncation.

    Args:
      vocab: the WordPiece vocab (tokens in id order).
      do_lower_case: lower-case and strip accents, as the model was finetuned.
      max_seq_length: the packed length.
    """

    def __init__(self, vocab: list[str], do_lower_case: bool, max_seq_length: int):
        super().__init__(name="text_features")
        # WordPieceTokenizer's own settings, so the ids are identical (it strips accents
        # exactly when it lower-cases, as the finetuning runs make it).
        self.tokenizer = tf_text.FastBertTokenizer(
            vocab=list(vocab), token_out_type=tf.int64, unknown_token="[UNK]",
            lower_case_nfd_strip_accents=bool(do_lower_case), max_bytes_per_word=400)
        special = special_ids(list(vocab))
        self.cls, self.sep, self.unk = special.cls, special.sep, special.unk
        self.max_seq_length = int(max_seq_length)

    def tokenize(self, texts) -> tf.RaggedTensor:
        """(batch,) strings -> (batch, (pieces)) int32 ids."""
        return tf.cast(self.tokenizer.tokenize(texts), tf.int32)

    def _pack(self, segments: list[tf.RaggedTensor], batch) -> dict[str, tf.Tensor]:
        """``[CLS] s0 [SEP] s1 [SEP] ...``, as :func:`~electra_tf.tasks.specs.pack`,
        padded to max_seq_length."""
        ids, types = [_column(self.cls, batch)], [_column(0, batch)]
        for index, segment in enumerate(segments):
            ids += [segment, _column(self.sep, batch)]
            types += [tf.ones_like(segment) * min(index, 1), _column(min(index, 1), batch)]
        ids, types = tf.concat(ids, axis=1), tf.concat(types, axis=1)
        shape = [None, self.max_seq_length]
        return {"input_ids": ids.to_tensor(0, shape=shape),
                "input_mask": tf.ones_like(ids).to_tensor(0, shape=shape),
                "segment_ids": types.to_tensor(0, shape=shape)}

    def single(self, text) -> dict[str, tf.Tensor]:
        """``[CLS] text [SEP]``, the text cut to fit."""
        pieces = self.tokenize(text)
        kept = _keep_first(pieces, tf.minimum(pieces.row_lengths(), self.max_seq_length - 2))
        return self._pack([kept], tf.shape(text)[0])

    def pair(self, text, text_b) -> dict[str, tf.Tensor]:
        """``[CLS] text [SEP] text_b [SEP]``, the longer side truncated first."""
        a, b = self.tokenize(text), self.tokenize(text_b)
        len_a, len_b = truncated_pair_lengths(a.row_lengths(), b.row_lengths(),
                                              self.max_seq_length - 3)
        return self._pack([_keep_first(a, len_a), _keep_first(b, len_b)], tf.shape(text)[0])

    def words(self, text) -> tf.RaggedTensor:
        """(batch, (words)): each text split on whitespace, as ``str.split()``."""
        return tf.strings.split(tf.strings.regex_replace(text, f"[{WHITESPACE}]+", " "))

    def tagging(self, text) -> tuple[dict[str, tf.Tensor], tf.RaggedTensor, tf.Tensor]:
        """(inputs, words, tagged words per text): ``[CLS] pieces of each word [SEP]``,
        the first WordPiece of each word at its ``word_positions``; a word without a
        piece (a control character) reads ``[UNK]``; the words that no longer fit are
        dropped, as :meth:`~electra_tf.tasks.specs.TaggingTask.featurize` does."""
        words = self.words(text)
        batch = tf.shape(text)[0]
        pieces = self.tokenize(words.flat_values)  # (all words, (pieces))
        counts = tf.maximum(pieces.row_lengths(), 1)
        pieces = _keep_first(tf.concat([pieces, _column(self.unk, tf.shape(counts)[0])], 1),
                             counts)
        # Where each word ends in its row ([CLS] first): it is tagged if [SEP] still fits.
        ends = tf.cumsum(counts)
        starts_of_rows = tf.gather(tf.concat([[0], ends], 0), words.row_starts())
        ends = 1 + ends - tf.gather(starts_of_rows, words.value_rowids())
        keep = ends <= self.max_seq_length - 1
        kept = words.with_flat_values(_keep_first(pieces, tf.where(keep, counts, 0)))
        inputs = self._pack([kept.merge_dims(1, 2)], batch)
        positions = tf.ragged.boolean_mask(words.with_flat_values(ends - counts),
                                           words.with_flat_values(keep))
        shape = [None, self.max_seq_length]
        inputs["segment_ids"] = tf.zeros_like(inputs["segment_ids"])
        inputs["word_positions"] = tf.cast(positions.to_tensor(0, shape=shape), tf.int32)
        inputs["word_mask"] = tf.ones_like(positions, tf.int32).to_tensor(0, shape=shape)
        return inputs, words, positions.row_lengths()

    def multiple_choice(self, article, question, options) -> dict[str, tf.Tensor]:
        """(batch, 4, max_seq_length) inputs: per option ``[CLS] article [SEP] question
        option [SEP]`` (a question with a ``_`` blank: the question with the option in the
        blank); the second segment keeps up to half the room, the article gets the rest, as
        :meth:`~electra_tf.tasks.specs.RaceTask.featurize` does."""
        batch = tf.shape(article)[0]
        options = tf.reshape(options, [-1])
        repeat = tf.repeat(tf.range(batch), NUM_CHOICES)
        questions = tf.gather(question, repeat)
        cloze = tf.strings.regex_full_match(questions, "(?s).*_.*")
        questions = _fill_blank(questions, options)
        options = tf.where(cloze, "", options)  # a cloze question holds its option
        a = tf.gather(self.tokenize(article), repeat)
        q, o = self.tokenize(questions), self.tokenize(options)
        room = self.max_seq_length - 3
        len_q, len_o = truncated_pair_lengths(q.row_lengths(), o.row_lengths(), room // 2)
        len_a = tf.minimum(a.row_lengths(), room - len_q - len_o)
        second = tf.concat([_keep_first(q, len_q), _keep_first(o, len_o)], 1)
        packed = self._pack([_keep_first(a, len_a), second], tf.shape(options)[0])
        return {k: tf.reshape(v, [-1, NUM_CHOICES, self.max_seq_length])
                for k, v in packed.items()}


def _fill_blank(questions, options):
    """``question.replace("_", option)`` per element."""
    pieces = tf.strings.split(questions, sep="_")
    rows = pieces.value_rowids()
    last = _positions(pieces) == tf.gather(pieces.row_lengths(), rows) - 1
    filled = tf.where(last, pieces.flat_values,
                      tf.strings.join([pieces.flat_values, tf.gather(options, rows)]))
    return tf.strings.reduce_join(pieces.with_flat_values(filled), axis=1)


# ---------------------------------------------------------------------- the signatures

def _labels(head: Head) -> tuple[str, ...]:
    return head.labels or tuple(str(i) for i in range(head.num_outputs))


def preprocessing_of(model: FinetuningModel) -> dict:
    """The model's ``preprocessing`` (vocab, do_lower_case, max_seq_length), checked."""
    if not isinstance(model, FinetuningModel):
        raise ValueError(f"a {type(model).__name__}, not a finetuned model (electra-finetune "
                         f"writes one: <run_dir>/{FINETUNED_FILE})")
    questions = [t.name for t in model.tasks if t.kind == "qa"]
    if questions:  # a context's windows and n-best decoding are not in the signatures
        raise ValueError(f"{', '.join(questions)}: a question-answering model; serving it "
                         f"from raw text is not supported (electra-finetune writes its "
                         f"predictions files: <model_dir>/qa_predictions/)")
    preprocessing = model.preprocessing or {}
    missing = [k for k in ("vocab", "do_lower_case", "max_seq_length") if k not in preprocessing]
    if missing:
        raise ValueError(f"the finetuned model carries no {', '.join(missing)} (its "
                         f"preprocessing): it cannot be served from raw text")
    return preprocessing


def signature_info(model: FinetuningModel) -> dict[str, dict]:
    """{signature: {"inputs": [...], "tasks": [...]}}: what `model`'s SavedModel takes and
    which heads answer."""
    heads = [Head.of(t) for t in model.tasks]
    sentence = [h.name for h in heads if h.kind in SENTENCE_KINDS]
    tagging = [h.name for h in heads if h.kind == "tagging"]
    choice = [h.name for h in heads if h.kind == "multiple_choice"]
    info = {}
    if choice:
        info[SIGNATURE_CHOICES] = {"inputs": ["article", "question", "options"],
                                   "tasks": choice}
        info[SIGNATURE_TEXT] = info[SIGNATURE_CHOICES]
    else:
        info[SIGNATURE_TEXT] = {"inputs": ["text"], "tasks": sentence + tagging}
    if sentence:
        info[SIGNATURE_PAIRS] = {"inputs": ["text", "text_b"], "tasks": sentence}
    return info


def _outputs_of(head: Head) -> list[str]:
    return {"classification": [f"{head.name}_label", f"{head.name}_probabilities"],
            "regression": [f"{head.name}_score"],
            "tagging": [f"{head.name}_tags", "words"],
            "multiple_choice": [f"{head.name}_label", f"{head.name}_scores"]}[head.kind]


class ServingModule(tf.Module):
    """A finetuned model's serving signatures (see the module's docstring), as a
    ``tf.Module`` that :func:`tf.saved_model.save` writes.

    Attributes: ``features`` (:class:`TextFeatures`), ``serving_info`` (a string
    variable: JSON of the heads, signatures and preprocessing) and
    ``signature_functions`` ({signature name: ``tf.function``}; :meth:`signatures` gives
    their concrete functions).
    """

    def __init__(self, model: FinetuningModel):
        super().__init__(name="electra_tf_serving")
        preprocessing = preprocessing_of(model)
        features = TextFeatures(preprocessing["vocab"], preprocessing["do_lower_case"],
                                preprocessing["max_seq_length"])
        self.features = features
        # The model's variables, not the model: a Keras model saved inside a module gets
        # Keras' own default signature traced, on float inputs its call does not take.
        self.model_variables = list(model.variables)
        heads = [Head.of(t) for t in model.tasks]
        self.serving_info = tf.Variable(json.dumps({
            "format": "electra-tf serving 1",
            "tasks": [{"name": h.name, "kind": h.kind, "labels": list(_labels(h))
                       if h.kind != "regression" else None, "outputs": _outputs_of(h)}
                      for h in heads],
            "signatures": signature_info(model),
            "do_lower_case": bool(preprocessing["do_lower_case"]),
            "max_seq_length": int(preprocessing["max_seq_length"])}), trainable=False)
        predict = model.predict_step
        labels = {h.name: tf.constant(list(_labels(h))) for h in heads
                  if h.kind != "regression"}
        sentence = [h for h in heads if h.kind in SENTENCE_KINDS]
        tagging = [h for h in heads if h.kind == "tagging"]
        choice = [h for h in heads if h.kind == "multiple_choice"]

        def sentence_outputs(inputs):
            outputs, result = predict(inputs), {}
            for head in sentence:
                out = outputs[head.name]
                if head.kind == "classification":
                    result[f"{head.name}_label"] = tf.gather(labels[head.name],
                                                             tf.argmax(out, -1))
                    result[f"{head.name}_probabilities"] = tf.nn.softmax(out, -1)
                else:  # the task's own range, as PairTask.predictions
                    low, high = head.label_range or (0.0, 1.0)
                    result[f"{head.name}_score"] = out * (high - low) + low
            return result

        def tagging_outputs(text):
            inputs, words, tagged = features.tagging(text)
            outputs = predict(inputs)
            rows, position = words.value_rowids(), _positions(words)
            at = tf.stack([rows, tf.minimum(position, features.max_seq_length - 1)], 1)
            result = {"words": words.to_tensor("")}
            for head in tagging:
                ids = tf.gather_nd(outputs[head.name], at)
                ids = tf.where(position < tf.gather(tagged, rows), ids, -1)
                tags = tf.where(ids >= 0, tf.gather(labels[head.name], tf.maximum(ids, 0)), "")
                result[f"{head.name}_tags"] = words.with_flat_values(tags).to_tensor("")
            return result

        def serve_text(text):
            result = {}
            if sentence:
                result.update(sentence_outputs(features.single(text)))
            if tagging:  # its own featurization: whole words, truncated by word
                result.update(tagging_outputs(text))
            return result

        def serve_pairs(text, text_b):
            return sentence_outputs(features.pair(text, text_b))

        def serve_multiple_choice(article, question, options):
            outputs = predict(features.multiple_choice(article, question, options))
            result = {}
            for head in choice:
                scores = outputs[head.name]
                result[f"{head.name}_label"] = tf.gather(labels[head.name],
                                                         tf.argmax(scores, -1))
                result[f"{head.name}_scores"] = scores
            return result

        def string_spec(name, shape=(None,)):
            return tf.TensorSpec(shape, tf.string, name=name)

        functions = {}
        if choice:
            functions[SIGNATURE_CHOICES] = tf.function(
                serve_multiple_choice, autograph=False, input_signature=[
                    string_spec("article"), string_spec("question"),
                    string_spec("options", (None, NUM_CHOICES))])
            # TF Serving answers requests that name no signature with serving_default.
            functions[SIGNATURE_TEXT] = functions[SIGNATURE_CHOICES]
        else:
            functions[SIGNATURE_TEXT] = tf.function(serve_text, autograph=False,
                                                    input_signature=[string_spec("text")])
        if sentence:
            functions[SIGNATURE_PAIRS] = tf.function(
                serve_pairs, autograph=False,
                input_signature=[string_spec("text"), string_spec("text_b")])
        self.signature_functions = functions

    def signatures(self) -> dict:
        """{signature name: concrete function}, for :func:`tf.saved_model.save`."""
        return {name: function.get_concrete_function()
                for name, function in self.signature_functions.items()}


def export_saved_model(model: FinetuningModel, directory: str) -> str:
    """Write `model` as a SavedModel of :class:`ServingModule` at `directory` (local or
    remote; staged locally, so nothing half-written is left there); returns `directory`.

    For TF Serving, `directory` is a version folder: ``<model_base_path>/<version>``.
    """
    files.check_replaceable(directory, _is_saved_model, "a SavedModel")
    # Traced with plain TensorFlow ops, not the XLA-compiled kernels: any TensorFlow
    # runtime (TF Serving, converters) can run the export.
    with fused.disabled(), tempfile.TemporaryDirectory(prefix="electra-tf-") as local:
        module = ServingModule(model)
        staged = os.path.join(local, "saved_model")
        tf.saved_model.save(module, staged, signatures=module.signatures())
        # saved_model.pb last: readers (TF Serving polling its model folder) take it as
        # the sign of a complete model.
        files.publish_tree(staged, directory, last=SAVED_MODEL_FILE)
    return directory


def _is_saved_model(directory: str) -> bool:
    """A SavedModel folder (remote: also one an interrupted export left without its
    saved_model.pb), which an export may replace."""
    top = {name.split("/")[0] for name in files.relative_files(directory)}
    return top <= {SAVED_MODEL_FILE, "fingerprint.pb", "variables", "assets"} and (
        SAVED_MODEL_FILE in top or not files.is_local(directory))


# ---------------------------------------------------------------------- loading

def load_finetuned(path: str) -> FinetuningModel:
    """The finetuned model of a ``.keras`` file or of a finetuning run dir holding
    ``finetuned.keras``."""
    if not path.endswith(".keras") and files.isdir(path):
        if not files.isfile(files.join(path, FINETUNED_FILE)):
            raise FileNotFoundError(f"{path}: no {FINETUNED_FILE} in this folder (electra-"
                                    f"finetune writes it in its run dir)")
        path = files.join(path, FINETUNED_FILE)
    model = load_keras(path)
    try:
        preprocessing_of(model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model


def is_saved_model(path: str) -> bool:
    return files.isfile(files.join(path, SAVED_MODEL_FILE))


class Servable:
    """The serving signatures of a SavedModel of :func:`export_saved_model`, or of a
    finetuned model in memory (the same functions, unsaved): ``run(signature, **inputs)``
    gives NumPy outputs; ``info`` describes the heads and signatures."""

    def __init__(self, signatures: dict, info: dict, source: str, owner=None):
        self.signatures = signatures
        self.info = info
        self.source = source
        self._owner = owner  # what the functions belong to, kept alive with them

    @classmethod
    def from_model(cls, model: FinetuningModel, source: str = "model") -> Servable:
        module = ServingModule(model)
        return cls(module.signature_functions,
                   json.loads(module.serving_info.numpy().decode()), source, module)

    @classmethod
    def from_saved_model(cls, loaded, source: str = "SavedModel") -> Servable:
        """Of what ``tf.saved_model.load`` returned for an :func:`export_saved_model`."""
        if not hasattr(loaded, "serving_info"):
            raise ValueError(f"{source}: a SavedModel without serving_info: not one "
                             f"electra-export wrote")
        return cls(dict(loaded.signatures), json.loads(loaded.serving_info.numpy().decode()),
                   source, loaded)

    @classmethod
    def load(cls, path: str) -> Servable:
        """A SavedModel folder of ``electra-export``, a ``.keras`` file of a finetuned
        model or a finetuning run dir holding ``finetuned.keras``."""
        if not is_saved_model(path):
            return cls.from_model(load_finetuned(path), path)
        return cls.from_saved_model(tf.saved_model.load(path), path)

    @property
    def heads(self) -> dict[str, dict]:
        return {t["name"]: t for t in self.info["tasks"]}

    def head(self, task: str | None = None) -> dict:
        """The head named `task`; without a name, the only one."""
        heads = self.heads
        if task is None:
            if len(heads) > 1:
                raise ValueError(f"{self.source} has {len(heads)} task heads "
                                 f"({', '.join(heads)}): choose one with --task")
            return next(iter(heads.values()))
        if task not in heads:
            raise ValueError(f"{self.source} has no task head {task!r}; its heads: "
                             f"{', '.join(heads)}")
        return heads[task]

    def run(self, signature: str, **inputs) -> dict[str, np.ndarray]:
        outputs = self.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}


def load_servable(model) -> Servable:
    """A :class:`Servable` of a path (:meth:`Servable.load`), a finetuned model, or a
    SavedModel loaded by ``tf.saved_model.load``."""
    if isinstance(model, Servable):
        return model
    if isinstance(model, str):
        return Servable.load(model)
    if isinstance(model, FinetuningModel):
        return Servable.from_model(model)
    return Servable.from_saved_model(model)


# ---------------------------------------------------------------------- rows in, rows out

# Text columns by task kind, in the order they are looked for: the GLUE and sample
# tasks' headers, then generic names.
PAIR_COLUMNS = (("sentence1", "sentence2"), ("question1", "question2"),
                ("question", "sentence"), ("premise", "hypothesis"),
                ("#1 String", "#2 String"), ("text", "text_b"), ("text_a", "text_b"))
SINGLE_COLUMNS = ("sentence", "text", "text_a", "review")
TAGGING_COLUMNS = ("words", "text", "sentence", "tokens")
CHOICE_COLUMNS = ("article", "question", "options")
ID_COLUMNS = ("id", "guid", "index", "idx")


def text_columns(kind: str, available: list[str], given: list[str] | None = None
                 ) -> list[str]:
    """The columns holding a `kind` task's text: `given` (checked), else the first known
    set among `available`."""
    if given:
        counts = {"multiple_choice": (3,), "tagging": (1,)}.get(kind, (1, 2))
        if len(given) not in counts:
            raise ValueError(f"--text_columns: a {kind} task reads "
                             f"{' or '.join(map(str, counts))} column(s), got {len(given)}: "
                             f"{','.join(given)}")
        return list(given)
    if kind == "multiple_choice":
        candidates = [CHOICE_COLUMNS]
    elif kind == "tagging":
        candidates = [(c,) for c in TAGGING_COLUMNS]
    else:
        candidates = [*PAIR_COLUMNS, *((c,) for c in SINGLE_COLUMNS)]
    for columns in candidates:
        if all(c in available for c in columns):
            return list(columns)
    known = "; ".join(",".join(c) for c in candidates)
    raise ValueError(f"no text column for a {kind} task among the columns "
                     f"{', '.join(available) or '(none)'}; looked for {known}; name them "
                     f"with --text_columns")


def _records(path: str):
    """(line number, {column: value}) of a JSONL or TSV file (a header row first); the
    format: JSONL for .jsonl/.json/.ndjson files and for files starting with '{'."""
    text = files.read_text(path, encoding="utf-8-sig")
    if not text.strip():
        raise ValueError(f"{path}: empty file")
    jsonl = (path.endswith((".jsonl", ".json", ".ndjson"))
             or not path.endswith(".tsv") and text.lstrip().startswith("{"))
    if jsonl:
        for number, record in files.json_lines(text, path):
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object, got "
                                 f"{_type_name(record)}")
            yield number, record
        return
    # Split at tabs, quotes literal (csv's reader caps a field at 128 KiB).
    lines = text.splitlines()
    header = lines[0].split("\t")
    for number, line in enumerate(lines[1:], 2):
        row = line.split("\t")
        if not any(field.strip() for field in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{number}: {len(row)} tab-separated fields, the header "
                             f"has {len(header)}")
        yield number, dict(zip(header, row, strict=True))


def _type_name(value) -> str:
    return {str: "a string", list: "a list", dict: "an object", bool: "a boolean",
            type(None): "null", int: "a number", float: "a number"}.get(type(value),
                                                                        type(value).__name__)


def _string(value, where: str, column: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: field {column!r} must be a string, got {_type_name(value)}")
    return value


def _string_list(value, where: str, column: str, length: int | None = None) -> list[str]:
    if isinstance(value, str) and value.lstrip().startswith("["):  # a TSV field
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: field {column!r} must be a list of strings, got "
                         f"{_type_name(value)}")
    if length is not None and len(value) != length:
        raise ValueError(f"{where}: field {column!r} must hold {length} options, got "
                         f"{len(value)}")
    return value


def read_rows(path: str, kind: str, columns: list[str] | None = None) -> list[dict]:
    """The rows of a TSV (header row first) or JSONL file as a `kind` task's inputs:
    ``text`` (+ ``text_b``) for classification and regression, ``text`` or ``words``
    for tagging, ``article``, ``question``, ``options`` for multiple choice, and ``id``
    when the row has one. Bad rows are errors naming the file and line."""
    chosen = text_columns(kind, [], columns) if columns else None  # checks their count
    rows = []
    for number, record in _records(path):
        where = f"{path}:{number}"
        if chosen is None:
            try:
                chosen = text_columns(kind, list(record))
            except ValueError as e:
                raise ValueError(f"{where}: {e}") from None
        missing = [c for c in chosen if c not in record]
        if missing:
            raise ValueError(f"{where}: no field {', '.join(map(repr, missing))}")
        row = {}
        if kind == "multiple_choice":
            article, question, options = chosen
            row = {"article": _string(record[article], where, article),
                   "question": _string(record[question], where, question),
                   "options": _string_list(record[options], where, options, NUM_CHOICES)}
        elif kind == "tagging":
            value = record[chosen[0]]
            if isinstance(value, list) or chosen[0] == "words":
                words = _string_list(value, where, chosen[0])
                bad = [w for w in words if w.split() != [w]]
                if bad:
                    raise ValueError(f"{where}: field {chosen[0]!r}: the word {bad[0]!r} is "
                                     f"empty or holds whitespace")
                row["words"] = words
            else:
                row["text"] = _string(value, where, chosen[0])
        else:
            row["text"] = _string(record[chosen[0]], where, chosen[0])
            if len(chosen) > 1:
                row["text_b"] = _string(record[chosen[1]], where, chosen[1])
        identifier = next((record[c] for c in ID_COLUMNS if c in record), None)
        if identifier is not None:
            row["id"] = identifier
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows to predict (only a header or blank lines)")
    return rows


def _prediction(head: dict, outputs: dict[str, np.ndarray], i: int, row: dict) -> dict:
    """Row i's prediction of `head` from a signature's NumPy `outputs`."""
    name, kind = head["name"], head["kind"]
    result = {"id": row["id"]} if "id" in row else {}
    result["task"] = name
    if kind == "regression":
        result["score"] = float(outputs[f"{name}_score"][i])
    elif kind == "tagging":
        words = [w.decode() for w in outputs["words"][i] if w]
        tags = [t.decode() or None for t in outputs[f"{name}_tags"][i][:len(words)]]
        result.update(words=words, tags=tags)  # None: a word past max_seq_length
    else:
        key = "probabilities" if kind == "classification" else "scores"
        values = outputs[f"{name}_{key}"][i]
        result["label"] = outputs[f"{name}_label"][i].decode()
        result[key] = {label: float(v) for label, v in zip(head["labels"], values,
                                                           strict=True)}
    return result


def _signature_and_inputs(kind: str, rows: list[dict]) -> tuple[str, dict]:
    if kind == "multiple_choice":
        return SIGNATURE_CHOICES, {
            "article": np.array([r["article"] for r in rows], object),
            "question": np.array([r["question"] for r in rows], object),
            "options": np.array([r["options"] for r in rows], object)}
    texts = np.array([r["text"] if "text" in r else " ".join(r["words"]) for r in rows],
                     object)
    if kind in SENTENCE_KINDS and "text_b" in rows[0]:
        return SIGNATURE_PAIRS, {"text": texts,
                                 "text_b": np.array([r["text_b"] for r in rows], object)}
    return SIGNATURE_TEXT, {"text": texts}


def predict_rows(model, rows: list[dict], task: str | None = None, batch_size: int = 32,
                 progress: bool = False) -> list[dict]:
    """One prediction per row (rows as :func:`read_rows` gives them) from the head `task`
    (default: the only one) of `model` (anything :func:`load_servable` takes):
    ``{"task", "label", "probabilities"}`` (classification), ``{"task", "score"}``
    (regression), ``{"task", "words", "tags"}`` (tagging; a word past max_seq_length has
    tag None), ``{"task", "label", "scores"}`` (multiple choice); a row's ``id`` is
    kept."""
    servable = load_servable(model)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    head = servable.head(task)
    results = []
    with tqdm(total=len(rows), unit="row", desc=f"predicting {head['name']}",
              disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            # Rows with and without a second text go to different signatures.
            groups = {}
            for i, row in enumerate(batch):
                groups.setdefault("text_b" in row, []).append(i)
            predictions = {}
            for indices in groups.values():
                group = [batch[i] for i in indices]
                signature, inputs = _signature_and_inputs(head["kind"], group)
                outputs = servable.run(signature, **inputs)
                for j, i in enumerate(indices):
                    predictions[i] = _prediction(head, outputs, j, batch[i])
            results += [predictions[i] for i in range(len(batch))]
            bar.update(len(batch))
    return results
